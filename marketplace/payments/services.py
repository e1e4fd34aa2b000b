"""The payment steps of the saga: authorize, webhooks, capture, void, Connect onboarding.

No network call happens inside a transaction: intent is recorded, committed, Stripe is
called with an idempotency key derived from our ids, and the result is recorded in a new
transaction. Every step is safe to run twice.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from marketplace.catalog.models import Vendor
from marketplace.catalog.services import get_vendor
from marketplace.db import db, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.orders import fulfilment
from marketplace.orders.models import Order, OrderStatus, VendorOrder, VendorOrderStatus
from marketplace.payments import gateway
from marketplace.payments.models import Payment, PaymentStatus, StripeEvent
from marketplace.payouts import ledger
from marketplace.validation import is_whole_number

log = logging.getLogger(__name__)

AUTHORIZED_EVENTS = {"payment_intent.amount_capturable_updated", "payment_intent.succeeded"}


# --- authorization -------------------------------------------------------------------------


def payment_for_checkout(order_id: int) -> dict[str, Any]:
    """The client's payment details for an order, creating its PaymentIntent on first call.

    If Stripe cannot be reached the order stays `pending_payment` with its reservation;
    replaying the checkout retries with the same Stripe idempotency key.
    """
    order = db.session.get(Order, order_id)
    settings = gateway.settings()
    payment: dict[str, Any] = {
        "provider": "stripe",
        "payment_intent_id": order.payment_intent_id,
        "client_secret": None,
        "publishable_key": settings.publishable_key,
        "api_base": settings.api_base or "https://api.stripe.com",
        "status": None,
    }
    try:
        if order.payment_intent_id is None:
            if order.status is not OrderStatus.PENDING_PAYMENT:
                return payment
            intent = gateway.create_payment_intent(order.id, order.total_cents, order.currency)
            _record_intent(order, intent)
        else:
            intent = gateway.retrieve_payment_intent(order.payment_intent_id)
    except (gateway.PaymentProviderError, gateway.PaymentProviderRejected) as error:
        log.warning("payment intent for order %s not available: %s", order_id, error)
        payment["error"] = {"code": error.code, "message": error.message}
        return payment
    payment["payment_intent_id"] = intent["id"]
    payment["client_secret"] = intent.get("client_secret")
    payment["status"] = intent.get("status")
    return payment


def _record_intent(order: Order, intent: dict[str, Any]) -> None:
    with transaction():
        claimed = db.session.execute(
            update(Order)
            .where(Order.id == order.id, Order.payment_intent_id.is_(None))
            .values(payment_intent_id=intent["id"])
        )
        if claimed.rowcount == 1:
            db.session.add(
                Payment(
                    order_id=order.id,
                    payment_intent_id=intent["id"],
                    status=PaymentStatus.REQUIRES_PAYMENT,
                    currency=order.currency,
                    amount_cents=order.total_cents,
                )
            )
    db.session.refresh(order)


def payment_of(order_id: int) -> Payment | None:
    return db.session.scalar(select(Payment).where(Payment.order_id == order_id))


# --- webhooks ------------------------------------------------------------------------------


def handle_webhook(payload: bytes, signature_header: str) -> str:
    """Verify and apply one Stripe event, once per event id. :raises InvalidWebhook:"""
    event = gateway.parse_webhook(payload, signature_header)
    return apply_event(event)


def apply_event(event: dict[str, Any]) -> str:
    """Apply a verified event in one transaction with its dedupe row. Returns the outcome."""
    event_id, event_type = str(event["id"]), str(event["type"])
    try:
        with transaction():
            if db.session.get(StripeEvent, event_id) is not None:
                return "duplicate"
            db.session.add(StripeEvent(id=event_id, type=event_type))
            db.session.flush()
            outcome = _apply(event_type, event["data"]["object"])
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    return outcome


def _apply(event_type: str, obj: dict[str, Any]) -> str:
    if event_type.startswith("payment_intent."):
        return _apply_payment_intent(event_type, obj)
    if event_type == "account.updated":
        return _apply_account(obj)
    return "ignored"


def _order_for_intent(intent: dict[str, Any]) -> Order | None:
    order_id = (intent.get("metadata") or {}).get("order_id")
    if order_id is None or not is_whole_number(str(order_id)):
        order_id = db.session.scalar(
            select(Order.id).where(Order.payment_intent_id == intent["id"])
        )
    if order_id is None:
        return None
    order = fulfilment.locked_order(int(order_id))
    if order is None or order.payment_intent_id not in (None, intent["id"]):
        return None
    return order


def _apply_payment_intent(event_type: str, intent: dict[str, Any]) -> str:
    order = _order_for_intent(intent)
    if order is None:
        return "unknown_order"
    payment = payment_of(order.id)
    if payment is None:  # the webhook beat our own bookkeeping after creating the intent
        order.payment_intent_id = intent["id"]
        payment = Payment(
            order_id=order.id,
            payment_intent_id=intent["id"],
            currency=order.currency,
            amount_cents=order.total_cents,
            status=PaymentStatus.REQUIRES_PAYMENT,
        )
        db.session.add(payment)
    status = intent.get("status")
    if event_type in AUTHORIZED_EVENTS and status in ("requires_capture", "succeeded"):
        first_authorization = payment.status is PaymentStatus.REQUIRES_PAYMENT
        if first_authorization:
            payment.status = PaymentStatus.AUTHORIZED
            payment.amount_authorized_cents = int(
                intent.get("amount_capturable") or intent.get("amount") or 0
            )
            payment.authorized_at = utcnow()
        if intent.get("amount") != order.total_cents:
            outbox.add("marketplace.payments.jobs.void_payment", order.id, "amount_mismatch")
            return "amount_mismatch"
        cancelled = order.status is OrderStatus.CANCELLED
        if first_authorization and cancelled and not fulfilment.expired_cancellation(order):
            # Paid from a page left open after the order was cancelled: give the hold back.
            outbox.add("marketplace.payments.jobs.void_payment", order.id, "order_cancelled")
            return "voided_cancelled"
        if not fulfilment.mark_paid(order):
            outbox.add("marketplace.payments.jobs.void_payment", order.id, "out_of_stock")
            outbox.add("marketplace.notifications.jobs.payment_voided", order.id)
            return "voided_out_of_stock"
        return "paid"
    if event_type == "payment_intent.payment_failed":
        fulfilment.mark_payment_failed(order)
        return "payment_failed"
    if event_type == "payment_intent.canceled":
        payment.status = PaymentStatus.CANCELED
        fulfilment.mark_payment_canceled(order)
        return "canceled"
    return "ignored"


def _apply_account(account: dict[str, Any]) -> str:
    vendor = db.session.scalar(select(Vendor).where(Vendor.stripe_account_id == account["id"]))
    if vendor is None:
        return "unknown_account"
    vendor.payouts_enabled = gateway.account_is_payable(account)
    return "account_updated"


# --- capture and void ----------------------------------------------------------------------


def _active_vendor_orders(order: Order) -> list[VendorOrder]:
    return [vo for vo in order.vendor_orders if vo.status is not VendorOrderStatus.CANCELLED]


def capture_order(order_id: int) -> Payment | None:
    """Capture the authorization minus what was cancelled before the first shipment.

    Record the intent first: under the order's lock the amount is fixed and the payment marked
    `capturing` (cancellations wait for the answer), then Stripe is called with a key that
    names that amount, so a retry after a lost answer repeats the very same capture.
    """
    with transaction():
        payment = payment_of(order_id)
        if payment is None or payment.status not in (
            PaymentStatus.AUTHORIZED,
            PaymentStatus.CAPTURING,
        ):
            return payment
        if payment.status is PaymentStatus.AUTHORIZED:
            order = fulfilment.locked_order(order_id)
            amount = sum(vo.total_cents for vo in _active_vendor_orders(order))
            if amount > 0:
                payment.status = PaymentStatus.CAPTURING
                payment.capture_amount_cents = amount
        else:
            amount = payment.capture_amount_cents or 0
        pi_id = payment.payment_intent_id
    if amount == 0:
        void_payment(order_id, "all_cancelled")
        return payment_of(order_id)
    intent = gateway.capture_payment_intent(pi_id, amount, key=f"capture:order:{order_id}:{amount}")
    charge = intent.get("latest_charge")
    charge_id = charge["id"] if isinstance(charge, dict) else charge
    with transaction():
        claimed = db.session.execute(
            update(Payment)
            .where(Payment.order_id == order_id, Payment.status == PaymentStatus.CAPTURING)
            .values(
                status=PaymentStatus.CAPTURED,
                amount_captured_cents=int(intent.get("amount_received") or amount),
                charge_id=charge_id,
                captured_at=utcnow(),
            )
        )
        if claimed.rowcount == 1:
            # No part was cancelled while `capturing`: these are the parts just captured.
            order = db.session.get(Order, order_id)
            for vendor_order in _active_vendor_orders(order):
                ledger.record_capture(vendor_order, charge_id)
    return payment_of(order_id)


# Our reasons for voiding, in Stripe's `cancellation_reason` vocabulary.
_STRIPE_CANCELLATION_REASONS = {
    "amount_mismatch": "fraudulent",
    "order_cancelled": "requested_by_customer",
}


def void_payment(order_id: int, reason: str) -> None:
    """Cancel an uncaptured authorization (nothing was taken from the buyer)."""
    payment = payment_of(order_id)
    if payment is None or payment.status in (PaymentStatus.CANCELED, PaymentStatus.CAPTURED):
        return
    pi_id = payment.payment_intent_id
    db.session.rollback()
    stripe_reason = _STRIPE_CANCELLATION_REASONS.get(reason, "abandoned")
    try:
        gateway.cancel_payment_intent(pi_id, key=f"void:order:{order_id}", reason=stripe_reason)
    except gateway.PaymentProviderRejected:
        current = gateway.retrieve_payment_intent(pi_id)
        if current.get("status") != "canceled":
            raise
    with transaction():
        db.session.execute(
            update(Payment)
            .where(Payment.order_id == order_id, Payment.status != PaymentStatus.CAPTURED)
            .values(status=PaymentStatus.CANCELED)
        )


def settle_cancellation(vendor_order_id: int) -> None:
    """A paid VendorOrder was cancelled before shipping: void or refund its money."""
    vendor_order = db.session.get(VendorOrder, vendor_order_id)
    payment = payment_of(vendor_order.order_id)
    if payment is None:
        return
    if payment.status is PaymentStatus.CAPTURED:
        from marketplace.payouts import refunds

        refunds.refund_cancelled_vendor_order(vendor_order_id)
    elif payment.status is PaymentStatus.AUTHORIZED:
        order = db.session.get(Order, vendor_order.order_id)
        if not _active_vendor_orders(order):
            void_payment(order.id, "all_cancelled")


# --- Connect onboarding --------------------------------------------------------------------


def start_onboarding(vendor_id: int, refresh_url: str, return_url: str) -> tuple[str, str]:
    """Create the vendor's Express account (once) and a fresh onboarding link."""
    vendor = get_vendor(vendor_id)
    account_id = vendor.stripe_account_id
    email = vendor.user.email
    db.session.rollback()
    if account_id is None:
        account = gateway.create_express_account(vendor_id, email)
        with transaction():
            db.session.execute(
                update(Vendor)
                .where(Vendor.id == vendor_id, Vendor.stripe_account_id.is_(None))
                .values(stripe_account_id=account["id"])
            )
        account_id = get_vendor(vendor_id).stripe_account_id
    url = gateway.create_account_link(account_id, refresh_url, return_url)
    return account_id, url


def refresh_account(vendor_id: int) -> Vendor:
    """Re-read the vendor's account from Stripe (reaching return_url proves nothing)."""
    vendor = get_vendor(vendor_id)
    if vendor.stripe_account_id is None:
        return vendor
    account = gateway.retrieve_account(vendor.stripe_account_id)
    with transaction():
        vendor = get_vendor(vendor_id)
        vendor.payouts_enabled = gateway.account_is_payable(account)
    return vendor


AUTHORIZATION_CAPTURE_AFTER_DAYS = 6


def capture_expiring_authorizations() -> int:
    """Capture authorizations older than six days: Stripe releases them after seven."""
    from datetime import timedelta

    cutoff = utcnow() - timedelta(days=AUTHORIZATION_CAPTURE_AFTER_DAYS)
    order_ids = list(
        db.session.scalars(
            select(Payment.order_id).where(
                or_(
                    and_(
                        Payment.status == PaymentStatus.AUTHORIZED,
                        Payment.authorized_at <= cutoff,
                    ),
                    # a capture whose answer never got recorded: repeat it (same key)
                    Payment.status == PaymentStatus.CAPTURING,
                )
            )
        )
    )
    db.session.rollback()
    for order_id in order_ids:
        try:
            capture_order(order_id)
        except gateway.PaymentProviderError:
            log.warning("capture of expiring authorization %s failed; will retry", order_id)
    return len(order_ids)
