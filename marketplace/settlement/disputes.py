"""Disputes of an order's charge, and refunds someone made outside the marketplace.

A dispute withdraws the disputed amount from the platform's balance at once: it is booked, the
charge can no longer be refunded from here (the card network is returning the money) and
transfers not yet sent from it wait; admins are told. A won dispute books the funds back and
lifts both; a lost one books the platform's loss and keeps refunds blocked (the buyer has the
money back). Whether the vendor's share is recovered from the vendor by a reversal is not
decided here yet: the platform carries the loss, and held transfers go once it is decided.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from marketplace.db import db
from marketplace.errors import Conflict
from marketplace.jobs import outbox
from marketplace.orders import fulfilment
from marketplace.orders.models import VendorOrder, VendorOrderStatus
from marketplace.payments.models import Dispute, DisputeStatus, Payment
from marketplace.payments.state import close_dispute
from marketplace.payouts import ledger
from marketplace.payouts.models import Refund, RefundStatus, Transfer, TransferStatus
from marketplace.payouts.transfers import PAYABLE
from marketplace.settlement import recovery


class ChargeDisputed(Conflict):
    code = "charge_disputed"
    message = "The buyer disputed this charge with their bank: it cannot be refunded from here."


def has_unsettled_dispute(order_id: int) -> bool:
    """An open dispute (funds withdrawn, undecided) or a lost one (the buyer has them back)."""
    return (
        db.session.scalar(
            select(Dispute.id)
            .where(
                Dispute.order_id == order_id,
                Dispute.status.in_([DisputeStatus.OPEN, DisputeStatus.LOST]),
            )
            .limit(1)
        )
        is not None
    )


def has_open_dispute(order_id: int) -> bool:
    return (
        db.session.scalar(
            select(Dispute.id)
            .where(Dispute.order_id == order_id, Dispute.status == DisputeStatus.OPEN)
            .limit(1)
        )
        is not None
    )


def dispute_opened(stripe_dispute: dict[str, Any]) -> str:
    """`charge.dispute.created` (inside the webhook's transaction)."""
    payment = db.session.scalar(
        select(Payment).where(Payment.charge_id == stripe_dispute.get("charge"))
    )
    if payment is None:
        return "unknown_charge"
    fulfilment.locked_order(payment.order_id)  # recoveries record their answers under it
    if _dispute(stripe_dispute["id"]) is not None:
        return "duplicate_dispute"
    dispute = Dispute(
        payment_id=payment.id,
        order_id=payment.order_id,
        stripe_dispute_id=stripe_dispute["id"],
        charge_id=payment.charge_id,
        amount_cents=int(stripe_dispute["amount"]),
        currency=str(stripe_dispute.get("currency") or payment.currency),
        reason=stripe_dispute.get("reason"),
        status=DisputeStatus.OPEN,
    )
    db.session.add(dispute)
    db.session.flush()
    ledger.record_dispute(dispute)
    recovery.plan(dispute)
    outbox.add("marketplace.notifications.jobs.dispute_opened", dispute.id)
    return "dispute_opened"


def dispute_closed(stripe_dispute: dict[str, Any], happened_at: datetime) -> str:
    """`charge.dispute.closed`: `won` brings the funds back; anything else is lost."""
    dispute = _dispute(stripe_dispute["id"])
    if dispute is None:
        opened = dispute_opened(stripe_dispute)  # the created event never reached us
        if opened != "dispute_opened":
            return opened
        dispute = _dispute(stripe_dispute["id"])
    fulfilment.locked_order(dispute.order_id)
    db.session.refresh(dispute)
    won = stripe_dispute.get("status") == "won"
    covered = recovery.covered_cents(dispute)
    if not close_dispute(dispute, DisputeStatus.WON if won else DisputeStatus.LOST):
        return "ignored_out_of_order"
    dispute.closed_at = happened_at
    ledger.record_dispute_outcome(dispute, won=won, covered_cents=covered)
    if won:
        recovery.give_back(dispute)
    outbox.add("marketplace.notifications.jobs.dispute_closed", dispute.id)
    for vendor_order_id in _payouts_held(dispute.order_id):
        outbox.add("marketplace.settlement.jobs.transfer_vendor_order", vendor_order_id)
    if won:  # parts cancelled after the capture waited for their refund: it can go now
        for vendor_order_id in _cancelled_after_capture(dispute.order_id):
            outbox.add("marketplace.settlement.jobs.settle_cancellation", vendor_order_id)
    return "dispute_won" if won else "dispute_lost"


def charge_refunded(charge: dict[str, Any]) -> str:
    """`charge.refunded`: if Stripe refunded more than we asked of it, someone refunded from
    the dashboard (or an API key) outside the marketplace: admins are told; reconciliation
    shows the difference until it is sorted out."""
    payment = db.session.scalar(select(Payment).where(Payment.charge_id == charge.get("id")))
    if payment is None:
        return "unknown_charge"
    asked = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0))
        .join(VendorOrder, VendorOrder.id == Refund.vendor_order_id)
        .where(
            VendorOrder.order_id == payment.order_id,
            Refund.status.in_([RefundStatus.PENDING, RefundStatus.SUCCEEDED]),
        )
    )
    refunded = int(charge.get("amount_refunded") or 0)
    if refunded <= int(asked or 0):
        return "refund_known"
    outbox.add("marketplace.notifications.jobs.refunded_outside", payment.order_id, refunded)
    return "refunded_outside"


def _payouts_held(order_id: int) -> list[int]:
    """Delivered parts of the order whose transfer waited for the dispute's decision."""
    return list(
        db.session.scalars(
            select(VendorOrder.id)
            .outerjoin(Transfer, Transfer.vendor_order_id == VendorOrder.id)
            .where(
                VendorOrder.order_id == order_id,
                VendorOrder.status.in_(PAYABLE),
                or_(Transfer.id.is_(None), Transfer.status == TransferStatus.PENDING),
            )
            .order_by(VendorOrder.id)
        )
    )


def _cancelled_after_capture(order_id: int) -> list[int]:
    return [
        vendor_order_id
        for vendor_order_id in db.session.scalars(
            select(VendorOrder.id)
            .where(
                VendorOrder.order_id == order_id,
                VendorOrder.status == VendorOrderStatus.CANCELLED,
            )
            .order_by(VendorOrder.id)
        )
        if ledger.captured(vendor_order_id)
    ]


def _dispute(stripe_dispute_id: str) -> Dispute | None:
    return db.session.scalar(select(Dispute).where(Dispute.stripe_dispute_id == stripe_dispute_id))
