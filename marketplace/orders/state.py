"""The Order and VendorOrder state machines: one transition function each.

Every change of status goes through `transition_order` / `transition_vendor_order`, which
check the allowed table, write a history row and raise `IllegalTransition` (409) otherwise.
"""

from __future__ import annotations

from sqlalchemy.orm.attributes import set_committed_value

from marketplace.db import db, insert_loaded, utcnow
from marketplace.errors import Conflict
from marketplace.orders.models import (
    Order,
    OrderHistory,
    OrderStatus,
    VendorOrder,
    VendorOrderStatus,
)

O, V = OrderStatus, VendorOrderStatus  # noqa: E741  (short names keep the tables readable)

ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    O.PENDING_PAYMENT: frozenset({O.PAID, O.PAYMENT_FAILED, O.CANCELLED}),
    # A declined card can be retried with another one until the reservation expires.
    O.PAYMENT_FAILED: frozenset({O.PAID, O.CANCELLED}),
    O.PAID: frozenset(
        {O.PARTIALLY_FULFILLED, O.FULFILLED, O.CANCELLED, O.REFUNDED, O.PARTIALLY_REFUNDED}
    ),
    O.PARTIALLY_FULFILLED: frozenset({O.FULFILLED, O.REFUNDED, O.PARTIALLY_REFUNDED}),
    O.FULFILLED: frozenset({O.COMPLETED, O.REFUNDED, O.PARTIALLY_REFUNDED}),
    O.PARTIALLY_REFUNDED: frozenset(
        {O.PARTIALLY_FULFILLED, O.FULFILLED, O.COMPLETED, O.REFUNDED, O.CANCELLED}
    ),
    O.COMPLETED: frozenset({O.PARTIALLY_REFUNDED, O.REFUNDED}),
    O.CANCELLED: frozenset(),
    O.REFUNDED: frozenset(),
}

VENDOR_ORDER_TRANSITIONS: dict[VendorOrderStatus, frozenset[VendorOrderStatus]] = {
    V.PENDING_PAYMENT: frozenset({V.PAID, V.CANCELLED}),
    V.PAID: frozenset({V.PROCESSING, V.SHIPPED, V.CANCELLED, V.REFUNDED}),
    V.PROCESSING: frozenset({V.SHIPPED, V.CANCELLED, V.REFUNDED}),
    V.SHIPPED: frozenset({V.DELIVERED, V.REFUNDED}),
    V.DELIVERED: frozenset({V.COMPLETED, V.REFUNDED}),
    V.COMPLETED: frozenset({V.REFUNDED}),
    V.CANCELLED: frozenset(),
    V.REFUNDED: frozenset(),
}


class IllegalTransition(Conflict):
    code = "illegal_transition"
    message = "That change of status is not allowed."


def transition_order(
    order: Order, to: OrderStatus, *, actor: str, reason: str | None = None
) -> None:
    """:raises IllegalTransition:"""
    if to not in ORDER_TRANSITIONS[order.status]:
        raise IllegalTransition(
            f"Order {order.id} is {order.status.value} and cannot become {to.value}.",
            details={"order_id": order.id, "from": order.status.value, "to": to.value},
        )
    db.session.add(
        OrderHistory(
            order_id=order.id,
            from_status=order.status.value,
            to_status=to.value,
            actor=actor,
            reason=reason,
        )
    )
    order.status = to


def transition_vendor_order(
    vendor_order: VendorOrder, to: VendorOrderStatus, *, actor: str, reason: str | None = None
) -> None:
    """:raises IllegalTransition:"""
    if to not in VENDOR_ORDER_TRANSITIONS[vendor_order.status]:
        raise IllegalTransition(
            f"Vendor order {vendor_order.id} is {vendor_order.status.value} "
            f"and cannot become {to.value}.",
            details={
                "vendor_order_id": vendor_order.id,
                "from": vendor_order.status.value,
                "to": to.value,
            },
        )
    db.session.add(
        OrderHistory(
            order_id=vendor_order.order_id,
            vendor_order_id=vendor_order.id,
            from_status=vendor_order.status.value,
            to_status=to.value,
            actor=actor,
            reason=reason,
        )
    )
    vendor_order.status = to


EXPIRED = "reservation_expired"


def reopen_after_expiry(order: Order, *, actor: str) -> None:
    """The one way out of `cancelled`: an order cancelled only because its hold expired, whose
    payment then arrived and whose stock was reserved again, goes back to `pending_payment`
    (and its expired VendorOrders with it), with history, so it can become `paid`.

    :raises IllegalTransition: the order was cancelled for another reason.
    """
    if order.status is not OrderStatus.CANCELLED or order.cancel_reason != EXPIRED:
        raise IllegalTransition(
            f"Order {order.id} was not cancelled by an expired reservation.",
            details={"order_id": order.id, "from": order.status.value, "to": "pending_payment"},
        )
    reason = "payment_after_expiry"
    for vendor_order in order.vendor_orders:
        if vendor_order.status is V.CANCELLED and vendor_order.cancel_reason == EXPIRED:
            db.session.add(
                OrderHistory(
                    order_id=order.id,
                    vendor_order_id=vendor_order.id,
                    from_status=V.CANCELLED.value,
                    to_status=V.PENDING_PAYMENT.value,
                    actor=actor,
                    reason=reason,
                )
            )
            vendor_order.status = V.PENDING_PAYMENT
            vendor_order.cancel_reason = None
    db.session.add(
        OrderHistory(
            order_id=order.id,
            from_status=O.CANCELLED.value,
            to_status=O.PENDING_PAYMENT.value,
            actor=actor,
            reason=reason,
        )
    )
    order.status = O.PENDING_PAYMENT
    order.cancel_reason = None


def record_creation(order: Order, *, actor: str) -> None:
    """History rows for a new order and its VendorOrders (from nothing to pending_payment), in
    one statement, also kept on the objects so the new order can be shown without reading them
    back."""
    parts = list(order.vendor_orders)
    now = utcnow()
    rows = insert_loaded(
        OrderHistory,
        [
            {
                "order_id": order.id,
                "vendor_order_id": part.id if part is not None else None,
                "from_status": None,
                "to_status": (part or order).status.value,
                "actor": actor,
                "reason": None,
                "created_at": now,
            }
            for part in [None, *parts]
        ],
    )
    set_committed_value(order, "history", rows[:1])
    for part, row in zip(parts, rows[1:], strict=True):
        set_committed_value(part, "history", [row])
        set_committed_value(row, "vendor_order", part)
