"""The order's payment (one PaymentIntent) and the Stripe events already processed."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import UTCDateTime, db, utcnow


class PaymentStatus(enum.StrEnum):
    REQUIRES_PAYMENT = "requires_payment"
    AUTHORIZED = "authorized"
    # A capture was started with `capture_amount_cents` and its answer is not recorded yet.
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
    capture_amount_cents: Mapped[int | None] = mapped_column(Integer)
    amount_captured_cents: Mapped[int] = mapped_column(Integer, default=0)
    amount_refunded_cents: Mapped[int] = mapped_column(Integer, default=0)
    charge_id: Mapped[str | None] = mapped_column(String(64))
    authorized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stripe's own deadline for capturing the authorization (the charge's `capture_before`).
    capture_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why Stripe last refused a step of this payment (a capture), for the admin.
    last_error: Mapped[str | None] = mapped_column(Text)
    # Why we asked Stripe to cancel the uncaptured authorization (a void), and when Stripe
    # last refused it: the hold is still on the card, so the void is tried again.
    void_reason: Mapped[str | None] = mapped_column(String(32))
    void_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
