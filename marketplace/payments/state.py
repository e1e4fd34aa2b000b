"""The payment's state machine: which moves a PaymentIntent's record may make.

Webhooks arrive late, twice and out of order, so an event can never move a payment backwards:
a captured payment stays captured whatever `payment_intent.canceled` says, and a canceled one
is never authorized again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from marketplace.db import db
from marketplace.errors import Conflict
from marketplace.payments.models import (
    Capture,
    CaptureStatus,
    Dispute,
    DisputeStatus,
    Payment,
    PaymentStatus,
)

P = PaymentStatus

ALLOWED: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    P.REQUIRES_PAYMENT: frozenset({P.AUTHORIZED, P.CANCELED}),
    # void, or the authorization lapsed at Stripe
    P.AUTHORIZED: frozenset({P.CAPTURING, P.CANCELED}),
    # Stripe captured; refused with the hold still there; refused because the hold lapsed
    P.CAPTURING: frozenset({P.CAPTURED, P.AUTHORIZED, P.CANCELED}),
    P.CAPTURED: frozenset(),
    P.CANCELED: frozenset(),
}


class IllegalPaymentTransition(Conflict):
    code = "illegal_payment_transition"
    message = "The payment cannot make that move."


def can_move(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in ALLOWED[current]


def move_payment(payment: Payment, target: PaymentStatus) -> None:
    """:raises IllegalPaymentTransition:"""
    if not can_move(payment.status, target):
        raise IllegalPaymentTransition(
            f"A payment cannot go from {payment.status.value} to {target.value}."
        )
    payment.status = target


C = CaptureStatus

# A capture is asked once and answered once: succeeded or failed, never back (a late refusal
# or a stale `payment_intent.canceled` cannot undo a capture Stripe made).
CAPTURE_TRANSITIONS: dict[CaptureStatus, frozenset[CaptureStatus]] = {
    C.REQUESTED: frozenset({C.SUCCEEDED, C.FAILED}),
    C.SUCCEEDED: frozenset(),
    C.FAILED: frozenset(),
}


class IllegalCaptureMove(AssertionError):
    """A step asked for a move the capture's table does not allow: a bug, never a user's."""


def move_capture(
    capture_id: int, source: CaptureStatus, target: CaptureStatus, **values: Any
) -> bool:
    """Claim the move (`UPDATE … WHERE id = ? AND status = source`, inside the caller's
    transaction): of the answer and the webhook racing, exactly one records the outcome;
    False for the other."""
    if target not in CAPTURE_TRANSITIONS[source]:
        raise IllegalCaptureMove(f"capture {source.value} → {target.value}")
    claimed = db.session.execute(
        update(Capture)
        .where(Capture.id == capture_id, Capture.status == source)
        .values(status=target, **values)
    )
    return claimed.rowcount == 1


DISPUTE_TRANSITIONS: dict[DisputeStatus, frozenset[DisputeStatus]] = {
    DisputeStatus.OPEN: frozenset({DisputeStatus.WON, DisputeStatus.LOST}),
    DisputeStatus.WON: frozenset(),
    DisputeStatus.LOST: frozenset(),
}


def close_dispute(dispute: Dispute, outcome: DisputeStatus) -> bool:
    """Record the card network's decision; False when it was recorded already (or differently:
    a decision is final, a late or repeated event never reopens or flips it)."""
    if outcome not in DISPUTE_TRANSITIONS[dispute.status]:
        return False
    dispute.status = outcome
    return True
