"""Test-only routes under `/_emulator/`: drive state, inject faults, tamper, and hosted pages.

JSON routes (all unauthenticated — the emulator is a local test double):

- `POST /_emulator/accounts/{id}/complete_onboarding` · `/restrict` ·
  `/payouts` `{amount, currency, status}`
- `POST /_emulator/payment_intents/{id}/authenticate` `{outcome: succeed|fail}` · `/expire`
- `POST /_emulator/charges/{id}/dispute` `{reason, amount}`
- `GET|POST|DELETE /_emulator/faults` (`{path_prefix, status, count, delay_ms, method, mode}`)
- `GET /_emulator/state` · `POST /_emulator/reset` · `POST /_emulator/idempotency/forget`
- `GET|POST|DELETE /_emulator/objects/{id}` (POST = JSON merge patch, no events)
- `GET /_emulator/webhooks` ·
  `POST /_emulator/webhooks/config` `{url, secret, concurrency, enabled_events}` ·
  `POST /_emulator/webhooks/flush` `{timeout}` · `POST /_emulator/events/{id}/resend`

HTML pages: `/_emulator/onboarding/{link}`, `/_emulator/pay/{pi}`, `/_emulator/3ds/{pi}`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from stripe_emulator import pages
from stripe_emulator import resources as r
from stripe_emulator.api import json_response
from stripe_emulator.errors import StripeError, no_such, param_error
from stripe_emulator.params import Params
from stripe_emulator.store import EmulatorState, now

FAULT_MODES = ("before", "after")


def parse_enabled_events(value: Any) -> frozenset[str] | None:
    """A webhook endpoint's `enabled_events`: a list of event types, or `["*"]` for all (None)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise param_error(
            'enabled_events must be a list of event types, or ["*"]', "enabled_events"
        )
    return None if "*" in value else frozenset(value)


def _json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        return data
    return {k: v for k, v in request.values.items()}


def _int(data: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = data.get(name, default)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise param_error(f"{name} must be an integer", name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise param_error(f"{name} must be an integer", name) from None


class PageError(Exception):
    """Abort a hosted page with this response."""

    def __init__(self, response: BaseResponse) -> None:
        super().__init__(response.status)
        self.response = response


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, applied in place to dicts (null removes a key)."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


def _html(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/html")


def create_control_blueprint(state: EmulatorState) -> Blueprint:
    """The `/_emulator` routes bound to one state."""
    bp = Blueprint("stripe_emulator_control", __name__, url_prefix="/_emulator")

    @bp.errorhandler(PageError)
    def page_error(err: PageError) -> BaseResponse:
        return err.response

    @bp.errorhandler(StripeError)
    def stripe_error(err: StripeError) -> Response:
        return json_response(err.status, err.body())

    # -- accounts, payments, disputes, payouts -------------------------------------------------

    @bp.post("/accounts/<account_id>/complete_onboarding")
    def complete_onboarding(account_id: str) -> BaseResponse:
        with state.lock:
            return json_response(200, r.complete_onboarding(state, account_id))

    @bp.post("/accounts/<account_id>/restrict")
    def restrict(account_id: str) -> BaseResponse:
        with state.lock:
            return json_response(200, r.restrict_account(state, account_id))

    @bp.post("/accounts/<account_id>/payouts")
    def payout(account_id: str) -> BaseResponse:
        data = _json()
        amount = _int(data, "amount")
        if amount is None or amount < 1:
            raise param_error("amount must be a positive integer", "amount")
        with state.lock:
            body = r.pay_out(
                state,
                account_id,
                amount=amount,
                currency=str(data.get("currency") or "usd").lower(),
                status=str(data.get("status") or "paid"),
            )
        return json_response(200, body)

    @bp.post("/payment_intents/<pi_id>/authenticate")
    def authenticate(pi_id: str) -> BaseResponse:
        outcome = str(_json().get("outcome") or "succeed")
        if outcome not in ("succeed", "fail"):
            raise param_error("outcome must be succeed or fail", "outcome")
        with state.lock:
            intent = state.require("payment_intent", pi_id, label="payment_intent")
            r.authenticate(state, intent, outcome == "succeed")
            return json_response(200, state.render(intent))

    @bp.post("/payment_intents/<pi_id>/expire")
    def expire(pi_id: str) -> BaseResponse:
        """The authorization ran out (7 days): canceled with reason `automatic`."""
        with state.lock:
            intent = state.require("payment_intent", pi_id, label="payment_intent")
            r.cancel_intent(state, intent, "automatic")
            return json_response(200, state.render(intent))

    @bp.post("/charges/<charge_id>/dispute")
    def dispute(charge_id: str) -> BaseResponse:
        data = _json()
        with state.lock:
            body = r.dispute_charge(
                state,
                charge_id,
                reason=str(data.get("reason") or "fraudulent"),
                amount=_int(data, "amount"),
            )
        return json_response(200, body)

    # -- faults --------------------------------------------------------------------------------

    @bp.get("/faults")
    def list_faults() -> BaseResponse:
        with state.lock:
            return json_response(200, {"faults": [f.to_dict() for f in state.faults]})

    @bp.post("/faults")
    def add_fault() -> BaseResponse:
        data = _json()
        prefix = data.get("path_prefix")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise param_error("path_prefix must be a path such as /v1/transfers", "path_prefix")
        status = _int(data, "status")
        delay_ms = _int(data, "delay_ms", 0) or 0
        count = _int(data, "count", 1) or 0
        mode = str(data.get("mode") or "before")
        if status is not None and not 400 <= status <= 599:
            raise param_error("status must be between 400 and 599", "status")
        if status is None and delay_ms <= 0:
            raise param_error("give a status, a delay_ms, or both", "status")
        if count < 1 or delay_ms < 0:
            raise param_error("count must be ≥ 1 and delay_ms ≥ 0", "count")
        if mode not in FAULT_MODES:
            raise param_error("mode must be before or after", "mode")
        fault = state.add_fault(
            prefix,
            status=status,
            count=count,
            delay_ms=delay_ms,
            method=data.get("method") or None,
            mode=mode,
        )
        return json_response(200, fault.to_dict())

    @bp.delete("/faults")
    def clear_faults() -> BaseResponse:
        state.clear_faults()
        return json_response(200, {"faults": []})

    # -- state, reset, tampering ---------------------------------------------------------------

    @bp.get("/state")
    def dump_state() -> BaseResponse:
        return json_response(200, state.snapshot())

    @bp.post("/reset")
    def reset() -> BaseResponse:
        state.reset()
        return json_response(200, {"ok": True})

    @bp.post("/idempotency/forget")
    def forget_idempotency_keys() -> BaseResponse:
        """What Stripe does to keys older than 24 hours: a reused key acts as a new one."""
        with state.lock:
            forgotten = len(state.idempotency)
            state.idempotency.clear()
        return json_response(200, {"forgotten": forgotten})

    @bp.get("/objects/<object_id>")
    def get_object(object_id: str) -> BaseResponse:
        with state.lock:
            obj = state.get(object_id)
            if obj is None:
                raise no_such("object", object_id)
            return json_response(200, state.render(obj))

    @bp.post("/objects/<object_id>")
    def patch_object(object_id: str) -> BaseResponse:
        patch = request.get_json(silent=True)
        if not isinstance(patch, dict):
            raise param_error("Send a JSON object (merge patch).", "body")
        if any(k in patch for k in ("id", "object")):
            raise param_error("id and object cannot be changed.", "body")
        with state.lock:
            obj = state.get(object_id)
            if obj is None:
                raise no_such("object", object_id)
            merge_patch(obj, patch)
            return json_response(200, state.render(obj))

    @bp.delete("/objects/<object_id>")
    def delete_object(object_id: str) -> BaseResponse:
        with state.lock:
            obj = state.delete(object_id)
            if obj is None:
                raise no_such("object", object_id)
        return json_response(200, {"id": object_id, "object": obj["object"], "deleted": True})

    # -- webhooks ------------------------------------------------------------------------------

    @bp.get("/webhooks")
    def webhooks() -> BaseResponse:
        return json_response(
            200,
            {
                "url": state.webhook_url,
                "secret": state.webhook_secret,
                "concurrency": state.dispatcher.concurrency,
                "enabled_events": sorted(state.enabled_events or ["*"]),
                "pending": state.dispatcher.pending,
                "attempts": state.dispatcher.attempts(),
            },
        )

    @bp.post("/webhooks/config")
    def configure_webhooks() -> BaseResponse:
        data = _json()
        if "url" in data:
            url = data["url"] or None
            if url is not None and not pages.is_http_url(url):
                raise param_error("url must be an http(s) URL", "url")
            state.webhook_url = url
        if data.get("secret"):
            state.webhook_secret = str(data["secret"])
        if "concurrency" in data:
            concurrency = data["concurrency"]
            if not isinstance(concurrency, int) or isinstance(concurrency, bool):
                raise param_error("concurrency must be an integer from 1 to 64", "concurrency")
            if not 1 <= concurrency <= 64:
                raise param_error("concurrency must be an integer from 1 to 64", "concurrency")
            state.dispatcher.resize(concurrency)
        if "enabled_events" in data:
            state.enabled_events = parse_enabled_events(data["enabled_events"])
        return json_response(
            200,
            {
                "url": state.webhook_url,
                "secret": state.webhook_secret,
                "concurrency": state.dispatcher.concurrency,
                "enabled_events": sorted(state.enabled_events or ["*"]),
            },
        )

    @bp.post("/webhooks/flush")
    def flush_webhooks() -> BaseResponse:
        data = _json()
        timeout = float(data.get("timeout") or request.args.get("timeout") or 10)
        ok = state.flush_webhooks(min(max(timeout, 0.0), 120.0))
        return json_response(200 if ok else 504, {"ok": ok, "pending": state.dispatcher.pending})

    @bp.post("/events/<event_id>/resend")
    def resend(event_id: str) -> BaseResponse:
        return json_response(200, state.resend(event_id))

    @bp.get("/health")
    def health() -> BaseResponse:
        return json_response(200, {"ok": True})

    # -- hosted pages --------------------------------------------------------------------------

    @bp.get("/onboarding/<link_id>")
    def onboarding(link_id: str) -> BaseResponse:
        with state.lock:
            link = state.account_links.get(link_id)
            if link is None:
                return _html(pages.message_page("Link not found", "Unknown link."), 404)
            if link["used"] or link["expires_at"] < now():
                return redirect(link["refresh_url"], 302)
            link["used"] = True
            account = state.require("account", link["account"])
            return _html(
                pages.onboarding_page(
                    request.script_root + request.path,
                    account["id"],
                    account.get("email"),
                    link["return_url"],
                )
            )

    @bp.post("/onboarding/<link_id>")
    def finish_onboarding(link_id: str) -> BaseResponse:
        with state.lock:
            link = state.account_links.get(link_id)
            if link is None:
                return _html(pages.message_page("Link not found", "Unknown link."), 404)
            if link.get("completed"):
                return redirect(link["refresh_url"], 303)
            r.complete_onboarding(state, link["account"])
            link["completed"] = True
        return redirect(link["return_url"], 303)

    def _intent_for_page(pi_id: str) -> tuple[dict[str, Any], str | None]:
        """The intent and return_url, if the client_secret matches (else an error page)."""
        secret = request.values.get("client_secret") or ""
        return_url = request.values.get("return_url") or None
        if return_url is not None and not pages.is_http_url(return_url):
            page = pages.message_page("Bad request", "return_url must be an http(s) URL.")
            raise PageError(_html(page, 400))
        intent = state.get(pi_id, "payment_intent")
        if intent is None or secret != intent["client_secret"]:
            page = pages.message_page("Not found", "No such payment (or a wrong client_secret).")
            raise PageError(_html(page, 404))
        return intent, return_url

    def _finish(intent: dict[str, Any], return_url: str | None, note: str = "") -> BaseResponse:
        status = intent["status"]
        redirect_status = "succeeded" if status in ("succeeded", "requires_capture") else "failed"
        if return_url:
            target = pages.with_query(
                return_url,
                payment_intent=intent["id"],
                payment_intent_client_secret=intent["client_secret"],
                redirect_status=redirect_status,
            )
            return redirect(target, 303)
        message = f"Payment {intent['id']} is now {status}. {note}".strip()
        return _html(pages.message_page(f"Payment {redirect_status}", message))

    @bp.get("/pay/<pi_id>")
    def pay(pi_id: str) -> BaseResponse:
        with state.lock:
            intent, return_url = _intent_for_page(pi_id)
            if intent["status"] not in r.CONFIRMABLE:
                message = f"This payment is {intent['status']}."
                return _html(pages.message_page("Nothing to pay", message, return_url))
            return _html(
                pages.pay_page(
                    request.script_root + request.path,
                    intent["amount"],
                    intent["currency"],
                    intent["client_secret"],
                    return_url,
                )
            )

    @bp.post("/pay/<pi_id>")
    def pay_submit(pi_id: str) -> BaseResponse:
        payment_method = request.form.get("payment_method") or "pm_card_visa"
        with state.lock:
            intent, return_url = _intent_for_page(pi_id)
            call = r.Call(
                state,
                Params({"payment_method": payment_method}),
                publishable=True,
                base_url=request.url_root,
            )
            note = ""
            try:
                r.confirm_intent(call, intent)
            except StripeError as err:
                if err.status != 402:
                    page = pages.message_page("Payment not possible", err.message, return_url)
                    return _html(page, err.status)
                note = err.message
            if intent["status"] == "requires_action":
                target = pages.with_query(
                    f"{request.url_root}_emulator/3ds/{pi_id}",
                    client_secret=intent["client_secret"],
                    **({"return_url": return_url} if return_url else {}),
                )
                return redirect(target, 303)
            return _finish(intent, return_url, note)

    @bp.get("/3ds/<pi_id>")
    def three_d_secure(pi_id: str) -> BaseResponse:
        with state.lock:
            intent, return_url = _intent_for_page(pi_id)
            if intent["status"] != "requires_action":
                message = f"This payment is {intent['status']}."
                return _html(pages.message_page("Nothing to authenticate", message, return_url))
            return _html(
                pages.three_d_secure_page(
                    request.script_root + request.path, intent["client_secret"], return_url
                )
            )

    @bp.post("/3ds/<pi_id>")
    def three_d_secure_submit(pi_id: str) -> BaseResponse:
        with state.lock:
            intent, return_url = _intent_for_page(pi_id)
            if intent["status"] == "requires_action":
                r.authenticate(state, intent, request.form.get("outcome") == "succeed")
            return _finish(intent, return_url)

    return bp
