"""The transfer's, refund's, reversal's and dispute recovery's state machines, and the one
guarded move each step makes.

A move is a claim: `UPDATE … SET status = to WHERE id = ? AND status = from`, so of two
runners racing (a retry, a webhook, an admin) exactly one makes it; the others see False.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from marketplace.db import db, utcnow
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

T, R, D, V = TransferStatus, RefundStatus, RecoveryStatus, ReversalStatus

TRANSFER_TRANSITIONS: dict[TransferStatus, frozenset[TransferStatus]] = {
    T.PENDING: frozenset({T.SENDING, T.SKIPPED}),
    # asked of Stripe with the amount fixed: made, or refused
    T.SENDING: frozenset({T.SENT, T.REFUSED}),
    T.REFUSED: frozenset({T.PENDING}),  # an admin tries it again
    T.SENT: frozenset(),
    T.SKIPPED: frozenset(),
}

REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    R.PENDING: frozenset({R.SUCCEEDED, R.FAILED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
}

REVERSAL_TRANSITIONS: dict[ReversalStatus, frozenset[ReversalStatus]] = {
    # asked of Stripe: made, or refused (the vendor owes it: a receivable)
    V.ASKED: frozenset({V.REVERSED, V.FAILED}),
    V.REVERSED: frozenset(),
    V.FAILED: frozenset(),
}


RECOVERY_TRANSITIONS: dict[RecoveryStatus, frozenset[RecoveryStatus]] = {
    # reversed by Stripe; refused (a receivable); the dispute won before anything was taken
    D.PENDING: frozenset({D.REVERSED, D.OWED, D.CANCELED}),
    D.REVERSED: frozenset({D.RETURNING}),  # won: given back by a new transfer
    # won: what was netted goes back by a transfer; nothing netted yet: the debt is dropped
    D.OWED: frozenset({D.RETURNING, D.WAIVED}),
    # given back at Stripe; refused (still owed to the vendor, an admin may try again)
    D.RETURNING: frozenset({D.RETURNED, D.RETURN_REFUSED}),
    D.RETURN_REFUSED: frozenset({D.RETURNING}),
    D.RETURNED: frozenset(),
    D.CANCELED: frozenset(),
    D.WAIVED: frozenset(),
}


class IllegalMove(AssertionError):
    """A step asked for a move its table does not allow: a bug, never a user's doing."""


def move_transfer(
    transfer_id: int, source: TransferStatus, target: TransferStatus, **values: Any
) -> bool:
    """Claim the move (inside the caller's transaction); False when another run made it."""
    if target not in TRANSFER_TRANSITIONS[source]:
        raise IllegalMove(f"transfer {source.value} → {target.value}")
    claimed = db.session.execute(
        update(Transfer)
        .where(Transfer.id == transfer_id, Transfer.status == source)
        .values(status=target, **values)
    )
    return claimed.rowcount == 1


def move_refund(refund_id: int, source: RefundStatus, target: RefundStatus, **values: Any) -> bool:
    """Claim the move (inside the caller's transaction); False when another run made it."""
    if target not in REFUND_TRANSITIONS[source]:
        raise IllegalMove(f"refund {source.value} → {target.value}")
    claimed = db.session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == source)
        .values(status=target, **values)
    )
    return claimed.rowcount == 1


def move_recovery(
    recovery_id: int, source: RecoveryStatus, target: RecoveryStatus, **values: Any
) -> bool:
    """Claim the move (inside the caller's transaction); False when another run made it."""
    if target not in RECOVERY_TRANSITIONS[source]:
        raise IllegalMove(f"dispute recovery {source.value} → {target.value}")
    claimed = db.session.execute(
        update(DisputeRecovery)
        .where(DisputeRecovery.id == recovery_id, DisputeRecovery.status == source)
        .values(status=target, **values)
    )
    return claimed.rowcount == 1


def move_reversal(
    reversal_id: int, source: ReversalStatus, target: ReversalStatus, **values: Any
) -> bool:
    """Claim the move (inside the caller's transaction); False when another run made it."""
    if target not in REVERSAL_TRANSITIONS[source]:
        raise IllegalMove(f"reversal {source.value} → {target.value}")
    claimed = db.session.execute(
        update(Reversal)
        .where(Reversal.id == reversal_id, Reversal.status == source)
        .values(status=target, answered_at=utcnow(), **values)
    )
    return claimed.rowcount == 1
