"""The vendors' transfer records: what each VendorOrder's transfer is, and what is due.

The Stripe step that sends a transfer lives in `marketplace.settlement.payout`.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, func, select

from marketplace.db import db
from marketplace.orders.models import VendorOrderStatus
from marketplace.payouts.models import (
    DisputeRecovery,
    Refund,
    RefundStatus,
    Reversal,
    ReversalStatus,
    Transfer,
    TransferStatus,
)

PAYABLE = (VendorOrderStatus.DELIVERED, VendorOrderStatus.COMPLETED)


def vendor_share_refunded(vendor_order_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(Refund.vendor_share_cents), 0)).where(
                Refund.vendor_order_id == vendor_order_id,
                Refund.status == RefundStatus.SUCCEEDED,
            )
        )
        or 0
    )


def started_transfer(vendor_order_id: int) -> Transfer | None:
    """The vendor's transfer once it was asked of Stripe (sending or sent): from then on a
    refund takes the vendor's share back by a reversal."""
    return db.session.scalar(
        select(Transfer).where(
            Transfer.vendor_order_id == vendor_order_id,
            Transfer.status.in_([TransferStatus.SENDING, TransferStatus.SENT]),
        )
    )


def sent_transfer(vendor_order_id: int) -> Transfer | None:
    return db.session.scalar(
        select(Transfer).where(
            Transfer.vendor_order_id == vendor_order_id, Transfer.status == TransferStatus.SENT
        )
    )


def refund_reversed() -> ColumnElement[bool]:
    """SQL: the refund's reversal was made at Stripe (its `reversals` row is `reversed`)."""
    return exists().where(
        Reversal.refund_id == Refund.id, Reversal.status == ReversalStatus.REVERSED
    )


def refund_reversal_answered() -> ColumnElement[bool]:
    """SQL: Stripe answered the refund's reversal (made or refused)."""
    return exists().where(
        Reversal.refund_id == Refund.id,
        Reversal.status.in_([ReversalStatus.REVERSED, ReversalStatus.FAILED]),
    )


def recovery_reversed() -> ColumnElement[bool]:
    """SQL: the dispute share was reversed at Stripe."""
    return exists().where(
        Reversal.dispute_recovery_id == DisputeRecovery.id,
        Reversal.status == ReversalStatus.REVERSED,
    )


def ask_reversal(
    transfer: Transfer,
    amount_cents: int,
    *,
    refund_id: int | None = None,
    dispute_recovery_id: int | None = None,
) -> Reversal:
    """The reversal row for a refund's share or a dispute share, written (`asked`) inside the
    caller's transaction before Stripe is asked; the one already there if any."""
    owner = (
        Reversal.refund_id == refund_id
        if refund_id is not None
        else Reversal.dispute_recovery_id == dispute_recovery_id
    )
    reversal = db.session.scalar(select(Reversal).where(owner))
    if reversal is None:
        reversal = Reversal(
            transfer_id=transfer.id,
            refund_id=refund_id,
            dispute_recovery_id=dispute_recovery_id,
            amount_cents=amount_cents,
            currency=transfer.currency,
            status=ReversalStatus.ASKED,
            attempt=1,
        )
        db.session.add(reversal)
        db.session.flush()
    return reversal
