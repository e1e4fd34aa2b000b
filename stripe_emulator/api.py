"""The `/v1` request pipeline: faults → API key → route → params → idempotency → handler.

Idempotency follows Stripe: a POST's `Idempotency-Key` (scoped to the API key) stores the first
response — status and body, 4xx/5xx included — once the endpoint has started executing, and
replays it with `Idempotent-Replayed: true`. Not stored: parameter-validation failures, 401s,
unknown routes, and faults injected *before* execution (`mode="before"`, the default), so a
retry with the same key after such a fault runs the endpoint and creates exactly one object.
Reusing a key with another method, path or parameters → 400 `idempotency_error`; a key whose
first request is still running → 409 (`idempotency_key_in_use`, retried by the SDK).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Request, Response
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from stripe_emulator import resources as r
from stripe_emulator.errors import StripeError, api_error, param_error
from stripe_emulator.params import Params, decode_params
from stripe_emulator.store import (
    API_VERSION,
    EmulatorState,
    IdempotencyEntry,
    RequestInfo,
    current_request,
    random_token,
    tracking_changes,
)

log = logging.getLogger(__name__)

HANDLERS: dict[str, r.Handler] = {
    "create_account": r.create_account,
    "list_accounts": r.list_accounts,
    "retrieve_account": r.retrieve_account,
    "update_account": r.update_account,
    "create_account_link": r.create_account_link,
    "create_payment_intent": r.create_payment_intent,
    "list_payment_intents": r.list_payment_intents,
    "retrieve_payment_intent": r.retrieve_payment_intent,
    "update_payment_intent": r.update_payment_intent,
    "confirm_payment_intent": r.confirm_payment_intent,
    "capture_payment_intent": r.capture_payment_intent,
    "cancel_payment_intent": r.cancel_payment_intent,
    "list_charges": r.list_charges,
    "retrieve_charge": r.retrieve_charge,
    "list_charge_refunds": r.list_charge_refunds,
    "create_refund": r.create_refund,
    "list_refunds": r.list_refunds,
    "retrieve_refund": r.retrieve_refund,
    "create_transfer": r.create_transfer,
    "list_transfers": r.list_transfers,
    "retrieve_transfer": r.retrieve_transfer,
    "update_transfer": r.update_transfer,
    "create_transfer_reversal": r.create_transfer_reversal,
    "list_transfer_reversals": r.list_transfer_reversals,
    "retrieve_transfer_reversal": r.retrieve_transfer_reversal,
    "retrieve_balance": r.retrieve_balance,
    "list_balance_transactions": r.list_balance_transactions,
    "retrieve_balance_transaction": r.retrieve_balance_transaction,
    "list_events": r.list_events,
    "retrieve_event": r.retrieve_event,
}

# Endpoints a publishable key may call (with the PaymentIntent's client_secret).
PUBLISHABLE_ENDPOINTS = frozenset({"retrieve_payment_intent", "confirm_payment_intent"})


def _rules() -> list[Rule]:
    spec = [
        ("/v1/accounts", "POST", "create_account"),
        ("/v1/accounts", "GET", "list_accounts"),
        ("/v1/accounts/<id>", "GET", "retrieve_account"),
        ("/v1/accounts/<id>", "POST", "update_account"),
        ("/v1/account_links", "POST", "create_account_link"),
        ("/v1/payment_intents", "POST", "create_payment_intent"),
        ("/v1/payment_intents", "GET", "list_payment_intents"),
        ("/v1/payment_intents/<id>", "GET", "retrieve_payment_intent"),
        ("/v1/payment_intents/<id>", "POST", "update_payment_intent"),
        ("/v1/payment_intents/<id>/confirm", "POST", "confirm_payment_intent"),
        ("/v1/payment_intents/<id>/capture", "POST", "capture_payment_intent"),
        ("/v1/payment_intents/<id>/cancel", "POST", "cancel_payment_intent"),
        ("/v1/charges", "GET", "list_charges"),
        ("/v1/charges/<id>", "GET", "retrieve_charge"),
        ("/v1/charges/<id>/refunds", "GET", "list_charge_refunds"),
        ("/v1/refunds", "POST", "create_refund"),
        ("/v1/refunds", "GET", "list_refunds"),
        ("/v1/refunds/<id>", "GET", "retrieve_refund"),
        ("/v1/transfers", "POST", "create_transfer"),
        ("/v1/transfers", "GET", "list_transfers"),
        ("/v1/transfers/<id>", "GET", "retrieve_transfer"),
        ("/v1/transfers/<id>", "POST", "update_transfer"),
        ("/v1/transfers/<id>/reversals", "POST", "create_transfer_reversal"),
        ("/v1/transfers/<id>/reversals", "GET", "list_transfer_reversals"),
        ("/v1/transfers/<id>/reversals/<reversal_id>", "GET", "retrieve_transfer_reversal"),
        ("/v1/balance", "GET", "retrieve_balance"),
        ("/v1/balance_transactions", "GET", "list_balance_transactions"),
        ("/v1/balance_transactions/<id>", "GET", "retrieve_balance_transaction"),
        ("/v1/events", "GET", "list_events"),
        ("/v1/events/<id>", "GET", "retrieve_event"),
    ]
    return [Rule(path, methods=[method], endpoint=endpoint) for path, method, endpoint in spec]


URL_MAP = Map(_rules(), strict_slashes=False)


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body, indent=2) + "\n",
        status=status,
        mimetype="application/json",
        headers=headers or {},
    )


def unrecognized(method: str, path: str) -> StripeError:
    return StripeError(
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or "
        f"we can help at https://support.stripe.com/.",
        status=404,
        store=False,
    )


def _api_key(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        return auth.username
    return None


def _key_kind(key: str) -> str | None:
    if key.startswith(("sk_test_", "rk_test_")) and len(key) > 8:
        return "secret"
    if key.startswith("pk_test_") and len(key) > 8:
        return "publishable"
    return None


def _auth_error(key: str | None) -> StripeError:
    if key is None:
        message = (
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY')."
        )
    else:
        message = f"Invalid API Key provided: {key[:8]}{'*' * 4}{key[-4:]}"
    return StripeError(message, status=401, type="invalid_request_error", store=False)


def handle_api_request(state: EmulatorState, request: Request) -> Response:
    """Serve one `/v1/...` request in Stripe's wire format."""
    request_id = f"req_{random_token(14)}"
    headers = {
        "Request-Id": request_id,
        "Stripe-Version": request.headers.get("Stripe-Version") or API_VERSION,
    }

    def error(err: StripeError, extra: dict[str, str] | None = None) -> Response:
        return json_response(err.status, err.body(), {**headers, **err.headers, **(extra or {})})

    method, path = request.method, request.path

    fault = state.take_fault(method, path)
    if fault is not None and fault.delay_ms:
        state.stopping.wait(fault.delay_ms / 1000)
    if fault is not None and fault.status and fault.mode == "before":
        return error(api_error(fault.status, f"Injected fault ({fault.id}) before execution."))

    key = _api_key(request)
    kind = _key_kind(key) if key else None
    if kind is None:
        return error(_auth_error(key))
    try:
        endpoint, args = URL_MAP.bind("emulator").match(path, method)
    except (NotFound, MethodNotAllowed):
        return error(unrecognized(method, path))
    if kind == "publishable" and endpoint not in PUBLISHABLE_ENDPOINTS:
        return error(
            StripeError(
                "This API call cannot be made with a publishable API key. Please use a secret "
                "API key. You can find a list of your API keys at "
                "https://dashboard.stripe.com/account/apikeys.",
                status=401,
                store=False,
            )
        )

    pairs = list(request.args.items(multi=True))
    if method == "POST":
        pairs += list(request.form.items(multi=True))
    params = decode_params(pairs)

    idem_key = request.headers.get("Idempotency-Key") if method == "POST" else None
    slot: tuple[str, str] | None = None
    if idem_key:
        headers["Idempotency-Key"] = idem_key
        if len(idem_key) > 255:
            return error(
                param_error("Idempotency-Key must be at most 255 characters.", "Idempotency-Key")
            )
        slot = (key or "", idem_key)
        with state.lock:
            entry = state.idempotency.get(slot)
            if entry is None:
                state.idempotency[slot] = IdempotencyEntry(method, path, params, request_id)
            elif entry.status is None:
                return error(
                    StripeError(
                        "There is currently another in-progress request using this Stripe "
                        "Idempotency Key (that probably means you submitted twice, and the "
                        "other request is still going through): "
                        f"{idem_key}. Please try again later.",
                        status=409,
                        type="idempotency_error",
                        code="idempotency_key_in_use",
                        store=False,
                    )
                )
            elif (entry.method, entry.path, entry.params) != (method, path, params):
                return error(
                    StripeError(
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{idem_key}' if you meant to execute a different request.",
                        type="idempotency_error",
                        store=False,
                    )
                )
            else:
                replay = {"Idempotent-Replayed": "true", "Original-Request": entry.request_id}
                if (entry.status or 0) >= 500:
                    replay["Stripe-Should-Retry"] = "false"
                return json_response(entry.status or 500, entry.body or {}, {**headers, **replay})

    call = r.Call(
        state=state,
        params=Params(params),
        publishable=kind == "publishable",
        stripe_account=request.headers.get("Stripe-Account") or None,
        base_url=request.url_root,
    )
    token = current_request.set(RequestInfo(request_id, idem_key, request.url_root))
    tracking = tracking_changes.set(method != "GET")
    extra_headers: dict[str, str] = {}
    try:
        with state.lock:
            try:
                status, body, store = 200, HANDLERS[endpoint](call, **args), True
            except StripeError as exc:
                status, body, store = exc.status, exc.body(), exc.store
                extra_headers = exc.headers
            except Exception:
                log.exception("stripe emulator: %s %s failed", method, path)
                status, body, store = 500, api_error().body(), True
            if slot is not None:
                stored = state.idempotency.get(slot)
                if store and stored is not None:
                    stored.status, stored.body = status, body
                    state.remember_answer(slot)
                else:
                    state.idempotency.pop(slot, None)
            state.commit()
    finally:
        tracking_changes.reset(tracking)
        current_request.reset(token)

    if fault is not None and fault.status and fault.mode == "after":
        return error(api_error(fault.status, f"Injected fault ({fault.id}) after execution."))
    return json_response(status, body, {**headers, **extra_headers})
