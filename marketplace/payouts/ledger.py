"""The double-entry ledger: every money movement is a journal whose legs sum to zero.

Accounts (positive = debit): `cash` (the platform's Stripe balance), `tax_payable`,
`commission` (platform revenue), `vendor_payable` (what the platform owes a vendor; negative
while owed), `disputed` (withdrawn by an open dispute, less what vendors cover of it),
`dispute_losses`. Only this module writes ledger entries.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from marketplace.db import db
from marketplace.orders.models import VendorOrder
from marketplace.payments.models import Dispute, DisputeStatus
from marketplace.payouts.models import DisputeRecovery, LedgerEntry, Refund, Transfer

CASH = "cash"
TAX = "tax_payable"
COMMISSION = "commission"
VENDOR_PAYABLE = "vendor_payable"
# Funds a dispute withdrew from the platform, until the card network decides; then lost ones
# become the platform's loss.
DISPUTED = "disputed"
DISPUTE_LOSSES = "dispute_losses"


class UnbalancedJournal(AssertionError):
    pass


@dataclass(frozen=True)
class Leg:
    account: str
    amount_cents: int


def post(
    journal: str,
    kind: str,
    legs: list[Leg],
    *,
    currency: str,
    order_id: int | None = None,
    vendor_order_id: int | None = None,
    vendor_id: int | None = None,
    stripe_object_id: str | None = None,
) -> None:
    """Write one balanced journal (inside the caller's transaction); zero legs are skipped.

    A journal name is written once: posting it again is a no-op, so retries never double-book.
    """
    if sum(leg.amount_cents for leg in legs) != 0:
        raise UnbalancedJournal(f"{journal}: legs do not sum to zero: {legs}")
    exists = db.session.scalar(
        select(LedgerEntry.id).where(LedgerEntry.journal == journal).limit(1)
    )
    if exists is not None:
        return
    for leg in legs:
        if leg.amount_cents == 0:
            continue
        db.session.add(
            LedgerEntry(
                journal=journal,
                kind=kind,
                account=leg.account,
                amount_cents=leg.amount_cents,
                currency=currency,
                order_id=order_id,
                vendor_order_id=vendor_order_id,
                vendor_id=vendor_id,
                stripe_object_id=stripe_object_id,
            )
        )
    db.session.flush()


def record_capture(vendor_order: VendorOrder, charge_id: str) -> None:
    """The buyer's money for one VendorOrder arrives: tax, commission, and the vendor's due."""
    post(
        f"capture:{vendor_order.id}",
        "capture",
        [
            Leg(CASH, vendor_order.total_cents),
            Leg(TAX, -vendor_order.tax_cents),
            Leg(COMMISSION, -vendor_order.platform_fee_cents),
            Leg(VENDOR_PAYABLE, -vendor_order.vendor_earnings_cents),
        ],
        currency=vendor_order.order.currency,
        order_id=vendor_order.order_id,
        vendor_order_id=vendor_order.id,
        vendor_id=vendor_order.vendor_id,
        stripe_object_id=charge_id,
    )


def captured(vendor_order_id: int) -> bool:
    """Whether the capture took this VendorOrder's money (its capture journal exists)."""
    journal = f"capture:{vendor_order_id}"
    return (
        db.session.scalar(select(LedgerEntry.id).where(LedgerEntry.journal == journal).limit(1))
        is not None
    )


def record_transfer(transfer: Transfer, order_id: int) -> None:
    post(
        f"transfer:{transfer.vendor_order_id}",
        "transfer",
        [Leg(VENDOR_PAYABLE, transfer.amount_cents), Leg(CASH, -transfer.amount_cents)],
        currency=transfer.currency,
        order_id=order_id,
        vendor_order_id=transfer.vendor_order_id,
        vendor_id=transfer.vendor_id,
        stripe_object_id=transfer.stripe_transfer_id,
    )


def record_refund(refund: Refund, vendor_order: VendorOrder) -> None:
    post(
        f"refund:{refund.id}",
        "refund",
        [
            Leg(CASH, -refund.amount_cents),
            Leg(TAX, refund.tax_cents),
            Leg(COMMISSION, refund.commission_returned_cents),
            Leg(VENDOR_PAYABLE, refund.vendor_share_cents),
        ],
        currency=vendor_order.order.currency,
        order_id=vendor_order.order_id,
        vendor_order_id=vendor_order.id,
        vendor_id=vendor_order.vendor_id,
        stripe_object_id=refund.stripe_refund_id,
    )


def record_reversal(refund: Refund, vendor_order: VendorOrder, stripe_reversal_id: str) -> None:
    post(
        f"reversal:{refund.id}",
        "reversal",
        [
            Leg(VENDOR_PAYABLE, -refund.transfer_reversal_cents),
            Leg(CASH, refund.transfer_reversal_cents),
        ],
        currency=vendor_order.order.currency,
        order_id=vendor_order.order_id,
        vendor_order_id=vendor_order.id,
        vendor_id=vendor_order.vendor_id,
        stripe_object_id=stripe_reversal_id,
    )


def record_dispute(dispute: Dispute) -> None:
    """Stripe took the disputed amount out of the platform's balance."""
    post(
        f"dispute:{dispute.stripe_dispute_id}",
        "dispute",
        [Leg(CASH, -dispute.amount_cents), Leg(DISPUTED, dispute.amount_cents)],
        currency=dispute.currency,
        order_id=dispute.order_id,
        stripe_object_id=dispute.stripe_dispute_id,
    )


def record_dispute_outcome(dispute: Dispute, won: bool, covered_cents: int = 0) -> None:
    """Won: the funds come back. Lost: what was withdrawn, less what vendors cover of it
    (`covered_cents`, their recovered shares), is the platform's loss."""
    if won:
        legs = [Leg(DISPUTED, -dispute.amount_cents), Leg(CASH, dispute.amount_cents)]
    else:
        lost = dispute.amount_cents - covered_cents
        legs = [Leg(DISPUTED, -lost), Leg(DISPUTE_LOSSES, lost)]
    post(
        f"dispute_{'won' if won else 'lost'}:{dispute.stripe_dispute_id}",
        "dispute_won" if won else "dispute_lost",
        legs,
        currency=dispute.currency,
        order_id=dispute.order_id,
        stripe_object_id=dispute.stripe_dispute_id,
    )


def record_dispute_recovery(
    recovery: DisputeRecovery,
    dispute_status: DisputeStatus,
    *,
    stripe_reversal_id: str | None = None,
) -> None:
    """The vendor covers its share of the dispute: cash back by a reversal, or owed by the
    vendor (a receivable). It covers the open dispute, or, when it is recorded after the
    decision, the loss (lost) or a debt of the platform to the vendor (won: given back)."""
    taken = CASH if stripe_reversal_id is not None else VENDOR_PAYABLE
    covers = {
        DisputeStatus.OPEN: DISPUTED,
        DisputeStatus.LOST: DISPUTE_LOSSES,
        DisputeStatus.WON: VENDOR_PAYABLE,
    }[dispute_status]
    post(
        f"dispute_recovery:{recovery.id}",
        "dispute_recovery",
        [Leg(taken, recovery.amount_cents), Leg(covers, -recovery.amount_cents)],
        currency=recovery.currency,
        order_id=_order_of(recovery.vendor_order_id),
        vendor_order_id=recovery.vendor_order_id,
        vendor_id=recovery.vendor_id,
        stripe_object_id=stripe_reversal_id,
    )


def record_dispute_share_owed_back(recovery: DisputeRecovery) -> None:
    """The dispute was won: the share the vendor covered is owed back to it."""
    post(
        f"dispute_share_back:{recovery.id}",
        "dispute_share_back",
        [Leg(DISPUTED, recovery.amount_cents), Leg(VENDOR_PAYABLE, -recovery.amount_cents)],
        currency=recovery.currency,
        order_id=_order_of(recovery.vendor_order_id),
        vendor_order_id=recovery.vendor_order_id,
        vendor_id=recovery.vendor_id,
    )


def record_dispute_return(recovery: DisputeRecovery) -> None:
    """What was taken from the vendor for a won dispute went back by a transfer."""
    post(
        f"dispute_return:{recovery.id}",
        "dispute_return",
        [Leg(VENDOR_PAYABLE, recovery.return_cents), Leg(CASH, -recovery.return_cents)],
        currency=recovery.currency,
        order_id=_order_of(recovery.vendor_order_id),
        vendor_order_id=recovery.vendor_order_id,
        vendor_id=recovery.vendor_id,
        stripe_object_id=recovery.stripe_return_transfer_id,
    )


def _order_of(vendor_order_id: int) -> int:
    return db.session.get(VendorOrder, vendor_order_id).order_id


def balance(account: str, **filters: int) -> int:
    query = select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.account == account
    )
    for name, value in filters.items():
        query = query.where(getattr(LedgerEntry, name) == value)
    return int(db.session.scalar(query) or 0)


def total(kind: str, account: str, **filters: int) -> int:
    query = select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.kind == kind, LedgerEntry.account == account
    )
    for name, value in filters.items():
        query = query.where(getattr(LedgerEntry, name) == value)
    return int(db.session.scalar(query) or 0)


def is_balanced() -> bool:
    return balance_all() == 0


def balance_all() -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))))
