"""The Stripe gateway: the only module that imports `stripe`.

Every POST carries an idempotency key derived from our own ids, so a retry — by the SDK, by an
RQ job, or by another process — can never charge, transfer or refund twice. Network retries
are on and timeouts are set. Stripe's errors become `PaymentProviderError` / `CardDeclined`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import stripe
from flask import current_app

from marketplace.errors import DomainError

MAX_NETWORK_RETRIES = 3
TIMEOUT_SECONDS = 10


class PaymentProviderError(DomainError):
    status, code = 502, "payment_provider_error"
    message = "The payment provider could not be reached; please try again."


class PaymentProviderRejected(DomainError):
    status, code = 409, "payment_provider_rejected"
    message = "The payment provider refused the request."


class InvalidWebhook(DomainError):
    status, code, message = 400, "invalid_signature", "The webhook signature is not valid."


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str
    publishable_key: str
    webhook_secret: str
    api_base: str | None


def settings() -> StripeSettings:
    config = current_app.config
    return StripeSettings(
        secret_key=config["STRIPE_SECRET_KEY"],
        publishable_key=config["STRIPE_PUBLISHABLE_KEY"],
        webhook_secret=config["STRIPE_WEBHOOK_SECRET"],
        api_base=config["STRIPE_API_BASE"] or None,
    )


def client() -> stripe.StripeClient:
    cached = current_app.extensions.get("stripe_client")
    if cached is not None:
        return cached
    s = settings()
    if not s.secret_key:
        raise PaymentProviderError("Stripe is not configured (STRIPE_SECRET_KEY).")
    http_client = stripe.RequestsClient(timeout=TIMEOUT_SECONDS)
    new_client = stripe.StripeClient(
        s.secret_key,
        base_addresses={"api": s.api_base} if s.api_base else None,
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=http_client,
    )
    current_app.extensions["stripe_client"] = new_client
    current_app.extensions["stripe_http_client"] = http_client
    return new_client


def reachable(timeout_seconds: float = 3.0) -> bool:
    """Does Stripe answer (GET /v1/balance), within a short timeout and without retries? For
    the admin health page: a slow answer must not hang it."""
    s = settings()
    if not s.secret_key:
        return False
    http_client = stripe.RequestsClient(timeout=timeout_seconds)
    try:
        probe = stripe.StripeClient(
            s.secret_key,
            base_addresses={"api": s.api_base} if s.api_base else None,
            max_network_retries=0,
            http_client=http_client,
        )
        probe.v1.balance.retrieve()
    except stripe.StripeError:
        return False
    finally:
        http_client.close()
    return True


def close_client(app: Any) -> None:
    """Close the app's Stripe HTTP session (tests create many apps)."""
    http_client = app.extensions.pop("stripe_http_client", None)
    app.extensions.pop("stripe_client", None)
    if http_client is not None:
        http_client.close()


def _call(method: Any, *args: Any, idempotency_key: str | None = None, **params: Any) -> Any:
    options = {"idempotency_key": idempotency_key} if idempotency_key else {}
    try:
        if args:
            return method(*args, params=params or None, options=options or None)
        return method(params=params or None, options=options or None)
    except stripe.CardError as error:
        raise PaymentProviderRejected(error.user_message or str(error)) from error
    except stripe.InvalidRequestError as error:
        raise PaymentProviderRejected(
            error.user_message or str(error), details={"stripe_code": error.code}
        ) from error
    except stripe.StripeError as error:
        raise PaymentProviderError(details={"stripe_error": type(error).__name__}) from error


def as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


# --- Connect accounts ----------------------------------------------------------------------


def create_express_account(vendor_id: int, email: str) -> dict[str, Any]:
    return as_dict(
        _call(
            client().v1.accounts.create,
            idempotency_key=f"account:vendor:{vendor_id}",
            type="express",
            email=email,
            capabilities={
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
            metadata={"vendor_id": str(vendor_id)},
        )
    )


def create_account_link(account_id: str, refresh_url: str, return_url: str) -> str:
    link = _call(
        client().v1.account_links.create,
        account=account_id,
        type="account_onboarding",
        refresh_url=refresh_url,
        return_url=return_url,
    )
    return str(link.url)


def retrieve_account(account_id: str) -> dict[str, Any]:
    return as_dict(_call(client().v1.accounts.retrieve, account_id))


def account_is_payable(account: dict[str, Any]) -> bool:
    capabilities = account.get("capabilities") or {}
    return bool(account.get("payouts_enabled")) and capabilities.get("transfers") == "active"


# --- payment intents -----------------------------------------------------------------------


def create_payment_intent(
    order_id: int, amount_cents: int, currency: str, *, request_id: str | None = None
) -> dict[str, Any]:
    """A manual-capture PaymentIntent for the order. `request_id` (the checkout request's, kept
    on the order so a retry sends the very same parameters) goes into its metadata."""
    metadata = {"order_id": str(order_id)}
    if request_id:
        metadata["request_id"] = request_id
    return as_dict(
        _call(
            client().v1.payment_intents.create,
            idempotency_key=f"payment_intent:order:{order_id}",
            amount=amount_cents,
            currency=currency,
            capture_method="manual",
            transfer_group=f"order:{order_id}",
            payment_method_types=["card"],
            metadata=metadata,
        )
    )


def retrieve_payment_intent(payment_intent_id: str) -> dict[str, Any]:
    return as_dict(_call(client().v1.payment_intents.retrieve, payment_intent_id))


def capture_payment_intent(payment_intent_id: str, amount_cents: int, key: str) -> dict[str, Any]:
    return as_dict(
        _call(
            client().v1.payment_intents.capture,
            payment_intent_id,
            idempotency_key=key,
            amount_to_capture=amount_cents,
            expand=["latest_charge"],
        )
    )


def cancel_payment_intent(payment_intent_id: str, key: str, reason: str) -> dict[str, Any]:
    return as_dict(
        _call(
            client().v1.payment_intents.cancel,
            payment_intent_id,
            idempotency_key=key,
            cancellation_reason=reason,
        )
    )


# --- transfers, refunds, reversals ---------------------------------------------------------


def create_transfer(
    *,
    key: str,
    amount_cents: int,
    currency: str,
    destination: str,
    source_transaction: str,
    transfer_group: str,
    metadata: dict[str, str],
) -> dict[str, Any]:
    return as_dict(
        _call(
            client().v1.transfers.create,
            idempotency_key=key,
            amount=amount_cents,
            currency=currency,
            destination=destination,
            source_transaction=source_transaction,
            transfer_group=transfer_group,
            metadata=metadata,
        )
    )


def create_refund(
    *, key: str, charge_id: str, amount_cents: int, metadata: dict[str, str]
) -> dict[str, Any]:
    return as_dict(
        _call(
            client().v1.refunds.create,
            idempotency_key=key,
            charge=charge_id,
            amount=amount_cents,
            metadata=metadata,
        )
    )


def create_transfer_reversal(
    *, key: str, transfer_id: str, amount_cents: int, metadata: dict[str, str]
) -> dict[str, Any]:
    return as_dict(
        _call(
            client().v1.transfers.reversals.create,
            transfer_id,
            idempotency_key=key,
            amount=amount_cents,
            metadata=metadata,
        )
    )


def list_transfer_reversals(transfer_id: str) -> list[dict[str, Any]]:
    """Every reversal of one transfer, auto-paginated."""
    page = _call(client().v1.transfers.reversals.list, transfer_id, limit=100)
    return [as_dict(item) for item in page.auto_paging_iter()]


def list_all(resource: str, **filters: Any) -> list[dict[str, Any]]:
    """Every object of a list endpoint (`charges`, `transfers`, `refunds`), auto-paginated."""
    service = getattr(client().v1, resource)
    page = _call(service.list, limit=100, **filters)
    return [as_dict(item) for item in page.auto_paging_iter()]


def retrieve_transfer(transfer_id: str) -> dict[str, Any]:
    return as_dict(_call(client().v1.transfers.retrieve, transfer_id))


def retrieve_charge(charge_id: str) -> dict[str, Any]:
    return as_dict(_call(client().v1.charges.retrieve, charge_id))


# --- webhooks ------------------------------------------------------------------------------


def parse_webhook(payload: bytes, signature_header: str) -> dict[str, Any]:
    """Verify Stripe's signature and decode the event. :raises InvalidWebhook:"""
    secret = settings().webhook_secret
    if not secret:
        raise InvalidWebhook("Webhook secret not configured.")
    # The SDK's own check of the signature, then plain JSON: construct_event would build the
    # event as StripeObjects, which the saga only turns back into dicts (a tenth of a paid
    # order's webhook time went there).
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature_header, secret, stripe.Webhook.DEFAULT_TOLERANCE
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise InvalidWebhook() from error
    if not isinstance(event, dict):
        raise InvalidWebhook()
    return event
