"""What vendors owe the platform (a reversal Stripe refused), and netting it from transfers.

The ledger already shows the debt: the refund's journal took the vendor's share back from
`vendor_payable`, and no reversal put cash back, so the vendor's payable stays positive. A
receivable row names it, so the next transfers to that vendor hold it back until it is settled.
"""

from __future__ import annotations

from sqlalchemy import func, select

from marketplace.db import db, utcnow
from marketplace.payouts.models import DisputeRecovery, Refund, VendorReceivable


def record(refund: Refund, vendor_id: int, currency: str) -> VendorReceivable:
    """Inside the caller's transaction, once per refund."""
    existing = db.session.scalar(
        select(VendorReceivable).where(VendorReceivable.refund_id == refund.id)
    )
    if existing is not None:
        return existing
    receivable = VendorReceivable(
        vendor_id=vendor_id,
        refund_id=refund.id,
        amount_cents=refund.transfer_reversal_cents,
        settled_cents=0,
        currency=currency,
    )
    db.session.add(receivable)
    db.session.flush()
    return receivable


def record_for_dispute(recovery: DisputeRecovery) -> VendorReceivable:
    """The vendor's share of a dispute that could not be reversed (inside the caller's
    transaction), once per recovery."""
    existing = db.session.scalar(
        select(VendorReceivable).where(VendorReceivable.dispute_recovery_id == recovery.id)
    )
    if existing is not None:
        return existing
    receivable = VendorReceivable(
        vendor_id=recovery.vendor_id,
        dispute_recovery_id=recovery.id,
        amount_cents=recovery.amount_cents,
        settled_cents=0,
        currency=recovery.currency,
    )
    db.session.add(receivable)
    db.session.flush()
    return receivable


def forgive_dispute_share(recovery_id: int) -> int:
    """The dispute was won: the vendor owes nothing any more. What was already netted from its
    transfers stays as the settled debt (it is given back by a transfer); the rest is dropped.
    Returns the cents netted so far."""
    receivable = db.session.scalar(
        select(VendorReceivable)
        .where(VendorReceivable.dispute_recovery_id == recovery_id)
        .with_for_update()
    )
    if receivable is None:
        return 0
    netted = receivable.settled_cents
    if netted == 0:
        db.session.delete(receivable)
    else:
        receivable.amount_cents = netted
        receivable.settled_at = receivable.settled_at or utcnow()
    db.session.flush()
    return netted


def net_against(vendor_id: int, amount_cents: int) -> int:
    """Hold back from a transfer of `amount_cents` what the vendor owes, oldest debt first
    (rows locked, inside the caller's transaction). Returns the amount held back."""
    held = 0
    open_debts = db.session.scalars(
        select(VendorReceivable)
        .where(
            VendorReceivable.vendor_id == vendor_id,
            VendorReceivable.settled_cents < VendorReceivable.amount_cents,
        )
        .order_by(VendorReceivable.id)
        .with_for_update()
    ).all()
    for debt in open_debts:
        part = min(debt.amount_cents - debt.settled_cents, amount_cents - held)
        if part <= 0:
            break
        debt.settled_cents += part
        if debt.settled_cents == debt.amount_cents:
            debt.settled_at = utcnow()
        held += part
    return held


def give_back(vendor_id: int, amount_cents: int) -> None:
    """A transfer that held back `amount_cents` was refused: the vendor owes it again (the
    newest settlements are undone first, the reverse of `net_against`)."""
    left = amount_cents
    settled = db.session.scalars(
        select(VendorReceivable)
        .where(VendorReceivable.vendor_id == vendor_id, VendorReceivable.settled_cents > 0)
        .order_by(VendorReceivable.id.desc())
        .with_for_update()
    ).all()
    for debt in settled:
        part = min(debt.settled_cents, left)
        debt.settled_cents -= part
        debt.settled_at = None
        left -= part
        if left == 0:
            break


def owed(vendor_id: int) -> int:
    return int(
        db.session.scalar(
            select(
                func.coalesce(
                    func.sum(VendorReceivable.amount_cents - VendorReceivable.settled_cents), 0
                )
            ).where(VendorReceivable.vendor_id == vendor_id)
        )
        or 0
    )


def unsettled_refund_ids() -> set[int]:
    return set(
        db.session.scalars(
            select(VendorReceivable.refund_id).where(
                VendorReceivable.refund_id.is_not(None),
                VendorReceivable.settled_cents < VendorReceivable.amount_cents,
            )
        )
    )
