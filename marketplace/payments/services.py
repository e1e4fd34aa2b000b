"""The payment steps of the saga: authorize, webhooks, capture, void, Connect onboarding.

No network call happens inside a transaction: intent is recorded, committed, Stripe is
called with an idempotency key derived from our ids, and the result is recorded in a new
transaction. Every step is safe to run twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
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
from marketplace.payments.state import can_move, move_payment
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
            outcome = _apply(event_type, event["data"]["object"], _event_time(event))
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    return outcome


def _event_time(event: dict[str, Any]) -> datetime:
    """When Stripe says the event happened (not when its webhook reached us)."""
    created = event.get("created")
    if isinstance(created, int) and created > 0:
        return datetime.fromtimestamp(created, UTC)
    return utcnow()


def _apply(event_type: str, obj: dict[str, Any], happened_at: datetime) -> str:
    if event_type.startswith("payment_intent."):
        return _apply_payment_intent(event_type, obj, happened_at)
    if event_type == "charge.succeeded":
        return _apply_authorized_charge(obj)
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


def _apply_authorized_charge(charge: dict[str, Any]) -> str:
    """Keep Stripe's own capture deadline (`capture_before`) of an uncaptured charge."""
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    capture_before = card.get("capture_before")
    if charge.get("captured") or not isinstance(capture_before, int):
        return "ignored"
    payment = db.session.scalar(
        select(Payment).where(Payment.payment_intent_id == charge.get("payment_intent"))
    )
    if payment is None:
        return "unknown_payment"
    payment.capture_before = datetime.fromtimestamp(capture_before, UTC)
    return "capture_deadline"


# Stripe releases an uncaptured authorization after seven days unless told otherwise.
AUTHORIZATION_LIFETIME = timedelta(days=7)


def _apply_payment_intent(event_type: str, intent: dict[str, Any], happened_at: datetime) -> str:
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
            move_payment(payment, PaymentStatus.AUTHORIZED)
            payment.amount_authorized_cents = int(
                intent.get("amount_capturable") or intent.get("amount") or 0
            )
            payment.authorized_at = happened_at
            if payment.capture_before is None:  # the charge's own deadline may come later
                payment.capture_before = happened_at + AUTHORIZATION_LIFETIME
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
        if not can_move(payment.status, PaymentStatus.CANCELED):
            return "ignored_out_of_order"  # captured (or already canceled) stays so
        lapsed = _holds_paid_parts(order, payment)
        move_payment(payment, PaymentStatus.CANCELED)
        if lapsed:
            _authorization_lapsed(order)
            return "authorization_lapsed"
        fulfilment.mark_payment_canceled(order)
        return "canceled"
    return "ignored"


def _holds_paid_parts(order: Order, payment: Payment) -> bool:
    """The authorization still backs parts of a paid order (not our own void of a cancelled
    or unpaid one): losing it now means goods would go out unpaid."""
    if payment.status not in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURING):
        return False
    return bool(_active_vendor_orders(order)) and order.status not in fulfilment.UNPAID


def _authorization_lapsed(order: Order) -> None:
    """Stripe let the authorization go before we captured it: nothing can be charged any more.
    What has not shipped is cancelled and restocked; the buyer and the admins are told (parts
    already shipped went out unpaid: the admins follow them up)."""
    fulfilment.cancel_unshipped_parts(order, actor="stripe", reason="authorization_lapsed")
    outbox.add("marketplace.notifications.jobs.payment_lapsed", order.id)


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
                move_payment(payment, PaymentStatus.CAPTURING)
                payment.capture_amount_cents = amount
        else:
            amount = payment.capture_amount_cents or 0
        pi_id = payment.payment_intent_id
    if amount == 0:
        void_payment(order_id, "all_cancelled")
        return payment_of(order_id)
    try:
        intent = gateway.capture_payment_intent(
            pi_id, amount, key=f"capture:order:{order_id}:{amount}"
        )
    except gateway.PaymentProviderRejected as refusal:
        intent = gateway.retrieve_payment_intent(pi_id)  # what Stripe holds now decides
        if intent.get("status") != "succeeded":
            _capture_refused(order_id, intent, refusal)
            return payment_of(order_id)
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


def _capture_refused(
    order_id: int, intent: dict[str, Any], refusal: gateway.PaymentProviderRejected
) -> None:
    """Stripe refused the capture: if the authorization is gone the order lost its payment;
    if it is still there the payment goes back to authorized (cancellations work again, the
    hourly job tries again before the deadline) and the admins are told."""
    with transaction():
        order = fulfilment.locked_order(order_id)
        payment = payment_of(order_id)
        if payment is None or payment.status is not PaymentStatus.CAPTURING:
            return  # a webhook or another run recorded the outcome first
        payment.last_error = refusal.message[:2000]
        if intent.get("status") == "canceled":
            move_payment(payment, PaymentStatus.CANCELED)
            if _active_vendor_orders(order):
                _authorization_lapsed(order)
            return
        move_payment(payment, PaymentStatus.AUTHORIZED)
        payment.capture_amount_cents = None
        outbox.add("marketplace.notifications.jobs.capture_refused", order_id)


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
        if not ledger.captured(vendor_order_id):
            return  # cancelled before the capture, which left it out: nothing was charged
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


# Capture this long before Stripe's deadline: a day of slack for retries and outages.
CAPTURE_MARGIN = timedelta(days=1)


def capture_expiring_authorizations() -> int:
    """Capture authorizations whose deadline at Stripe is less than a day away (and repeat
    captures whose answer was never recorded). One refusal never stops the others."""
    deadline = utcnow() + CAPTURE_MARGIN
    order_ids = list(
        db.session.scalars(
            select(Payment.order_id)
            .where(
                or_(
                    and_(
                        Payment.status == PaymentStatus.AUTHORIZED,
                        or_(
                            Payment.capture_before <= deadline,
                            and_(
                                Payment.capture_before.is_(None),
                                Payment.authorized_at <= deadline - AUTHORIZATION_LIFETIME,
                            ),
                        ),
                    ),
                    # a capture whose answer never got recorded: repeat it (same key)
                    Payment.status == PaymentStatus.CAPTURING,
                )
            )
            .order_by(Payment.capture_before, Payment.id)
        )
    )
    db.session.rollback()
    for order_id in order_ids:
        try:
            capture_order(order_id)
        except Exception:
            db.session.rollback()
            log.exception("capture of expiring authorization %s failed; will retry", order_id)
    return len(order_ids)
