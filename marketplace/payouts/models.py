"""Money owed and moved: settings, transfers, refunds and the double-entry ledger."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

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


class ReversalStatus(enum.StrEnum):
    """One transfer reversal asked of Stripe (a refund's vendor share, a dispute share)."""

    ASKED = "asked"  # written before Stripe is asked; no answer recorded yet
    REVERSED = "reversed"  # Stripe made it (`stripe_reversal_id`)
    FAILED = "failed"  # Stripe refused it (`failure_reason`): the vendor owes it instead


class RecoveryStatus(enum.StrEnum):
    """A vendor's share of a disputed charge, taken back while the bank decides."""

    PENDING = "pending"  # the reversal is to be (or was) asked of Stripe, no answer recorded
    REVERSED = "reversed"  # Stripe reversed it from the vendor's transfer
    OWED = "owed"  # not reversible (refused, or nothing sent yet): a receivable nets it
    CANCELED = "canceled"  # the dispute was won before anything was taken
    RETURNING = "returning"  # won: what was taken goes back by a new transfer, asked of Stripe
    RETURNED = "returned"
    # Stripe refused that transfer: still owed to the vendor (the books say so); an admin may
    # try it again
    RETURN_REFUSED = "return_refused"
    WAIVED = "waived"  # won while owed and nothing netted yet: the debt is dropped


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
    # an admin's retry of a refused transfer is a new attempt with its own key
    # (`transfer:<vendor_order_id>`, then `transfer:<vendor_order_id>:<attempt>`)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
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
    # What Stripe answered when it refused the refund (status failed).
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the reversal of the vendor's share, once asked of Stripe
    reversal: Mapped[Reversal | None] = relationship(
        primaryjoin="Reversal.refund_id == Refund.id", viewonly=True, uselist=False
    )

    @property
    def stripe_reversal_id(self) -> str | None:
        return self.reversal.stripe_reversal_id if self.reversal is not None else None

    @property
    def reversal_failure_reason(self) -> str | None:
        """What Stripe answered when it refused the reversal."""
        if self.reversal is None or self.reversal.status is not ReversalStatus.FAILED:
            return None
        return self.reversal.failure_reason or ""


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


class DisputeRecovery(db.Model):
    """One vendor's share of a disputed charge, recovered for the platform (the setting
    `dispute_recovery` = `reverse_vendor_share`): reversed from the part's transfer (key
    `dispute_recovery:<id>`), else owed as a receivable; given back by a transfer
    (`dispute_return:<id>`) if the platform wins the dispute."""

    __tablename__ = "dispute_recoveries"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "return_cents >= 0 AND return_cents <= amount_cents", name="return_within_amount"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), index=True)
    vendor_order_id: Mapped[int] = mapped_column(ForeignKey("vendor_orders.id"), index=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    # the sent transfer it is reversed from (None: nothing was sent, it is owed)
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"))
    amount_cents: Mapped[int] = mapped_column(Integer)
    return_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[RecoveryStatus] = mapped_column(_enum(RecoveryStatus))
    stripe_return_transfer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # the give-back transfer's attempt: an admin's retry asks with a new key
    # (`dispute_return:<id>`, then `dispute_return:<id>:<attempt>`)
    return_attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reversal: Mapped[Reversal | None] = relationship(
        primaryjoin="Reversal.dispute_recovery_id == DisputeRecovery.id",
        viewonly=True,
        uselist=False,
    )

    @property
    def stripe_reversal_id(self) -> str | None:
        return self.reversal.stripe_reversal_id if self.reversal is not None else None


class Reversal(db.Model):
    """One transfer reversal asked of Stripe: for a refund's vendor share (key
    `reversal:<refund_id>`) or for a dispute share (`dispute_recovery:<id>`); a later attempt
    appends `:<attempt>`. Written (`asked`) before Stripe is asked, outside any transaction
    for the call; the answer moves it to `reversed` or `failed`, never back."""

    __tablename__ = "reversals"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("(refund_id IS NULL) <> (dispute_recovery_id IS NULL)", name="one_owner"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), unique=True)
    dispute_recovery_id: Mapped[int | None] = mapped_column(
        ForeignKey("dispute_recoveries.id"), unique=True
    )
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[ReversalStatus] = mapped_column(_enum(ReversalStatus))
    stripe_reversal_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def key(self) -> str:
        """The idempotency key of this attempt, derived from our ids."""
        base = (
            f"reversal:{self.refund_id}"
            if self.refund_id is not None
            else f"dispute_recovery:{self.dispute_recovery_id}"
        )
        return base if self.attempt == 1 else f"{base}:{self.attempt}"


class VendorReceivable(db.Model):
    """What a vendor owes the platform because Stripe refused to reverse its share of a
    refund (or of a dispute): netted from the vendor's next transfers until settled."""

    __tablename__ = "vendor_receivables"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "settled_cents >= 0 AND settled_cents <= amount_cents", name="settled_within_amount"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    # what the debt comes from: a refund whose reversal was refused, or a dispute's recovery
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), unique=True)
    dispute_recovery_id: Mapped[int | None] = mapped_column(
        ForeignKey("dispute_recoveries.id"), unique=True
    )
    amount_cents: Mapped[int] = mapped_column(Integer)
    settled_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
