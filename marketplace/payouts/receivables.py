"""What vendors owe the platform (a reversal Stripe refused), and netting it from transfers.

The ledger already shows the debt: the refund's journal took the vendor's share back from
`vendor_payable`, and no reversal put cash back, so the vendor's payable stays positive. A
receivable row names it, so the next transfers to that vendor hold it back until it is settled.
"""

from __future__ import annotations

from sqlalchemy import func, select

from marketplace.db import db, utcnow
from marketplace.payouts.models import Refund, VendorReceivable


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
                VendorReceivable.settled_cents < VendorReceivable.amount_cents
            )
        )
    )
