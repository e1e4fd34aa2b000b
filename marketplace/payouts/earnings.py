"""What a vendor has earned, been paid and had reversed."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select
from typing_extensions import TypedDict

from marketplace.db import db
from marketplace.orders.models import VendorOrder, VendorOrderStatus
from marketplace.payouts import receivables
from marketplace.payouts.models import (
    DisputeRecovery,
    RecoveryStatus,
    Refund,
    RefundStatus,
    Reversal,
    ReversalStatus,
    Transfer,
    TransferStatus,
)
from marketplace.payouts.transfers import refund_reversed, vendor_share_refunded

EARNING = (
    VendorOrderStatus.PAID,
    VendorOrderStatus.PROCESSING,
    VendorOrderStatus.SHIPPED,
    VendorOrderStatus.DELIVERED,
    VendorOrderStatus.COMPLETED,
)


class TransferJson(TypedDict):
    id: int
    vendor_order_id: int
    amount_cents: int
    reversed_cents: int
    netted_cents: int
    currency: str
    stripe_transfer_id: str | None
    status: TransferStatus
    created_at: str
    sent_at: str | None


class EarningsJson(TypedDict):
    currency: str
    pending_cents: int
    transferred_cents: int
    reversed_cents: int
    owed_cents: int
    dispute_recovered_cents: int
    dispute_returned_cents: int
    transfers: list[TransferJson]


def transfer_json(transfer: Transfer, order_id: int | None = None) -> TransferJson:
    return {
        "id": transfer.id,
        "vendor_order_id": transfer.vendor_order_id,
        "amount_cents": transfer.amount_cents,
        "reversed_cents": transfer.reversed_cents,
        "netted_cents": transfer.netted_cents,
        "currency": transfer.currency,
        "stripe_transfer_id": transfer.stripe_transfer_id,
        "status": transfer.status.value,
        "created_at": transfer.created_at.isoformat(),
        "sent_at": transfer.sent_at.isoformat() if transfer.sent_at else None,
    }


def vendor_earnings(vendor_id: int) -> EarningsJson:
    transfers = list(
        db.session.scalars(
            select(Transfer).where(Transfer.vendor_id == vendor_id).order_by(Transfer.id.desc())
        )
    )
    settled = (TransferStatus.SENT, TransferStatus.SKIPPED)  # skipped: nothing was left to send
    sent = {t.vendor_order_id for t in transfers if t.status in settled}
    pending = 0
    for vendor_order in db.session.scalars(
        select(VendorOrder).where(
            VendorOrder.vendor_id == vendor_id, VendorOrder.status.in_(EARNING)
        )
    ):
        if vendor_order.id not in sent:
            pending += vendor_order.vendor_earnings_cents - vendor_share_refunded(vendor_order.id)
    reversed_cents = db.session.scalar(
        select(func.coalesce(func.sum(Refund.transfer_reversal_cents), 0))
        .join(VendorOrder, VendorOrder.id == Refund.vendor_order_id)
        .where(
            VendorOrder.vendor_id == vendor_id,
            refund_reversed(),
            Refund.status == RefundStatus.SUCCEEDED,
        )
    )
    return {
        "currency": current_app.config["CURRENCY"],
        "pending_cents": max(pending, 0),
        "transferred_cents": sum(
            t.amount_cents for t in transfers if t.status is TransferStatus.SENT
        ),
        "reversed_cents": int(reversed_cents or 0),
        # refused reversals (and dispute shares) still to be held back from the next transfers
        "owed_cents": receivables.owed(vendor_id),
        # disputes: shares reversed from the vendor's transfers, and given back when won
        **_dispute_shares(vendor_id),
        "transfers": [
            transfer_json(t) for t in transfers if t.status is not TransferStatus.SKIPPED
        ],
    }


def _dispute_shares(vendor_id: int) -> dict[str, int]:
    recovered, returned = db.session.execute(
        select(
            func.coalesce(
                func.sum(DisputeRecovery.amount_cents).filter(
                    Reversal.status == ReversalStatus.REVERSED
                ),
                0,
            ),
            func.coalesce(
                func.sum(DisputeRecovery.return_cents).filter(
                    DisputeRecovery.status == RecoveryStatus.RETURNED
                ),
                0,
            ),
        )
        .select_from(DisputeRecovery)
        .outerjoin(Reversal, Reversal.dispute_recovery_id == DisputeRecovery.id)
        .where(DisputeRecovery.vendor_id == vendor_id)
    ).one()
    return {"dispute_recovered_cents": int(recovered), "dispute_returned_cents": int(returned)}
