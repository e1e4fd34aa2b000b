"""After checkout: payment outcomes, shipping, delivery and cancellation of VendorOrders.

Each function runs inside the caller's transaction or owns one; money moves (capture,
transfer, refund, void) are recorded as outbox rows here and carried out by `payments/` and
`payouts/` after commit.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from marketplace.cart import services as carts
from marketplace.catalog.models import VendorStatus
from marketplace.coupons import services as coupons
from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.inventory import services as inventory
from marketplace.jobs import outbox
from marketplace.orders.models import (
    Order,
    OrderItem,
    OrderStatus,
    VendorOrder,
    VendorOrderStatus,
)
from marketplace.orders.state import (
    EXPIRED,
    reopen_after_expiry,
    transition_order,
    transition_vendor_order,
)

V = VendorOrderStatus
UNPAID = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_FAILED)
OPEN_BEFORE_SHIPPING = (V.PAID, V.PROCESSING)


class VendorOrderNotFound(NotFound):
    code, message = "vendor_order_not_found", "Order not found."


class VendorSuspended(Forbidden):
    code = "vendor_suspended"
    message = "Your shop is suspended: it cannot ship orders until an admin reinstates it."


def locked_order(order_id: int, *, with_parts: bool = False) -> Order | None:
    """The order, its row locked until the transaction ends; `with_parts` loads its vendor
    orders and their items in the same round trip (what settling a payment walks through)."""
    # populate_existing: the locked row's values replace any copy loaded before the lock
    query = (
        select(Order)
        .where(Order.id == order_id)
        .with_for_update(of=Order)
        .execution_options(populate_existing=True)
    )
    if with_parts:
        query = query.options(joinedload(Order.vendor_orders).joinedload(VendorOrder.items))
    return db.session.scalars(query).unique().one_or_none()


def vendor_order_for(vendor_id: int, vendor_order_id: int) -> VendorOrder:
    """:raises VendorOrderNotFound: missing or another vendor's."""
    vendor_order = db.session.get(VendorOrder, vendor_order_id)
    if vendor_order is None or vendor_order.vendor_id != vendor_id:
        raise VendorOrderNotFound()
    return vendor_order


def sync_order_status(order: Order, *, actor: str, reason: str | None = None) -> None:
    """Move the order to the status its VendorOrders imply (through the state machine)."""
    vendor_orders = order.vendor_orders
    active = [vo for vo in vendor_orders if vo.status not in (V.CANCELLED, V.REFUNDED)]
    if order.status in UNPAID:  # a part cancelled before payment: the rest still awaits it
        if not active:
            abandon_unpaid(order, actor=actor, reason=reason or "cancelled")
        return
    refunded_any = any(vo.status is V.REFUNDED for vo in vendor_orders) or any(
        item.refunded_quantity for vo in vendor_orders for item in vo.items
    )
    if not active:
        target = OrderStatus.REFUNDED if refunded_any else OrderStatus.CANCELLED
    elif all(vo.status in (V.DELIVERED, V.COMPLETED) for vo in active):
        target = OrderStatus.FULFILLED
    elif any(vo.status in (V.SHIPPED, V.DELIVERED, V.COMPLETED) for vo in active):
        target = OrderStatus.PARTIALLY_FULFILLED
    else:
        target = OrderStatus.PARTIALLY_REFUNDED if refunded_any else OrderStatus.PAID
    if target is OrderStatus.FULFILLED and refunded_any and order.status is OrderStatus.FULFILLED:
        return
    if target is not order.status:
        transition_order(order, target, actor=actor, reason=reason)


# --- payment outcomes (called by the webhook handler, inside its transaction) ---------------


def mark_paid(order: Order, *, actor: str = "stripe") -> bool:
    """The authorization succeeded: commit the reserved stock and mark everything paid.

    If the reservation was released meanwhile (expired, or a failed attempt), the stock is
    reserved again if it is still there. Returns False when it is not: the caller voids the
    payment and the order is cancelled.
    """
    if order.status not in UNPAID and not expired_cancellation(order):
        return True  # already paid (events arrive more than once and out of order)
    awaiting = [vo for vo in order.vendor_orders if _awaits_payment(vo)]
    # The usual case, an order paid while its hold stands, settles the hold in one statement;
    # only when nothing was held any more is the stock looked for again.
    committed = order.status is OrderStatus.PENDING_PAYMENT and inventory.commit(order.id) > 0
    if not committed and not inventory.active_reservations(order.id):
        # only parts this payment buys: not those a vendor cancelled meanwhile
        lines = [(item.variant_id, item.quantity) for vo in awaiting for item in vo.items]
        try:
            with db.session.begin_nested():
                inventory.reserve(order.id, lines, utcnow())
        except inventory.OutOfStock:
            if order.status in UNPAID:
                cancel_unpaid(order, actor=actor, reason="paid_after_expiry_out_of_stock")
            else:
                order.cancel_reason = "paid_after_expiry_out_of_stock"
            return False
    if expired_cancellation(order):
        coupons.retake(order)
        reopen_after_expiry(order, actor=actor)
    if order.status is OrderStatus.PAYMENT_FAILED:
        # The failed attempt put the items back in the cart; they are bought after all.
        carts.take_back_lines(
            order.buyer_id, [(i.variant_id, i.quantity) for vo in awaiting for i in vo.items]
        )
    if not committed:
        inventory.commit(order.id)
    for vendor_order in order.vendor_orders:
        if vendor_order.status is V.PENDING_PAYMENT:
            transition_vendor_order(vendor_order, V.PAID, actor=actor, reason="payment_authorized")
            vendor_order.cancel_reason = None
    transition_order(order, OrderStatus.PAID, actor=actor, reason="payment_authorized")
    order.cancel_reason = None
    outbox.add("marketplace.notifications.jobs.order_paid", order.id)
    bought = {item.variant_id for vo in order.vendor_orders for item in vo.items}
    for variant_id in sorted(bought):
        outbox.add("marketplace.notifications.jobs.low_stock", variant_id)
    return True


def _awaits_payment(vendor_order: VendorOrder) -> bool:
    """Unpaid, or cancelled only because the hold ran out (a late payment still buys it)."""
    return vendor_order.status is V.PENDING_PAYMENT or (
        vendor_order.status is V.CANCELLED and vendor_order.cancel_reason == EXPIRED
    )


def expired_cancellation(order: Order) -> bool:
    """Cancelled only because the reservation ran out: a late payment can still buy it."""
    return order.status is OrderStatus.CANCELLED and order.cancel_reason == "reservation_expired"


def mark_payment_failed(order: Order, *, actor: str = "stripe") -> None:
    """A declined card: stock goes back, the cart is restored so the buyer can try again."""
    if order.status is not OrderStatus.PENDING_PAYMENT:
        return
    inventory.release(order.id)
    transition_order(order, OrderStatus.PAYMENT_FAILED, actor=actor, reason="payment_failed")
    carts.merge_guest_lines(order.buyer_id, [(i.variant_id, i.quantity) for i in order.items])
    outbox.add("marketplace.notifications.jobs.payment_failed", order.id)


def mark_payment_canceled(order: Order, *, actor: str = "stripe") -> None:
    if order.status in UNPAID:
        cancel_unpaid(order, actor=actor, reason="payment_canceled")


def cancel_unpaid(order: Order, *, actor: str, reason: str) -> None:
    inventory.release(order.id, expired=reason == "reservation_expired")
    for vendor_order in order.vendor_orders:
        if vendor_order.status is V.PENDING_PAYMENT:
            transition_vendor_order(vendor_order, V.CANCELLED, actor=actor, reason=reason)
            vendor_order.cancel_reason = reason
    transition_order(order, OrderStatus.CANCELLED, actor=actor, reason=reason)
    order.cancel_reason = reason
    coupons.release(order)  # never paid: the use is given back


def abandon_unpaid(order: Order, *, actor: str, reason: str) -> None:
    """Cancel an unpaid order for good: unlike an expiry, no late payment can revive it, so
    its PaymentIntent is cancelled too (a pay page left open can no longer charge the card)."""
    cancel_unpaid(order, actor=actor, reason=reason)
    if order.payment_intent_id:
        outbox.add("marketplace.settlement.jobs.void_payment", order.id, "order_cancelled")


# --- vendor actions ------------------------------------------------------------------------


def ship(vendor_id: int, vendor_order_id: int, carrier: str, tracking_number: str) -> VendorOrder:
    """Mark a VendorOrder shipped; the order's payment is captured at the first shipment.

    :raises VendorOrderNotFound, ValidationFailed, IllegalTransition:
    """
    fields = {}
    if not 1 <= len(carrier.strip()) <= 60:
        fields["carrier"] = "must be 1 to 60 characters long"
    if not 1 <= len(tracking_number.strip()) <= 100:
        fields["tracking_number"] = "must be 1 to 100 characters long"
    if fields:
        raise ValidationFailed(fields)
    actor = f"vendor:{vendor_id}"
    with transaction():
        vendor_order = vendor_order_for(vendor_id, vendor_order_id)
        if vendor_order.vendor.status is VendorStatus.SUSPENDED:
            raise VendorSuspended()
        order = locked_order(vendor_order.order_id)
        db.session.refresh(vendor_order)
        transition_vendor_order(vendor_order, V.SHIPPED, actor=actor)
        vendor_order.carrier = carrier.strip()
        vendor_order.tracking_number = tracking_number.strip()
        vendor_order.shipped_at = utcnow()
        sync_order_status(order, actor=actor)
        outbox.add("marketplace.settlement.jobs.capture_order", order.id)
        outbox.add("marketplace.notifications.jobs.vendor_order_shipped", vendor_order.id)
    return vendor_order


def deliver(vendor_id: int, vendor_order_id: int) -> VendorOrder:
    """Mark a shipped VendorOrder delivered; the vendor's transfer follows (after the hold).

    :raises VendorOrderNotFound, IllegalTransition:
    """
    actor = f"vendor:{vendor_id}"
    with transaction():
        vendor_order = vendor_order_for(vendor_id, vendor_order_id)
        order = locked_order(vendor_order.order_id)
        db.session.refresh(vendor_order)
        transition_vendor_order(vendor_order, V.DELIVERED, actor=actor)
        vendor_order.delivered_at = utcnow()
        sync_order_status(order, actor=actor)
        outbox.add("marketplace.settlement.jobs.transfer_vendor_order", vendor_order.id)
        outbox.add("marketplace.notifications.jobs.vendor_order_delivered", vendor_order.id)
    return vendor_order


def cancel_vendor_order(
    vendor_order: VendorOrder, order: Order, *, actor: str, reason: str
) -> None:
    """Cancel one VendorOrder before it ships (inside the caller's transaction).

    Its stock goes back; the buyer is not charged for it (excluded from the capture, or the
    authorization voided when nothing is left) or, if the money was captured, refunded.
    """
    was_paid = vendor_order.status in OPEN_BEFORE_SHIPPING
    if was_paid and _capture_in_flight(order.id):
        raise PaymentBeingCaptured()
    if was_paid:
        _cancel_paid_part(vendor_order, actor=actor, reason=reason)
        outbox.add("marketplace.settlement.jobs.settle_cancellation", vendor_order.id)
    else:
        transition_vendor_order(vendor_order, V.CANCELLED, actor=actor, reason=reason)
        vendor_order.cancel_reason = reason
        inventory.release_variants(order.id, [item.variant_id for item in vendor_order.items])
        outbox.add("marketplace.notifications.jobs.vendor_order_cancelled", vendor_order.id)
    sync_order_status(order, actor=actor, reason=reason)


def _cancel_paid_part(vendor_order: VendorOrder, *, actor: str, reason: str) -> None:
    """A paid part that has not shipped is cancelled: its committed stock goes back on sale."""
    transition_vendor_order(vendor_order, V.CANCELLED, actor=actor, reason=reason)
    vendor_order.cancel_reason = reason
    for item in vendor_order.items:
        inventory.restock(item.variant_id, item.quantity - item.refunded_quantity)
    outbox.add("marketplace.notifications.jobs.vendor_order_cancelled", vendor_order.id)


def cancel_unshipped_parts(order: Order, *, actor: str, reason: str) -> None:
    """The order's payment is lost (its authorization lapsed before the capture): every part
    not shipped yet is cancelled and restocked; nothing is left to void or refund for them."""
    for vendor_order in order.vendor_orders:
        if vendor_order.status in OPEN_BEFORE_SHIPPING:
            _cancel_paid_part(vendor_order, actor=actor, reason=reason)
    sync_order_status(order, actor=actor, reason=reason)


class PaymentBeingCaptured(Conflict):
    code = "payment_being_captured"
    message = "The payment is being captured right now; try again in a minute."


def _capture_in_flight(order_id: int) -> bool:
    """A capture started with an amount that includes this part: cancelling it now would
    leave it charged without its refund (the caller holds the order's lock)."""
    from marketplace.payments.models import Payment, PaymentStatus

    status = db.session.scalar(select(Payment.status).where(Payment.order_id == order_id))
    return status is PaymentStatus.CAPTURING


def cancel_by_vendor(vendor_id: int, vendor_order_id: int, reason: str) -> VendorOrder:
    """:raises VendorOrderNotFound, ValidationFailed, IllegalTransition:"""
    if not 1 <= len(reason.strip()) <= 200:
        raise ValidationFailed({"reason": "must be 1 to 200 characters long"})
    with transaction():
        vendor_order = vendor_order_for(vendor_id, vendor_order_id)
        order = locked_order(vendor_order.order_id)
        db.session.refresh(vendor_order)
        cancel_vendor_order(vendor_order, order, actor=f"vendor:{vendor_id}", reason=reason.strip())
    return vendor_order


def cancel_paid_parts(order: Order, *, actor: str, reason: str) -> int:
    """The buyer cancels what has not shipped yet. Returns how many VendorOrders it cancelled."""
    cancelled = 0
    for vendor_order in order.vendor_orders:
        if vendor_order.status in OPEN_BEFORE_SHIPPING:
            cancel_vendor_order(vendor_order, order, actor=actor, reason=reason)
            cancelled += 1
    return cancelled


def items_of(vendor_order: VendorOrder) -> dict[int, OrderItem]:
    return {item.id: item for item in vendor_order.items}
