"""Money owed and moved: settings, transfers, refunds and the double-entry ledger."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import UTCDateTime, db, utcnow


class TransferStatus(enum.StrEnum):
    PENDING = "pending"
    # Asked of Stripe with the amount fixed; refunds from now on reverse it once it is sent.
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    # Stripe refused it (the amount held back is given back); an admin may try it again.
    REFUSED = "refused"


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Transfer(db.Model):
    """The vendor's payout for one VendorOrder (at most one: key `transfer:<vendor_order_id>`)."""

    __tablename__ = "transfers"
    __table_args__ = (CheckConstraint("amount_cents >= 0", name="amount_non_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor_order_id: Mapped[int] = mapped_column(ForeignKey("vendor_orders.id"), unique=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[TransferStatus] = mapped_column(_enum(TransferStatus))
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    reversed_cents: Mapped[int] = mapped_column(Integer, default=0)
    # Held back from this transfer to settle what the vendor owed (refused reversals).
    netted_cents: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Refund(db.Model):
    """Money returned to the buyer for (part of) one VendorOrder, and how it is split."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "tax_cents + commission_returned_cents + vendor_share_cents = amount_cents",
            name="split_adds_up",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor_order_id: Mapped[int] = mapped_column(ForeignKey("vendor_orders.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    tax_cents: Mapped[int] = mapped_column(Integer, default=0)
    commission_returned_cents: Mapped[int] = mapped_column(Integer)
    vendor_share_cents: Mapped[int] = mapped_column(Integer)
    transfer_reversal_cents: Mapped[int] = mapped_column(Integer, default=0)
    items: Mapped[list[dict[str, int]]] = mapped_column(JSON, default=list)
    restock: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(60))
    status: Mapped[RefundStatus] = mapped_column(_enum(RefundStatus))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_reversal_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # What Stripe answered when it refused the refund (status failed) or the reversal.
    failure_reason: Mapped[str | None] = mapped_column(Text)
    reversal_failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(db.Model):
    """One leg of a balanced journal (the legs of a journal sum to zero)."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    journal: Mapped[str] = mapped_column(String(80), index=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    account: Mapped[str] = mapped_column(String(40), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    vendor_order_id: Mapped[int | None] = mapped_column(ForeignKey("vendor_orders.id"))
    vendor_id: Mapped[int | None] = mapped_column(ForeignKey("vendors.id"), index=True)
    stripe_object_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class VendorReceivable(db.Model):
    """What a vendor owes the platform because Stripe refused to reverse its share of a
    refund: netted from the vendor's next transfers until settled."""

    __tablename__ = "vendor_receivables"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "settled_cents >= 0 AND settled_cents <= amount_cents", name="settled_within_amount"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id"), unique=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    settled_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
