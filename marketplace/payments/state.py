"""The payment's state machine: which moves a PaymentIntent's record may make.

Webhooks arrive late, twice and out of order, so an event can never move a payment backwards:
a captured payment stays captured whatever `payment_intent.canceled` says, and a canceled one
is never authorized again.
"""

from __future__ import annotations

from marketplace.errors import Conflict
from marketplace.payments.models import Dispute, DisputeStatus, Payment, PaymentStatus

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
