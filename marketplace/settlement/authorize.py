"""Authorize: one manual-capture PaymentIntent per order, created after checkout commits."""

from __future__ import annotations

import functools
import logging
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm.attributes import set_committed_value

from marketplace import metrics
from marketplace.db import db, transaction
from marketplace.orders.models import Order, OrderStatus
from marketplace.payments import gateway
from marketplace.payments.models import Payment, PaymentStatus

log = logging.getLogger(__name__)


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
            metrics.PAYMENT_AUTHORIZATIONS.labels(outcome="requested").inc()
            intent = gateway.create_payment_intent(
                order.id, order.total_cents, order.currency, request_id=order.request_id
            )
            _record_intent(order, intent)
        else:
            intent = gateway.retrieve_payment_intent(order.payment_intent_id)
    except (gateway.PaymentProviderError, gateway.PaymentProviderRejected) as error:
        log.warning("payment intent for order %s not available: %s", order_id, error)
        metrics.PAYMENT_AUTHORIZATIONS.labels(outcome="unavailable").inc()
        payment["error"] = {"code": error.code, "message": error.message}
        return payment
    payment["payment_intent_id"] = intent["id"]
    payment["client_secret"] = intent.get("client_secret")
    payment["status"] = intent.get("status")
    return payment


def _record_intent(order: Order, intent: dict[str, Any]) -> None:
    """Keep the new intent on the order, unless a concurrent call kept its own first. The
    order stays loaded (a checkout answers from it)."""
    with transaction(keep_loaded=True):
        claimed = db.session.execute(
            _claim_intent(), {"order_id": order.id, "payment_intent_id": intent["id"]}
        )
        if claimed.rowcount == 1:
            db.session.execute(
                _insert_payment(),
                {
                    "order_id": order.id,
                    "payment_intent_id": intent["id"],
                    "status": PaymentStatus.REQUIRES_PAYMENT,
                    "currency": order.currency,
                    "amount_cents": order.total_cents,
                },
            )
    if claimed.rowcount == 1:
        set_committed_value(order, "payment_intent_id", intent["id"])
    else:
        db.session.refresh(order, ["payment_intent_id"])


@functools.cache
def _claim_intent() -> Any:
    # built once, and Core rather than ORM statements: every checkout runs both
    orders = Order.__table__
    return (
        update(orders)
        .where(orders.c.id == bindparam("order_id"), orders.c.payment_intent_id.is_(None))
        .values(payment_intent_id=bindparam("payment_intent_id"))
    )


@functools.cache
def _insert_payment() -> Any:
    return insert(Payment.__table__)
