"""The vendors' transfer records: what each VendorOrder's transfer is, and what is due.

The Stripe step that sends a transfer lives in `marketplace.settlement.payout`.
"""

from __future__ import annotations

from sqlalchemy import func, select

from marketplace.db import db
from marketplace.orders.models import VendorOrderStatus
from marketplace.payouts.models import Refund, RefundStatus, Transfer, TransferStatus

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
