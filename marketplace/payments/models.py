"""The order's payment (one PaymentIntent) and the Stripe events already processed."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import UTCDateTime, db, utcnow


class PaymentStatus(enum.StrEnum):
    REQUIRES_PAYMENT = "requires_payment"
    AUTHORIZED = "authorized"
    # A capture was asked of Stripe (its `Capture` row is `requested`), no answer recorded yet.
    CAPTURING = "capturing"
    CAPTURED = "captured"
    CANCELED = "canceled"


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_captured_cents >= 0", name="captured_non_negative"),
        CheckConstraint(
            "amount_refunded_cents >= 0 AND amount_refunded_cents <= amount_captured_cents",
            name="refunded_within_captured",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    payment_intent_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[PaymentStatus] = mapped_column(
        Enum(
            PaymentStatus,
            native_enum=False,
            length=24,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=PaymentStatus.REQUIRES_PAYMENT,
    )
    currency: Mapped[str] = mapped_column(String(3))
    amount_cents: Mapped[int] = mapped_column(Integer)
    amount_authorized_cents: Mapped[int] = mapped_column(Integer, default=0)
    amount_captured_cents: Mapped[int] = mapped_column(Integer, default=0)
    amount_refunded_cents: Mapped[int] = mapped_column(Integer, default=0)
    charge_id: Mapped[str | None] = mapped_column(String(64))
    authorized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stripe's own deadline for capturing the authorization (the charge's `capture_before`).
    capture_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why Stripe last refused to void this payment, for the admin (a refused capture keeps its
    # answer on its `Capture` row).
    last_error: Mapped[str | None] = mapped_column(Text)
    # Why we asked Stripe to cancel the uncaptured authorization (a void), and when Stripe
    # last refused it: the hold is still on the card, so the void is tried again.
    void_reason: Mapped[str | None] = mapped_column(String(32))
    void_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Each refusal ends a void attempt: the next asks with its own key (`void:order:<id>`,
    # then `void:order:<id>:<attempt>`), since Stripe replays a refusal under a key for 24 h.
    void_attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaptureStatus(enum.StrEnum):
    REQUESTED = "requested"  # asked of Stripe (key `capture:<id>`), no answer recorded yet
    SUCCEEDED = "succeeded"  # Stripe captured it: the payment is captured, the books show it
    FAILED = "failed"  # Stripe refused it or the authorization lapsed: compensated


class Capture(db.Model):
    """One capture of the payment's authorization, asked of Stripe: the intent row written with
    the payment's move to `capturing`, answered from Stripe's reply or its webhook, whichever
    comes first. A refused capture stays as `failed`; trying again is a new row (a new key, so
    Stripe does not replay the refusal). At most one is `requested` at a time."""

    __tablename__ = "captures"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        Index(
            "ix_captures_one_requested",
            "payment_id",
            unique=True,
            sqlite_where=text("status = 'requested'"),
            postgresql_where=text("status = 'requested'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    # the authorization minus the parts cancelled before it, fixed under the order's lock
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[CaptureStatus] = mapped_column(
        Enum(
            CaptureStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=CaptureStatus.REQUESTED,
    )
    amount_captured_cents: Mapped[int | None] = mapped_column(Integer)
    charge_id: Mapped[str | None] = mapped_column(String(64))
    # Stripe's answer when it refused (or why it failed: the authorization lapsed)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def idempotency_key(self) -> str:
        return f"capture:{self.id}"


class StripeEvent(db.Model):
    """A webhook event id, inserted in the same transaction that applies the event."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DisputeStatus(enum.StrEnum):
    OPEN = "open"  # the funds are withdrawn until the card network decides
    WON = "won"  # the funds came back
    LOST = "lost"  # the buyer keeps them


class Dispute(db.Model):
    """A cardholder's dispute of the order's charge, as Stripe reported it."""

    __tablename__ = "disputes"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(64), unique=True)
    charge_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[DisputeStatus] = mapped_column(
        Enum(
            DisputeStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=DisputeStatus.OPEN,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
