"""Capture at the first shipment, void, and what follows when Stripe refuses or lets go.

The capture records its intent first (a `Capture` row `requested`, the amount fixed under the
order's lock, the payment `capturing`), then calls Stripe with the row's key (`capture:<id>`),
then records the answer or the webhook, whichever comes first (`succeeded` | `failed`, through
`payments.state.CAPTURE_TRANSITIONS`). A refusal is compensated in the transaction that
records it: back to `authorized` while the hold is there, or the order loses its
payment (parts not shipped cancelled and restocked) when Stripe let the authorization lapse.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from marketplace.audit import services as audit
from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict, NotFound
from marketplace.jobs import outbox
from marketplace.orders import fulfilment
from marketplace.orders.models import Order, VendorOrder, VendorOrderStatus
from marketplace.payments import gateway
from marketplace.payments.models import Capture, CaptureStatus, Payment, PaymentStatus
from marketplace.payments.services import payment_of
from marketplace.payments.state import can_move, move_capture, move_payment
from marketplace.payouts import ledger
from marketplace.settlement import refunds

log = logging.getLogger(__name__)

# Stripe releases an uncaptured authorization after seven days unless told otherwise.
AUTHORIZATION_LIFETIME = timedelta(days=7)


def active_vendor_orders(order: Order) -> list[VendorOrder]:
    return [vo for vo in order.vendor_orders if vo.status is not VendorOrderStatus.CANCELLED]


def capture_order(order_id: int) -> Payment | None:
    """Capture the authorization minus what was cancelled before the first shipment.

    Record the intent first: under the order's lock the amount is fixed in a `Capture` row
    (`requested`) and the payment marked `capturing` (cancellations wait for the answer), then
    Stripe is called with the row's key (`capture:<id>`), so a retry after a lost answer
    repeats the very same capture; the answer (or the webhook, whichever comes first) moves
    the row to `succeeded` or `failed`.
    """
    with transaction():
        fulfilment.locked_order(order_id)
        payment = payment_of(order_id)
        if payment is None or payment.status not in (
            PaymentStatus.AUTHORIZED,
            PaymentStatus.CAPTURING,
        ):
            return payment
        db.session.refresh(payment)  # read under the lock: another run may have started it
        step = requested_capture(payment.id)
        if payment.status is PaymentStatus.AUTHORIZED:
            order = db.session.get(Order, order_id)
            amount = sum(vo.total_cents for vo in active_vendor_orders(order))
            if amount > 0:
                move_payment(payment, PaymentStatus.CAPTURING)
                step = Capture(
                    payment_id=payment.id,
                    order_id=order_id,
                    amount_cents=amount,
                    currency=payment.currency,
                    status=CaptureStatus.REQUESTED,
                )
                db.session.add(step)
                db.session.flush()
        elif step is None:  # capturing without its row: a bug, never a Stripe answer
            raise AssertionError(f"payment of order {order_id} is capturing with no capture")
        capture_id, amount = (step.id, step.amount_cents) if step else (None, 0)
        key = step.idempotency_key if step else ""
        pi_id = payment.payment_intent_id
    if capture_id is None:
        void_payment(order_id, "all_cancelled")
        return payment_of(order_id)
    try:
        intent = gateway.capture_payment_intent(pi_id, amount, key=key)
    except gateway.PaymentProviderRejected as refusal:
        intent = gateway.retrieve_payment_intent(pi_id)  # what Stripe holds now decides
        if intent.get("status") != "succeeded":
            _capture_refused(order_id, capture_id, intent, refusal.message)
            return payment_of(order_id)
    with transaction():
        fulfilment.locked_order(order_id)
        record_captured(capture_id, intent)
    return payment_of(order_id)


def requested_capture(payment_id: int) -> Capture | None:
    """The payment's capture asked of Stripe and not answered yet (at most one)."""
    return db.session.scalar(
        select(Capture).where(
            Capture.payment_id == payment_id, Capture.status == CaptureStatus.REQUESTED
        )
    )


def captures_of(order_id: int) -> list[Capture]:
    return list(
        db.session.scalars(select(Capture).where(Capture.order_id == order_id).order_by(Capture.id))
    )


def record_captured(capture_id: int, intent: dict[str, Any]) -> bool:
    """Stripe captured it (its answer, or `payment_intent.succeeded`; inside the caller's
    transaction, the order locked): the capture `succeeded`, the payment `captured`, the books
    take the parts captured. False when the other of the two recorded it first."""
    step = db.session.get(Capture, capture_id)
    charge = intent.get("latest_charge")
    charge_id = charge["id"] if isinstance(charge, dict) else charge
    received = int(intent.get("amount_received") or step.amount_cents)
    if not move_capture(
        capture_id,
        CaptureStatus.REQUESTED,
        CaptureStatus.SUCCEEDED,
        amount_captured_cents=received,
        charge_id=charge_id,
        answered_at=utcnow(),
    ):
        return False
    claimed = db.session.execute(
        update(Payment)
        .where(Payment.id == step.payment_id, Payment.status == PaymentStatus.CAPTURING)
        .values(
            status=PaymentStatus.CAPTURED,
            amount_captured_cents=received,
            charge_id=charge_id,
            captured_at=utcnow(),
        )
    )
    if claimed.rowcount == 1:
        # No part was cancelled while `capturing`: these are the parts just captured.
        order = db.session.get(Order, step.order_id)
        for vendor_order in active_vendor_orders(order):
            ledger.record_capture(vendor_order, charge_id)
    return True


def fail_requested_capture(payment: Payment, reason: str) -> Capture | None:
    """The authorization is gone (`payment_intent.canceled`, inside the webhook's transaction):
    the capture in flight, if any, failed; the webhook compensates (the order loses its
    payment)."""
    step = requested_capture(payment.id)
    if step is None:
        return None
    move_capture(
        step.id,
        CaptureStatus.REQUESTED,
        CaptureStatus.FAILED,
        failure_reason=reason,
        answered_at=utcnow(),
    )
    return step


def _capture_refused(order_id: int, capture_id: int, intent: dict[str, Any], reason: str) -> None:
    """Stripe refused the capture: the capture is `failed` with Stripe's answer, and in the
    same transaction compensated: if the authorization is gone the order lost its payment;
    if it is still there the payment goes back to authorized (cancellations work again, the
    hourly job tries again before the deadline, with a new capture) and the admins are told."""
    with transaction():
        order = fulfilment.locked_order(order_id)
        if not move_capture(
            capture_id,
            CaptureStatus.REQUESTED,
            CaptureStatus.FAILED,
            failure_reason=reason[:2000],
            answered_at=utcnow(),
        ):
            return  # a webhook or another run recorded the outcome first
        payment = payment_of(order_id)
        db.session.refresh(payment)
        if payment.status is not PaymentStatus.CAPTURING:
            return
        if intent.get("status") == "canceled":
            move_payment(payment, PaymentStatus.CANCELED)
            if active_vendor_orders(order):
                authorization_lapsed(order)
            return
        move_payment(payment, PaymentStatus.AUTHORIZED)
        outbox.add("marketplace.notifications.jobs.capture_refused", order_id)


# Our reasons for voiding, in Stripe's `cancellation_reason` vocabulary.
_STRIPE_CANCELLATION_REASONS = {
    "amount_mismatch": "fraudulent",
    "order_cancelled": "requested_by_customer",
}


def void_payment(order_id: int, reason: str) -> Payment | None:
    """Cancel an uncaptured authorization (nothing was taken from the buyer, the hold goes).

    The void is recorded as asked (`void_reason`) before Stripe is called (key
    `void:order:<id>`). The payment is `canceled` only once Stripe cancelled the intent; a
    refusal leaves it `authorized` (the hold is still on the card), records when and why
    (`void_refused_at`, `last_error`), tells the admins, and is tried again by the hourly
    sweeper (`retry_refused_voids`) or an admin. The buyer is told only after Stripe did it.
    """
    payment = payment_of(order_id)
    if payment is None or payment.status in (PaymentStatus.CANCELED, PaymentStatus.CAPTURED):
        return payment
    pi_id = payment.payment_intent_id
    key = f"void:order:{order_id}"
    if payment.void_attempt > 1:  # tried again after a refusal
        key = f"{key}:{payment.void_attempt}"
    if payment.void_reason is None:
        with transaction():
            db.session.execute(
                update(Payment)
                .where(Payment.order_id == order_id, Payment.void_reason.is_(None))
                .values(void_reason=reason[:32])
            )
    db.session.rollback()
    stripe_reason = _STRIPE_CANCELLATION_REASONS.get(reason, "abandoned")
    try:
        gateway.cancel_payment_intent(pi_id, key=key, reason=stripe_reason)
    except gateway.PaymentProviderRejected as refusal:
        current = gateway.retrieve_payment_intent(pi_id)
        if current.get("status") != "canceled":
            _void_refused(order_id, refusal)
            return payment_of(order_id)
    with transaction():
        fulfilment.locked_order(order_id)
        payment = payment_of(order_id)
        payment.void_refused_at = None  # Stripe did it (its webhook may have been first)
        if can_move(payment.status, PaymentStatus.CANCELED):
            move_payment(payment, PaymentStatus.CANCELED)
            if reason == "out_of_stock":  # the buyer paid for items sold out meanwhile
                outbox.add("marketplace.notifications.jobs.payment_voided", order_id)
    return payment_of(order_id)


def _void_refused(order_id: int, refusal: gateway.PaymentProviderRejected) -> None:
    with transaction():
        fulfilment.locked_order(order_id)
        payment = payment_of(order_id)
        if payment.status in (PaymentStatus.CANCELED, PaymentStatus.CAPTURED):
            return  # a webhook recorded the outcome first
        first = payment.void_refused_at is None
        payment.void_refused_at = utcnow()
        payment.void_attempt += 1  # that attempt is over: the next one asks with a new key
        payment.last_error = refusal.message[:2000]
        if first:
            outbox.add("marketplace.notifications.jobs.void_refused", order_id)
    log.warning("void of order %s refused by Stripe: %s", order_id, refusal.message)


class VoidNotRefused(Conflict):
    code, message = "void_not_refused", "Only a void Stripe refused can be tried again."


class VoidRefused(Conflict):
    code = "void_refused"
    message = "Stripe refused to cancel the authorization again; the hold is still there."


class PaymentNotFound(NotFound):
    code, message = "payment_not_found", "That order has no payment."


def retry_refused_void(order_id: int) -> Payment:
    """An admin tries a refused void again.

    :raises PaymentNotFound, VoidNotRefused, VoidRefused:
    """
    payment = payment_of(order_id)
    if payment is None:
        raise PaymentNotFound()
    if payment.void_refused_at is None or payment.status in (
        PaymentStatus.CANCELED,
        PaymentStatus.CAPTURED,
    ):
        raise VoidNotRefused()
    before = payment.status.value
    payment = void_payment(order_id, payment.void_reason or "abandoned")
    # The void is Stripe's call, outside any transaction: the attempt and its outcome are
    # recorded after it, refused or not.
    after = payment.status.value
    with transaction():
        audit.record(
            "void.retry",
            "order",
            order_id,
            {"payment_status": before},
            {"payment_status": after, "error": payment.last_error if after != "canceled" else None},
        )
    if payment.status is not PaymentStatus.CANCELED:
        raise VoidRefused(details={"stripe": payment.last_error})
    return payment


def refused_void_order_ids() -> list[int]:
    return list(
        db.session.scalars(
            select(Payment.order_id)
            .where(
                Payment.void_refused_at.is_not(None),
                Payment.status.not_in([PaymentStatus.CANCELED, PaymentStatus.CAPTURED]),
            )
            .order_by(Payment.void_refused_at, Payment.id)
        )
    )


def retry_refused_voids() -> int:
    """Periodic: ask Stripe again for every void it refused (one refusal never stops the
    others). Returns how many were tried."""
    order_ids = refused_void_order_ids()
    db.session.rollback()
    for order_id in order_ids:
        try:
            payment = payment_of(order_id)
            void_payment(order_id, payment.void_reason or "abandoned")
        except Exception:
            db.session.rollback()
            log.exception("retry of the refused void of order %s failed; will retry", order_id)
    return len(order_ids)


def settle_cancellation(vendor_order_id: int) -> None:
    """A paid VendorOrder was cancelled before shipping: void or refund its money."""
    vendor_order = db.session.get(VendorOrder, vendor_order_id)
    payment = payment_of(vendor_order.order_id)
    if payment is None:
        return
    if payment.status is PaymentStatus.CAPTURED:
        if not ledger.captured(vendor_order_id):
            return  # cancelled before the capture, which left it out: nothing was charged
        refunds.refund_cancelled_vendor_order(vendor_order_id)
    elif payment.status is PaymentStatus.AUTHORIZED:
        order = db.session.get(Order, vendor_order.order_id)
        if not active_vendor_orders(order):
            void_payment(order.id, "all_cancelled")


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


def holds_paid_parts(order: Order, payment: Payment) -> bool:
    """The authorization still backs parts of a paid order (not our own void of a cancelled
    or unpaid one): losing it now means goods would go out unpaid."""
    if payment.status not in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURING):
        return False
    return bool(active_vendor_orders(order)) and order.status not in fulfilment.UNPAID


def authorization_lapsed(order: Order) -> None:
    """Stripe let the authorization go before we captured it: nothing can be charged any more.
    What has not shipped is cancelled and restocked; the buyer and the admins are told (parts
    already shipped went out unpaid: the admins follow them up)."""
    fulfilment.cancel_unshipped_parts(order, actor="stripe", reason="authorization_lapsed")
    outbox.add("marketplace.notifications.jobs.payment_lapsed", order.id)
