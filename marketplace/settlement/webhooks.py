"""Stripe's webhooks, the saga's source of truth: each verified event applied once.

An event never moves a step backwards (a captured payment stays captured whatever
`payment_intent.canceled` says); its time is Stripe's, not the time it reached us.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from marketplace import metrics
from marketplace.db import db, insert_unless_present, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.orders import fulfilment
from marketplace.orders.models import Order, OrderStatus
from marketplace.payments import gateway
from marketplace.payments import services as payments
from marketplace.payments.models import Payment, PaymentStatus, StripeEvent
from marketplace.payments.services import payment_of
from marketplace.payments.state import can_move, move_payment
from marketplace.settlement import capture, disputes
from marketplace.validation import is_whole_number

AUTHORIZED_EVENTS = {"payment_intent.amount_capturable_updated", "payment_intent.succeeded"}


def handle_webhook(payload: bytes, signature_header: str) -> str:
    """Verify and apply one Stripe event, once per event id. :raises InvalidWebhook:"""
    try:
        event = gateway.parse_webhook(payload, signature_header)
    except gateway.InvalidWebhook:
        metrics.WEBHOOKS.labels(type="unknown", outcome="invalid_signature").inc()
        raise
    outcome = apply_event(event)
    metrics.WEBHOOKS.labels(type=str(event.get("type")), outcome=outcome).inc()
    if outcome in _AUTHORIZATION_OUTCOMES:
        metrics.PAYMENT_AUTHORIZATIONS.labels(outcome=_AUTHORIZATION_OUTCOMES[outcome]).inc()
    return outcome


# Webhook outcomes that answer an authorization: the card was held, or it was refused.
_AUTHORIZATION_OUTCOMES = {"paid": "authorized", "payment_failed": "failed"}


def apply_event(event: dict[str, Any]) -> str:
    """Apply a verified event in one transaction with its dedupe row. Returns the outcome.

    Only the dedupe row's own conflict means "already applied" (a delivery racing this one
    waits for that one's commit, then inserts nothing); any other database error fails the
    request, so Stripe delivers the event again.
    """
    event_id, event_type = str(event["id"]), str(event["type"])
    apply = _HANDLERS.get(event_type)
    if apply is None:
        # an event the saga does not act on changes nothing: no dedupe row, no order lock
        return "ignored"
    with transaction():
        recorded = db.session.execute(
            insert_unless_present(StripeEvent, ["id"], id=event_id, type=event_type).returning(
                StripeEvent.id
            )
        ).scalar_one_or_none()
        if recorded is None:
            return "duplicate"
        if event.get("account") and not event_type.startswith("account."):
            # a connected account's own payments are not the platform's orders
            return "ignored_connected_account"
        return apply(event["data"]["object"], _event_time(event))


def _event_time(event: dict[str, Any]) -> datetime:
    """When Stripe says the event happened (not when its webhook reached us)."""
    created = event.get("created")
    if isinstance(created, int) and created > 0:
        return datetime.fromtimestamp(created, UTC)
    return utcnow()


def _order_for_intent(intent: dict[str, Any]) -> Order | None:
    order_id = (intent.get("metadata") or {}).get("order_id")
    if order_id is None or not is_whole_number(str(order_id)):
        order_id = db.session.scalar(
            select(Order.id).where(Order.payment_intent_id == intent["id"])
        )
    if order_id is None:
        return None
    order = fulfilment.locked_order(int(order_id), with_parts=True)
    if order is None or order.payment_intent_id not in (None, intent["id"]):
        return None
    return order


def _apply_authorized_charge(charge: dict[str, Any]) -> str:
    """Keep Stripe's own capture deadline (`capture_before`) of an uncaptured charge."""
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    capture_before = card.get("capture_before")
    if charge.get("captured") or not isinstance(capture_before, int):
        return "ignored"
    kept = db.session.execute(
        _keep_capture_deadline(),
        {
            "intent_id": charge.get("payment_intent"),
            "deadline": datetime.fromtimestamp(capture_before, UTC),
        },
    )
    return "capture_deadline" if kept.rowcount == 1 else "unknown_payment"


@functools.cache
def _keep_capture_deadline() -> Any:
    # one statement, built once: every authorized payment's charge.succeeded runs it
    payments = Payment.__table__
    return (
        update(payments)
        .where(payments.c.payment_intent_id == bindparam("intent_id"))
        .values(capture_before=bindparam("deadline"))
    )


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
    if event_type == "payment_intent.succeeded" and payment.status is PaymentStatus.CAPTURING:
        # the capture's webhook beat its answer: it records the outcome, the answer finds it
        step = capture.requested_capture(payment.id)
        if step is not None and int(intent.get("amount_received") or 0) == step.amount_cents:
            capture.record_captured(step.id, intent)
            return "captured"
    if event_type in AUTHORIZED_EVENTS and status in ("requires_capture", "succeeded"):
        first_authorization = payment.status is PaymentStatus.REQUIRES_PAYMENT
        if first_authorization:
            move_payment(payment, PaymentStatus.AUTHORIZED)
            payment.amount_authorized_cents = int(
                intent.get("amount_capturable") or intent.get("amount") or 0
            )
            payment.authorized_at = happened_at
            if payment.capture_before is None:  # the charge's own deadline may come later
                payment.capture_before = happened_at + capture.AUTHORIZATION_LIFETIME
        if intent.get("amount") != order.total_cents:
            outbox.add("marketplace.settlement.jobs.void_payment", order.id, "amount_mismatch")
            return "amount_mismatch"
        cancelled = order.status is OrderStatus.CANCELLED
        if first_authorization and cancelled and not fulfilment.expired_cancellation(order):
            # Paid from a page left open after the order was cancelled: give the hold back.
            outbox.add("marketplace.settlement.jobs.void_payment", order.id, "order_cancelled")
            return "voided_cancelled"
        if not fulfilment.mark_paid(order):
            # the buyer is told once Stripe let the hold go (`void_payment`)
            outbox.add("marketplace.settlement.jobs.void_payment", order.id, "out_of_stock")
            return "voided_out_of_stock"
        return "paid"
    if event_type == "payment_intent.payment_failed":
        fulfilment.mark_payment_failed(order)
        return "payment_failed"
    if event_type == "payment_intent.canceled":
        if not can_move(payment.status, PaymentStatus.CANCELED):
            return "ignored_out_of_order"  # captured (or already canceled) stays so
        lapsed = capture.holds_paid_parts(order, payment)
        capture.fail_requested_capture(payment, "the authorization was canceled at Stripe")
        move_payment(payment, PaymentStatus.CANCELED)
        if lapsed:
            capture.authorization_lapsed(order)
            return "authorization_lapsed"
        fulfilment.mark_payment_canceled(order)
        return "canceled"
    return "ignored"


def _payment_intent_handler(event_type: str) -> Callable[[dict[str, Any], datetime], str]:
    return lambda intent, happened_at: _apply_payment_intent(event_type, intent, happened_at)


# Every event the saga acts on, and how; the webhook endpoint at Stripe needs only these.
_HANDLERS: dict[str, Callable[[dict[str, Any], datetime], str]] = {
    **{
        event_type: _payment_intent_handler(event_type)
        for event_type in (
            *sorted(AUTHORIZED_EVENTS),
            "payment_intent.payment_failed",
            "payment_intent.canceled",
        )
    },
    "charge.succeeded": lambda charge, _: _apply_authorized_charge(charge),
    "charge.refunded": lambda charge, _: disputes.charge_refunded(charge),
    "charge.dispute.created": lambda dispute, _: disputes.dispute_opened(dispute),
    "charge.dispute.closed": disputes.dispute_closed,
    "account.updated": payments.apply_account_update,
}
HANDLED_EVENTS = frozenset(_HANDLERS)
