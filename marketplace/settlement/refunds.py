"""Refund a VendorOrder (whole, by amount or by items), reverse the vendor's transfer, accept
returns through the same path.

`plan_refund` computes the numbers once; the preview shows them and `refund_vendor_order`
books exactly them. Once the vendor was paid, the vendor's transfer is reversed by the refunded
amount minus the commission on it, which the platform gives back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func, select, update
from typing_extensions import TypedDict

from marketplace.audit import services as audit
from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict, DomainError, NotFound, ValidationFailed
from marketplace.inventory import services as inventory
from marketplace.jobs import outbox
from marketplace.money import apply_bps, currency, round_to_step, split_by_weights
from marketplace.orders import fulfilment, returns
from marketplace.orders.models import (
    Order,
    OrderStatus,
    ReturnRequest,
    VendorOrder,
    VendorOrderStatus,
)
from marketplace.orders.state import transition_order, transition_vendor_order
from marketplace.payments import gateway
from marketplace.payments.models import Payment, PaymentStatus
from marketplace.payments.services import payment_of
from marketplace.payouts import ledger, receivables
from marketplace.payouts.models import (
    Refund,
    RefundStatus,
    ReversalStatus,
    Transfer,
    TransferStatus,
)
from marketplace.payouts.state import move_refund, move_reversal
from marketplace.payouts.transfers import PAYABLE, ask_reversal, sent_transfer, started_transfer
from marketplace.settlement import ANSWER_LOST_AFTER, disputes
from marketplace.validation import MAX_ID

log = logging.getLogger(__name__)


class NotCaptured(Conflict):
    code = "not_captured"
    message = "Nothing was charged for this order yet; cancel it instead of refunding."


class NothingToRefund(Conflict):
    code, message = "nothing_to_refund", "This order has nothing left to refund."


class OrderItemNotFound(NotFound):
    code, message = "order_item_not_found", "That item is not part of this order."


class RefundRefused(Conflict):
    code = "refund_refused"
    message = "Stripe refused the refund; nothing was refunded. Check the charge and try again."


@dataclass(frozen=True)
class ItemRequest:
    order_item_id: int
    quantity: int


class RestockLineJson(TypedDict):
    variant_id: int
    quantity: int


class RefundPreviewJson(TypedDict):
    amount_cents: int
    tax_cents: int
    transfer_reversal_cents: int
    commission_returned_cents: int
    vendor_share_cents: int
    restock: list[RestockLineJson]  # units that go back on sale


@dataclass
class RefundPlan:
    amount_cents: int
    tax_cents: int
    commission_returned_cents: int
    vendor_share_cents: int
    transfer_reversal_cents: int
    items: list[dict[str, int]] = field(default_factory=list)
    restock: list[dict[str, int]] = field(default_factory=list)
    fully_refunded: bool = False

    def preview(self) -> RefundPreviewJson:
        return {
            "amount_cents": self.amount_cents,
            "tax_cents": self.tax_cents,
            "transfer_reversal_cents": self.transfer_reversal_cents,
            "commission_returned_cents": self.commission_returned_cents,
            "vendor_share_cents": self.vendor_share_cents,
            "restock": self.restock,
        }


def _refunded_so_far(vendor_order_id: int, *, settled_only: bool = False) -> tuple[int, int, int]:
    """(amount, tax, commission) refunded for this VendorOrder: by Stripe, or also asked of it."""
    statuses = (
        [RefundStatus.SUCCEEDED] if settled_only else [RefundStatus.SUCCEEDED, RefundStatus.PENDING]
    )
    row = db.session.execute(
        select(
            func.coalesce(func.sum(Refund.amount_cents), 0),
            func.coalesce(func.sum(Refund.tax_cents), 0),
            func.coalesce(func.sum(Refund.commission_returned_cents), 0),
        ).where(Refund.vendor_order_id == vendor_order_id, Refund.status.in_(statuses))
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _quantities_in_flight(vendor_order_id: int) -> dict[int, int]:
    """Units of each item in refunds asked of Stripe and not answered yet: not refundable
    again, though `refunded_quantity` counts them only once Stripe refunded them."""
    taken: dict[int, int] = {}
    for lines in db.session.scalars(
        select(Refund.items).where(
            Refund.vendor_order_id == vendor_order_id, Refund.status == RefundStatus.PENDING
        )
    ):
        for line in lines or []:
            taken[line["order_item_id"]] = taken.get(line["order_item_id"], 0) + line["quantity"]
    return taken


def plan_refund(
    vendor_order: VendorOrder,
    *,
    amount_cents: int | None = None,
    items: list[ItemRequest] | None = None,
    include_shipping: bool = False,
    restock: bool | None = None,
    whole: bool = False,
) -> RefundPlan:
    """The numbers of a refund, checked against what is left to refund. Unless told, units
    are restocked only if they never left: once shipped, the buyer may well keep them.

    :raises NotCaptured, NothingToRefund, ValidationFailed, OrderItemNotFound:
    """
    payment = payment_of(vendor_order.order_id)
    if payment is None or payment.status is not PaymentStatus.CAPTURED:
        raise NotCaptured()
    if disputes.has_unsettled_dispute(vendor_order.order_id):
        raise disputes.ChargeDisputed()
    if vendor_order.status is VendorOrderStatus.REFUNDED:
        raise NothingToRefund()
    if vendor_order.status is VendorOrderStatus.CANCELLED and not whole:
        # Cancelled before the capture: never charged. After it: refunded whole, automatically.
        raise NothingToRefund("A cancelled order is refunded automatically if it was charged.")
    if amount_cents is not None and items:
        raise ValidationFailed({"amount_cents": "give either amount_cents or items, not both"})
    if restock is None:
        restock = vendor_order.shipped_at is None
    done_amount, done_tax, done_commission = _refunded_so_far(vendor_order.id)
    in_flight = _quantities_in_flight(vendor_order.id)
    vendor_part = (
        vendor_order.subtotal_cents + vendor_order.shipping_cents - vendor_order.discount_cents
    )
    left_vendor_part = vendor_part - (done_amount - done_tax)
    left_commission = vendor_order.platform_fee_cents - done_commission
    left_tax = vendor_order.tax_cents - done_tax
    transferred = started_transfer(vendor_order.id) is not None
    plan_items: list[dict[str, int]] = []
    restock_lines: list[dict[str, int]] = []
    tax_cents = 0

    if whole or (amount_cents is None and not items):  # everything left, tax included
        amount = left_vendor_part
        commission = left_commission
        tax_cents = left_tax
        for item in vendor_order.items:
            remaining = item.quantity - item.refunded_quantity - in_flight.get(item.id, 0)
            if remaining:
                plan_items.append({"order_item_id": item.id, "quantity": remaining})
                if restock:
                    restock_lines.append({"variant_id": item.variant_id, "quantity": remaining})
    elif items:
        by_id = fulfilment.items_of(vendor_order)
        amount = 0
        fields: dict[str, str] = {}
        seen: set[int] = set()
        for index, request in enumerate(items):
            item = by_id.get(request.order_item_id)
            if item is None:
                raise OrderItemNotFound(details={"order_item_id": request.order_item_id})
            left = item.quantity - item.refunded_quantity - in_flight.get(item.id, 0)
            if request.order_item_id in seen:
                fields[f"items[{index}].order_item_id"] = "listed twice"
            elif not 1 <= request.quantity <= left:
                fields[f"items[{index}].quantity"] = f"must be between 1 and {left}"
            seen.add(request.order_item_id)
            # what was paid for these units: their price less their part of the discount
            amount += item.unit_price_cents * request.quantity - _item_share(
                item.discount_cents, item, min(request.quantity, left)
            )
            if vendor_order.order.prices_include_tax:  # the price held the tax: net of it
                amount -= _item_share(item.tax_cents, item, min(request.quantity, left))
            plan_items.append({"order_item_id": item.id, "quantity": request.quantity})
            if restock:
                restock_lines.append({"variant_id": item.variant_id, "quantity": request.quantity})
        if fields:
            raise ValidationFailed(fields)
        if amount > left_vendor_part:  # an earlier refund by amount already paid part of them
            raise ValidationFailed(
                {"items": f"worth {amount} cents, but only {left_vendor_part} is left to refund"}
            )
        commission = min(
            sum(
                _item_commission(by_id[line["order_item_id"]], line["quantity"])
                for line in plan_items
            ),
            left_commission,
        )
        tax_cents = min(
            round_to_step(  # a three-decimal currency is refunded in tens, as it was charged
                sum(
                    _item_tax(by_id[line["order_item_id"]], line["quantity"]) for line in plan_items
                ),
                vendor_order.order.currency,
            ),
            left_tax,
        )
        if include_shipping:
            shipping_back = min(_shipping_left(vendor_order), left_vendor_part - amount)
            amount += shipping_back
            if shipping_back > 0 and vendor_order.shipping_tax_cents:  # and the tax on it
                shipping_tax = round_to_step(
                    (
                        vendor_order.shipping_tax_cents * shipping_back * 2
                        + vendor_order.shipping_cents
                    )
                    // (vendor_order.shipping_cents * 2),
                    vendor_order.order.currency,
                )
                tax_cents = min(tax_cents + shipping_tax, left_tax)
        if amount >= left_vendor_part:
            commission = left_commission
            tax_cents = left_tax
    else:
        if amount_cents is None:
            amount_cents = left_vendor_part
        if not 1 <= amount_cents <= max(left_vendor_part, 0):
            if left_vendor_part <= 0:
                raise NothingToRefund()
            raise ValidationFailed({"amount_cents": f"must be between 1 and {left_vendor_part}"})
        step = currency(vendor_order.order.currency).step
        if amount_cents % step and amount_cents != left_vendor_part:
            raise ValidationFailed({"amount_cents": f"must be a multiple of {step}"})
        amount = amount_cents
        commission = _commission_share(vendor_order, amount, left_vendor_part, left_commission)
        if amount == left_vendor_part:  # all that is left: the tax on it goes back too
            tax_cents = left_tax
            for item in vendor_order.items:
                remaining = item.quantity - item.refunded_quantity - in_flight.get(item.id, 0)
                if remaining:  # paid back, so not returnable any more (nothing restocked)
                    plan_items.append({"order_item_id": item.id, "quantity": remaining})
    if amount <= 0 and tax_cents <= 0:
        raise NothingToRefund()
    vendor_share = amount - commission
    return RefundPlan(
        amount_cents=amount + tax_cents,
        tax_cents=tax_cents,
        commission_returned_cents=commission,
        vendor_share_cents=vendor_share,
        transfer_reversal_cents=vendor_share if transferred else 0,
        items=plan_items,
        restock=restock_lines,
        fully_refunded=amount >= left_vendor_part,
    )


def _shipping_left(vendor_order: VendorOrder) -> int:
    """Shipping not refunded yet. A refund by items holds its items' value, its tax and any
    shipping it included; refunds by amount are not shipping."""
    by_id = {item.id: item for item in vendor_order.items}
    inclusive = vendor_order.order.prices_include_tax
    refunded = 0
    for refund in db.session.scalars(
        select(Refund).where(
            Refund.vendor_order_id == vendor_order.id, Refund.status != RefundStatus.FAILED
        )
    ):
        if refund.items:
            value = sum(
                by_id[line["order_item_id"]].unit_price_cents * line["quantity"]
                - _discount_of(by_id[line["order_item_id"]], line["quantity"])
                - (_tax_of(by_id[line["order_item_id"]], line["quantity"]) if inclusive else 0)
                for line in refund.items
            )
            refunded += max(0, refund.amount_cents - refund.tax_cents - value)
    return max(0, vendor_order.shipping_cents - refunded)


def _discount_of(item: Any, quantity: int) -> int:
    """About `quantity` units' part of the line's discount (a refund already booked)."""
    if not item.discount_cents:
        return 0
    return split_by_weights(item.discount_cents, [quantity, item.quantity - quantity])[0]


def _tax_of(item: Any, quantity: int) -> int:
    """About `quantity` units' part of the line's tax (a refund already booked)."""
    if not item.tax_cents:
        return 0
    return split_by_weights(item.tax_cents, [quantity, item.quantity - quantity])[0]


def _item_tax(item: Any, quantity: int) -> int:
    """The tax collected on `quantity` of the item's units not refunded yet (to the cent)."""
    return _item_share(item.tax_cents, item, quantity)


def _item_share(total: int, item: Any, quantity: int) -> int:
    """`quantity` units' part of an amount of the whole line (its tax, its discount, its
    commission), after the units refunded already, so parts refunded one by one add up to the
    whole and never exceed it."""
    done = item.refunded_quantity
    return _units_share(total, item.quantity, done + quantity) - _units_share(
        total, item.quantity, done
    )


def _units_share(total: int, units: int, first: int) -> int:
    """The first `first` of `units` units' part of `total`, rounded half up: the difference of
    two of these is a batch's part, so parts refunded in any batches add up to the whole."""
    return (total * first * 2 + units) // (units * 2)


def _item_commission(item: Any, quantity: int) -> int:
    """The commission to give back on `quantity` units. A discounted line's commission is not
    its rate on the price (the coupon changed it), so its share of the line's is returned."""
    if item.discount_cents or item.platform_fee_cents != apply_bps(
        item.line_total_cents, item.commission_bps
    ):  # (tax-inclusive prices: commission was on the price net of its tax)
        return _item_share(item.platform_fee_cents, item, quantity)
    return apply_bps(item.unit_price_cents * quantity, item.commission_bps)


def _commission_share(
    vendor_order: VendorOrder, amount: int, left_vendor_part: int, left_commission: int
) -> int:
    """The commission on `amount`, in proportion; refunding all that is left returns all of it."""
    if amount >= left_vendor_part:
        return left_commission
    vendor_part = (
        vendor_order.subtotal_cents + vendor_order.shipping_cents - vendor_order.discount_cents
    )
    share = split_by_weights(vendor_order.platform_fee_cents, [amount, vendor_part - amount])[0]
    return min(share, left_commission)


MAX_REFUND_CENTS = 10**9  # beyond any order total; the plan checks the real limit


def check_request_shape(amount_cents: int | None, items: list[ItemRequest] | None) -> None:
    """What the request says, checked before anything about the order's state, so a negative
    amount on an uncaptured order is a 422 (bad input), not a 409 (wrong state).

    :raises ValidationFailed:
    """
    fields: dict[str, str] = {}
    if amount_cents is not None and not 1 <= amount_cents <= MAX_REFUND_CENTS:
        fields["amount_cents"] = f"must be between 1 and {MAX_REFUND_CENTS}"
    elif amount_cents is not None and items:
        fields["amount_cents"] = "give either amount_cents or items, not both"
    for index, item in enumerate(items or []):
        if not 1 <= item.order_item_id <= MAX_ID:
            fields[f"items[{index}].order_item_id"] = "no such item"
        if not 1 <= item.quantity <= MAX_REFUND_CENTS:
            fields[f"items[{index}].quantity"] = "must be at least 1"
    if fields:
        raise ValidationFailed(fields)


def preview(vendor_order_id: int, vendor_id: int | None, **request: Any) -> RefundPlan:
    """:raises VendorOrderNotFound, NotCaptured, NothingToRefund, ValidationFailed:"""
    check_request_shape(request.get("amount_cents"), request.get("items"))
    vendor_order = _vendor_order(vendor_order_id, vendor_id)
    return plan_refund(vendor_order, **request)


def _vendor_order(vendor_order_id: int, vendor_id: int | None) -> VendorOrder:
    if vendor_id is None:  # an admin
        vendor_order = db.session.get(VendorOrder, vendor_order_id)
        if vendor_order is None:
            raise fulfilment.VendorOrderNotFound()
        return vendor_order
    return fulfilment.vendor_order_for(vendor_id, vendor_order_id)


def refund_vendor_order(
    vendor_order_id: int,
    *,
    vendor_id: int | None,
    actor: str,
    reason: str,
    amount_cents: int | None = None,
    items: list[ItemRequest] | None = None,
    include_shipping: bool = False,
    restock: bool | None = None,
) -> Refund:
    """Refund a VendorOrder (vendor or admin): the plan is recorded as asked of Stripe, and
    applied (quantities, stock, statuses, the buyer's email, the books) only once Stripe
    refunded it. If Stripe is away it stays pending and the outbox job tries again.

    :raises VendorOrderNotFound, NotCaptured, NothingToRefund, ValidationFailed, RefundRefused:
    """
    if not 1 <= len(reason.strip()) <= 200:
        raise ValidationFailed({"reason": "must be 1 to 200 characters long"})
    check_request_shape(amount_cents, items)
    with transaction():
        vendor_order = _vendor_order(vendor_order_id, vendor_id)
        fulfilment.locked_order(vendor_order.order_id)
        db.session.refresh(vendor_order)
        plan = plan_refund(
            vendor_order,
            amount_cents=amount_cents,
            items=items,
            include_shipping=include_shipping,
            restock=restock,
        )
        refund = _ask_stripe(vendor_order, plan, actor=actor, reason=reason.strip())
        if vendor_id is None:  # an admin's refund: in the audit log with the refund it asks
            audit.record(
                "refund.create",
                "vendor_order",
                vendor_order.id,
                {"status": vendor_order.status.value},
                {"refund_id": refund.id, "reason": refund.reason, **plan.preview()},
            )
    refund = execute_refund_now(refund.id)
    if refund.status is RefundStatus.FAILED:
        raise RefundRefused(details={"refund_id": refund.id, "stripe": refund.failure_reason})
    return refund


CANCELLATION_ACTOR, CANCELLATION_REASON = "system", "cancelled"


def refund_cancelled_vendor_order(vendor_order_id: int) -> Refund | None:
    """A VendorOrder cancelled after the capture: give back all of it, tax included."""
    with transaction():
        vendor_order = db.session.get(VendorOrder, vendor_order_id)
        fulfilment.locked_order(vendor_order.order_id)
        db.session.refresh(vendor_order)
        existing = db.session.scalar(  # this job's own refund, never a vendor's of that name
            select(Refund).where(
                Refund.vendor_order_id == vendor_order_id,
                Refund.actor == CANCELLATION_ACTOR,
                Refund.reason == CANCELLATION_REASON,
            )
        )
        if existing is not None:
            refund = existing
        else:
            try:
                plan = plan_refund(vendor_order, whole=True, restock=False)
            except NothingToRefund:
                return None
            except disputes.ChargeDisputed:
                return None  # the bank decides first; a won dispute settles it again
            refund = _ask_stripe(
                vendor_order, plan, actor=CANCELLATION_ACTOR, reason=CANCELLATION_REASON
            )
    return execute_refund_now(refund.id)


def _ask_stripe(vendor_order: VendorOrder, plan: RefundPlan, *, actor: str, reason: str) -> Refund:
    """Record the refund as asked of Stripe (nothing applied yet) and queue the Stripe call."""
    refund = Refund(
        vendor_order_id=vendor_order.id,
        amount_cents=plan.amount_cents,
        tax_cents=plan.tax_cents,
        commission_returned_cents=plan.commission_returned_cents,
        vendor_share_cents=plan.vendor_share_cents,
        transfer_reversal_cents=plan.transfer_reversal_cents,
        items=plan.items,
        restock=bool(plan.restock),
        reason=reason,
        actor=actor,
        status=RefundStatus.PENDING,
    )
    db.session.add(refund)
    db.session.flush()
    outbox.add("marketplace.settlement.jobs.execute_refund", refund.id)
    return refund


def _apply_refunded(refund: Refund, vendor_order: VendorOrder, order: Order) -> None:
    """Stripe refunded it: now the items count as refunded, the units come back (if asked),
    the statuses move, the books record it and the buyer is told."""
    items = fulfilment.items_of(vendor_order)
    for line in refund.items:
        item = items[line["order_item_id"]]
        item.refunded_quantity += line["quantity"]
        if refund.restock:
            inventory.restock(item.variant_id, line["quantity"])
    db.session.flush()
    done_amount, done_tax, _ = _refunded_so_far(vendor_order.id, settled_only=True)
    vendor_part = (
        vendor_order.subtotal_cents + vendor_order.shipping_cents - vendor_order.discount_cents
    )
    fully_refunded = done_amount - done_tax >= vendor_part
    if vendor_order.status is not VendorOrderStatus.CANCELLED:
        if fully_refunded and vendor_order.status is not VendorOrderStatus.REFUNDED:
            transition_vendor_order(
                vendor_order, VendorOrderStatus.REFUNDED, actor=refund.actor, reason=refund.reason
            )
        _mark_order_refunded(order, actor=refund.actor, reason=refund.reason)
    ledger.record_refund(refund, vendor_order)
    outbox.add("marketplace.notifications.jobs.refund_issued", refund.id)
    if vendor_order.status in PAYABLE and started_transfer(vendor_order.id) is None:
        # the transfer waited for this refund to settle: it can go now, for the right amount
        outbox.add("marketplace.settlement.jobs.transfer_vendor_order", vendor_order.id)


def _mark_order_refunded(order: Order, *, actor: str, reason: str) -> None:
    inactive = (VendorOrderStatus.CANCELLED, VendorOrderStatus.REFUNDED)
    if all(vo.status in inactive for vo in order.vendor_orders):
        target = OrderStatus.REFUNDED
    else:
        target = OrderStatus.PARTIALLY_REFUNDED
    if order.status is not target:
        transition_order(order, target, actor=actor, reason=reason)


def execute_refund_now(refund_id: int) -> Refund:
    """Try the Stripe calls right away; if Stripe is away the outbox job retries later."""
    try:
        execute_refund(refund_id)
    except gateway.PaymentProviderError:
        log.warning("refund %s left pending; the job will retry", refund_id)
        db.session.rollback()
    return db.session.get(Refund, refund_id)


def execute_refund(refund_id: int) -> None:
    """Refund the charge (`refund:<id>`), then reverse the vendor's transfer (`reversal:<id>`).

    A refusal is final for that refund: it is marked failed (nothing was applied, so nothing
    is undone) and the admins are told. A refused reversal leaves the refund made; the vendor
    then owes its share back, which reconciliation reports until an admin settles it.
    """
    refund = db.session.get(Refund, refund_id)
    vendor_order = db.session.get(VendorOrder, refund.vendor_order_id)
    payment = payment_of(vendor_order.order_id)
    if refund.status is RefundStatus.PENDING:
        charge_id, amount = payment.charge_id, refund.amount_cents
        asked_long_ago = utcnow() - refund.created_at > ANSWER_LOST_AFTER
        db.session.rollback()
        stripe_refund = _made_already(refund_id, charge_id) if asked_long_ago else None
        try:
            if stripe_refund is None:
                stripe_refund = gateway.create_refund(
                    key=f"refund:{refund_id}",
                    charge_id=charge_id,
                    amount_cents=amount,
                    metadata={
                        "refund_id": str(refund_id),
                        "vendor_order_id": str(vendor_order.id),
                    },
                )
        except gateway.PaymentProviderRejected as refusal:
            _refund_refused(refund_id, refusal)
            return
        with transaction():
            vendor_order = db.session.get(VendorOrder, refund.vendor_order_id)
            order = fulfilment.locked_order(vendor_order.order_id)
            if move_refund(
                refund_id,
                RefundStatus.PENDING,
                RefundStatus.SUCCEEDED,
                stripe_refund_id=stripe_refund["id"],
            ):
                db.session.execute(
                    update(Payment)
                    .where(Payment.order_id == vendor_order.order_id)
                    .values(amount_refunded_cents=Payment.amount_refunded_cents + amount)
                )
                refund = db.session.get(Refund, refund_id)
                db.session.refresh(refund)
                db.session.refresh(vendor_order)
                _apply_refunded(refund, vendor_order, order)
    refund = db.session.get(Refund, refund_id)
    db.session.refresh(refund)
    if (
        refund.status is RefundStatus.SUCCEEDED
        and refund.transfer_reversal_cents > 0
        and (refund.reversal is None or refund.reversal.status is ReversalStatus.ASKED)
    ):
        _reverse_transfer(refund)


def _made_already(refund_id: int, charge_id: str) -> dict[str, Any] | None:
    """The refund Stripe made for this row although we never heard back, if any."""
    for made in gateway.list_all("refunds", charge=charge_id):
        if (made.get("metadata") or {}).get("refund_id") == str(refund_id):
            return made
    return None


def _reversal_made(refund_id: int, stripe_transfer_id: str) -> dict[str, Any] | None:
    """The reversal Stripe made for this refund although we never heard back, if any (the
    transfer's reversals, matched by metadata): Stripe prunes idempotency keys after 24 h."""
    for made in gateway.list_transfer_reversals(stripe_transfer_id):
        if (made.get("metadata") or {}).get("refund_id") == str(refund_id):
            return made
    return None


def _refund_refused(refund_id: int, refusal: gateway.PaymentProviderRejected) -> None:
    with transaction():
        if move_refund(
            refund_id,
            RefundStatus.PENDING,
            RefundStatus.FAILED,
            failure_reason=refusal.message[:2000],
        ):
            outbox.add("marketplace.notifications.jobs.refund_refused", refund_id)
            vendor_order = db.session.get(
                VendorOrder, db.session.get(Refund, refund_id).vendor_order_id
            )
            if vendor_order.status in PAYABLE and started_transfer(vendor_order.id) is None:
                outbox.add("marketplace.settlement.jobs.transfer_vendor_order", vendor_order.id)


def _reverse_transfer(refund: Refund) -> None:
    """Reverse the vendor's share from its sent transfer: the `reversals` row is written
    (`asked`) under the order's lock, Stripe is asked outside any transaction with the row's
    key, and the answer moves the row to `reversed` (books) or `failed` (a receivable)."""
    refund_id = refund.id
    with transaction():
        refund = db.session.get(Refund, refund_id)
        vendor_order = db.session.get(VendorOrder, refund.vendor_order_id)
        fulfilment.locked_order(vendor_order.order_id)
        transfer = sent_transfer(refund.vendor_order_id)
        if transfer is None or transfer.status is not TransferStatus.SENT:
            return
        reversal = ask_reversal(transfer, refund.transfer_reversal_cents, refund_id=refund_id)
        if reversal.status is not ReversalStatus.ASKED:
            return
        reversal_id, key, amount = reversal.id, reversal.key, reversal.amount_cents
        stripe_transfer_id, transfer_row_id = transfer.stripe_transfer_id, transfer.id
        transfer_currency = transfer.currency
        # maybe asked by a run from before reversals had rows: the refund's time counts
        asked_long_ago = utcnow() - refund.created_at > ANSWER_LOST_AFTER
    db.session.rollback()
    made = _reversal_made(refund_id, stripe_transfer_id) if asked_long_ago else None
    refused = ""
    try:
        if made is None:
            made = gateway.create_transfer_reversal(
                key=key,
                transfer_id=stripe_transfer_id,
                amount_cents=amount,
                metadata={"refund_id": str(refund_id)},
            )
    except gateway.PaymentProviderRejected as refusal:
        # e.g. "already reversed": made by a run whose answer we never heard
        refused = refusal.message[:2000]
        made = _reversal_made(refund_id, stripe_transfer_id)
    if made is None:
        with transaction():
            refund = db.session.get(Refund, refund_id)
            vendor_order = db.session.get(VendorOrder, refund.vendor_order_id)
            fulfilment.locked_order(vendor_order.order_id)
            if move_reversal(
                reversal_id, ReversalStatus.ASKED, ReversalStatus.FAILED, failure_reason=refused
            ):
                receivables.record(refund, vendor_order.vendor_id, transfer_currency)
                outbox.add("marketplace.notifications.jobs.reversal_refused", refund_id)
        return
    with transaction():
        refund = db.session.get(Refund, refund_id)
        vendor_order = db.session.get(VendorOrder, refund.vendor_order_id)
        fulfilment.locked_order(vendor_order.order_id)
        if move_reversal(
            reversal_id,
            ReversalStatus.ASKED,
            ReversalStatus.REVERSED,
            stripe_reversal_id=made["id"],
        ):
            db.session.execute(
                update(Transfer)
                .where(Transfer.id == transfer_row_id)
                .values(reversed_cents=Transfer.reversed_cents + amount)
            )
            db.session.refresh(refund)
            ledger.record_reversal(refund, vendor_order, made["id"])


class RefundLineJson(TypedDict):
    order_item_id: int
    quantity: int


class RefundJson(TypedDict):
    id: int
    vendor_order_id: int
    amount_cents: int
    tax_cents: int
    commission_returned_cents: int
    transfer_reversal_cents: int
    status: RefundStatus
    items: list[RefundLineJson]
    reason: str
    failure_reason: str | None
    reversal_status: Literal["pending", "succeeded", "failed"] | None
    stripe_refund_id: str | None
    stripe_reversal_id: str | None
    created_at: str


def refund_json(refund: Refund) -> RefundJson:
    return {
        "id": refund.id,
        "vendor_order_id": refund.vendor_order_id,
        "amount_cents": refund.amount_cents,
        "tax_cents": refund.tax_cents,
        "commission_returned_cents": refund.commission_returned_cents,
        "transfer_reversal_cents": refund.transfer_reversal_cents,
        "status": refund.status.value,
        "items": refund.items,
        "reason": refund.reason,
        "failure_reason": refund.failure_reason,
        "reversal_status": reversal_status(refund),
        "stripe_refund_id": refund.stripe_refund_id,
        "stripe_reversal_id": refund.stripe_reversal_id,
        "created_at": refund.created_at.isoformat(),
    }


def reversal_status(refund: Refund) -> str | None:
    """None when no reversal is due; else pending, succeeded or failed (Stripe refused it)."""
    if refund.transfer_reversal_cents <= 0:
        return None
    reversal = refund.reversal
    if reversal is None or reversal.status is ReversalStatus.ASKED:
        return "pending"
    return "succeeded" if reversal.status is ReversalStatus.REVERSED else "failed"


def accept_return(vendor_id: int, return_id: int, *, restock: bool) -> ReturnRequest:
    """Refund the returned units through the refund path. The decision is claimed first (two
    deciders never both act) and given back only when the refund changed nothing: refused by
    Stripe or by our own checks. Once a refund exists the return is accepted for good.

    :raises ReturnNotFound, ReturnAlreadyDecided, NotCaptured, ValidationFailed, RefundRefused:
    """
    with transaction():
        request = returns.vendor_return(vendor_id, return_id)
        item_id, quantity, vendor_order_id = (
            request.order_item_id,
            request.quantity,
            request.vendor_order_id,
        )
        returns.claim_decision(return_id)
    try:
        refund = refund_vendor_order(
            vendor_order_id,
            vendor_id=vendor_id,
            actor=f"vendor:{vendor_id}",
            reason=f"return #{return_id}",
            items=[ItemRequest(item_id, quantity)],
            restock=restock,
        )
    except DomainError:
        with transaction():
            returns.release_decision(return_id)
        raise
    with transaction():
        return returns.record_accepted(return_id, restock=restock, refund_id=refund.id)
