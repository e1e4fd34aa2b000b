"""Reconciliation: the ledger and our records compared with Stripe's objects, every cent.

Each mismatch names its kind, the Stripe object, the cents we expected and the cents Stripe
has, so an admin can see what went wrong and where.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, exists, func, literal, select
from typing_extensions import TypedDict

from marketplace.db import db
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from marketplace.orders.models import Order, VendorOrder
from marketplace.payments import gateway
from marketplace.payments.models import (
    Capture,
    CaptureStatus,
    Dispute,
    DisputeStatus,
    Payment,
    PaymentStatus,
)
from marketplace.payouts import ledger, receivables
from marketplace.payouts.models import (
    DisputeRecovery,
    LedgerEntry,
    RecoveryStatus,
    Refund,
    RefundStatus,
    Reversal,
    ReversalStatus,
    Transfer,
    TransferStatus,
    VendorReceivable,
)
from marketplace.payouts.transfers import recovery_reversed, refund_reversed


@dataclass
class Mismatch:
    kind: str
    object_id: str | None
    expected_cents: int | None
    actual_cents: int | None
    detail: str


class TotalsJson(TypedDict):
    charged_cents: int
    refunded_cents: int
    platform_fee_cents: int
    tax_cents: int
    transferred_cents: int
    reversed_cents: int


class OpenDisputeJson(TypedDict):
    order_id: int
    stripe_dispute_id: str
    amount_cents: int
    reason: str | None
    created_at: str


class FailedStepJson(TypedDict):
    kind: str
    id: int
    detail: str | None


class TaxSectionJson(TypedDict):
    """Tax collected for the authorities: what the orders say against what the ledger holds."""

    collected_cents: int  # tax of the captured VendorOrders (their own figures)
    refunded_cents: int  # tax given back by the refunds Stripe made
    payable_cents: int  # collected − refunded
    booked_cents: int  # the ledger's `tax_payable` account (credit balance)
    reverse_charged_orders: int  # orders an EU business buyer's VAT number exempted
    ok: bool


class ReconciliationJson(TypedDict):
    ok: bool
    totals: TotalsJson
    tax: TaxSectionJson
    mismatches: list[Mismatch]
    open_disputes: list[OpenDisputeJson]
    failed_steps: list[FailedStepJson]


def _ledger_sum(kind: str, account: str, since: datetime | None, until: datetime | None) -> int:
    query = select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.kind == kind, LedgerEntry.account == account
    )
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    if until is not None:
        query = query.where(LedgerEntry.created_at < until)
    return int(db.session.scalar(query) or 0)


def totals(since: datetime | None = None, until: datetime | None = None) -> TotalsJson:
    def s(kind: str, account: str) -> int:
        return _ledger_sum(kind, account, since, until)

    return {
        "charged_cents": s("capture", ledger.CASH),
        "refunded_cents": -s("refund", ledger.CASH),
        "platform_fee_cents": -(s("capture", ledger.COMMISSION) + s("refund", ledger.COMMISSION)),
        "tax_cents": -(s("capture", ledger.TAX) + s("refund", ledger.TAX)),
        "transferred_cents": s("transfer", ledger.VENDOR_PAYABLE),
        "reversed_cents": s("reversal", ledger.CASH),
    }


def reconcile(since: datetime | None = None, until: datetime | None = None) -> ReconciliationJson:
    mismatches: list[Mismatch] = []
    unbalanced = ledger.balance_all()
    if unbalanced != 0:
        mismatches.append(
            Mismatch("ledger_unbalanced", None, 0, unbalanced, "ledger entries do not sum to zero")
        )
    mismatches += _check_charges(since, until)
    mismatches += _check_authorizations(since, until)
    mismatches += _check_refunds(since, until)
    mismatches += _check_transfers(since, until)
    mismatches += _check_vendor_payouts(since, until)
    mismatches += _check_dispute_recoveries(since, until)
    tax_section, tax_mismatches = _check_tax(since, until)
    mismatches += tax_mismatches
    return {
        "ok": not mismatches,
        "totals": totals(since, until),
        "tax": tax_section,
        "mismatches": [asdict(m) for m in mismatches],  # type: ignore[misc]
        "open_disputes": _open_disputes(since, until),
        "failed_steps": _failed_steps(since, until),
    }


def _failed_steps(since: datetime | None, until: datetime | None) -> list[FailedStepJson]:
    """Steps that ended without doing anything: not a mismatch (the books match Stripe), but an
    admin may want to act on them: refunds and transfers Stripe refused, dead-letter jobs."""
    refused = db.session.scalars(
        _in_range(
            select(Refund).where(Refund.status == RefundStatus.FAILED).order_by(Refund.id),
            Refund.created_at,
            since,
            until,
        )
    )
    steps = [{"kind": "refund_refused", "id": r.id, "detail": r.failure_reason} for r in refused]
    transfers = db.session.scalars(
        _in_range(
            select(Transfer).where(Transfer.status == TransferStatus.REFUSED).order_by(Transfer.id),
            Transfer.created_at,
            since,
            until,
        )
    )
    steps += [
        {"kind": "transfer_refused", "id": t.id, "detail": t.failure_reason} for t in transfers
    ]
    voids = db.session.scalars(
        _in_range(
            select(Payment)
            .where(
                Payment.void_refused_at.is_not(None),
                Payment.status.not_in([PaymentStatus.CANCELED, PaymentStatus.CAPTURED]),
            )
            .order_by(Payment.id),
            Payment.created_at,
            since,
            until,
        )
    )
    steps += [{"kind": "void_refused", "id": p.order_id, "detail": p.last_error} for p in voids]
    steps += _refused_captures(since, until)
    owed = db.session.execute(
        _in_range(
            select(DisputeRecovery, VendorReceivable)
            .join(VendorReceivable, VendorReceivable.dispute_recovery_id == DisputeRecovery.id)
            .where(
                DisputeRecovery.status == RecoveryStatus.OWED,
                DisputeRecovery.failure_reason.is_not(None),
                VendorReceivable.settled_cents < VendorReceivable.amount_cents,
            )
            .order_by(DisputeRecovery.id),
            DisputeRecovery.created_at,
            since,
            until,
        )
    ).all()
    steps += [
        {"kind": "dispute_recovery_refused", "id": r.id, "detail": r.failure_reason}
        for r, _ in owed
    ]
    returns = db.session.scalars(
        _in_range(
            select(DisputeRecovery)
            .where(DisputeRecovery.status == RecoveryStatus.RETURN_REFUSED)
            .order_by(DisputeRecovery.id),
            DisputeRecovery.created_at,
            since,
            until,
        )
    )
    steps += [
        {"kind": "dispute_return_refused", "id": r.id, "detail": r.failure_reason} for r in returns
    ]
    dead = db.session.scalars(
        _in_range(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.DEAD)
            .order_by(OutboxMessage.id),
            OutboxMessage.created_at,
            since,
            until,
        )
    )
    steps += [
        {"kind": "dead_letter", "id": m.id, "detail": f"{m.job}: {m.last_error}"} for m in dead
    ]
    return steps


def _refused_captures(since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """Captures Stripe refused while the hold is still there (the payment is back to
    `authorized`, the hourly job asks again with a new capture): the last refusal each."""
    latest = (
        select(func.max(Capture.id))
        .where(Capture.payment_id == Payment.id)
        .correlate(Payment)
        .scalar_subquery()
    )
    rows = db.session.scalars(
        _in_range(
            select(Capture)
            .join(Payment, Payment.id == Capture.payment_id)
            .where(
                Payment.status == PaymentStatus.AUTHORIZED,
                Capture.id == latest,
                Capture.status == CaptureStatus.FAILED,
            )
            .order_by(Capture.id),
            Capture.created_at,
            since,
            until,
        )
    )
    return [
        {"kind": "capture_refused", "id": c.id, "order_id": c.order_id, "detail": c.failure_reason}
        for c in rows
    ]


def _check_refunds(since: datetime | None, until: datetime | None) -> list[Mismatch]:
    """Refund by refund: every refund Stripe made is one of ours, for the same amount, and
    every refund we hold as made exists at Stripe."""
    found: list[Mismatch] = []
    ours = {
        r.stripe_refund_id: r
        for r in db.session.scalars(
            _in_range(
                select(Refund).where(Refund.status == RefundStatus.SUCCEEDED),
                Refund.created_at,
                since,
                until,
            )
        )
    }
    pending = set(
        db.session.scalars(select(Refund.id).where(Refund.status == RefundStatus.PENDING))
    )
    seen: set[str] = set()
    for theirs in gateway.list_all("refunds"):
        seen.add(theirs["id"])
        mine = ours.get(theirs["id"])
        refund_id = (theirs.get("metadata") or {}).get("refund_id")
        if mine is None:
            if since is None and not (
                refund_id and refund_id.isdigit() and int(refund_id) in pending
            ):
                # a pending row's answer may be lost: `refund_pending` reports that one
                found.append(
                    Mismatch(
                        "refund_unknown",
                        theirs["id"],
                        None,
                        int(theirs.get("amount") or 0),
                        f"Stripe has a refund of charge {theirs.get('charge')} the books do not",
                    )
                )
        elif int(theirs.get("amount") or 0) != mine.amount_cents:
            found.append(
                Mismatch(
                    "refund_amount",
                    theirs["id"],
                    mine.amount_cents,
                    int(theirs.get("amount") or 0),
                    f"refund {mine.id}: amount differs",
                )
            )
    for stripe_id, mine in ours.items():
        if stripe_id not in seen:
            found.append(
                Mismatch(
                    "refund_missing",
                    stripe_id,
                    mine.amount_cents,
                    None,
                    f"refund {mine.id}: not found at Stripe",
                )
            )
    return found


def _check_tax(
    since: datetime | None, until: datetime | None
) -> tuple[TaxSectionJson, list[Mismatch]]:
    """VendorOrder by VendorOrder: the tax its capture and its refunds booked to `tax_payable`
    is the tax on its record less the tax its refunds gave back (mismatch `tax_booked`)."""
    booked: dict[int, int] = {
        vo_id: -int(amount)
        for vo_id, amount in db.session.execute(
            _in_range(
                select(LedgerEntry.vendor_order_id, func.sum(LedgerEntry.amount_cents))
                .where(
                    LedgerEntry.account == ledger.TAX,
                    LedgerEntry.kind.in_(("capture", "refund")),
                )
                .group_by(LedgerEntry.vendor_order_id),
                LedgerEntry.created_at,
                since,
                until,
            )
        )
        if vo_id is not None
    }
    captured = _in_range(
        select(LedgerEntry.vendor_order_id).where(LedgerEntry.kind == "capture"),
        LedgerEntry.created_at,
        since,
        until,
    )
    collected: dict[int, int] = dict(
        db.session.execute(
            select(VendorOrder.id, VendorOrder.tax_cents).where(VendorOrder.id.in_(captured))
        ).all()
    )
    refunds_booked = _in_range(
        select(LedgerEntry.journal).where(LedgerEntry.kind == "refund"),
        LedgerEntry.created_at,
        since,
        until,
    )
    refunded: dict[int, int] = {
        vo_id: int(amount)
        for vo_id, amount in db.session.execute(
            select(Refund.vendor_order_id, func.sum(Refund.tax_cents))
            .where(
                Refund.status == RefundStatus.SUCCEEDED,
                (literal("refund:") + cast(Refund.id, String)).in_(refunds_booked),
            )
            .group_by(Refund.vendor_order_id)
        )
    }
    found: list[Mismatch] = []
    for vo_id in sorted(set(booked) | set(collected) | set(refunded)):
        expected = collected.get(vo_id, 0) - refunded.get(vo_id, 0)
        if booked.get(vo_id, 0) != expected:
            found.append(
                Mismatch(
                    "tax_booked",
                    f"vendor_order:{vo_id}",
                    expected,
                    booked.get(vo_id, 0),
                    f"vendor order {vo_id}: tax payable booked differs from its tax less refunds",
                )
            )
    reverse_charged = _in_range(
        select(func.count(Order.id)).where(Order.reverse_charge.is_(True)),
        Order.created_at,
        since,
        until,
    )
    section: TaxSectionJson = {
        "collected_cents": sum(collected.values()),
        "refunded_cents": sum(refunded.values()),
        "payable_cents": sum(collected.values()) - sum(refunded.values()),
        "booked_cents": sum(booked.values()),
        "reverse_charged_orders": int(db.session.scalar(reverse_charged) or 0),
        "ok": not found,
    }
    return section, found


def _open_disputes(since: datetime | None, until: datetime | None) -> list[OpenDisputeJson]:
    """Disputes the card network has not decided: not a mismatch, but money on hold."""
    query = select(Dispute).where(Dispute.status == DisputeStatus.OPEN).order_by(Dispute.id)
    return [
        {
            "order_id": d.order_id,
            "stripe_dispute_id": d.stripe_dispute_id,
            "amount_cents": d.amount_cents,
            "reason": d.reason,
            "created_at": d.created_at.isoformat(),
        }
        for d in db.session.scalars(_in_range(query, Dispute.created_at, since, until))
    ]


def _in_range(query: Any, column: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


def _check_charges(since: datetime | None, until: datetime | None) -> list[Mismatch]:
    found: list[Mismatch] = []
    payments = db.session.scalars(
        _in_range(
            select(Payment).where(Payment.status == PaymentStatus.CAPTURED),
            Payment.captured_at,
            since,
            until,
        )
    ).all()
    for payment in payments:
        captured = ledger.total("capture", ledger.CASH, order_id=payment.order_id)
        refunded = -ledger.total("refund", ledger.CASH, order_id=payment.order_id)
        try:
            charge = gateway.retrieve_charge(payment.charge_id)
        except gateway.PaymentProviderRejected:
            found.append(
                Mismatch(
                    "charge_missing",
                    payment.charge_id,
                    captured,
                    None,
                    "charge not found at Stripe",
                )
            )
            continue
        if int(charge.get("amount_captured") or 0) != captured:
            found.append(
                Mismatch(
                    "charge_captured",
                    payment.charge_id,
                    captured,
                    int(charge.get("amount_captured") or 0),
                    f"order {payment.order_id}: captured amount differs",
                )
            )
        if charge.get("disputed") and not _dispute_recorded(payment.order_id):
            found.append(
                Mismatch(
                    "dispute_unrecorded",
                    payment.charge_id,
                    0,
                    None,
                    f"order {payment.order_id}: Stripe shows a dispute the books do not",
                )
            )
        if int(charge.get("amount_refunded") or 0) != refunded:
            found.append(
                Mismatch(
                    "charge_refunded",
                    payment.charge_id,
                    refunded,
                    int(charge.get("amount_refunded") or 0),
                    f"order {payment.order_id}: refunded amount differs",
                )
            )
    pending = db.session.scalars(
        _in_range(
            select(Refund).where(Refund.status == RefundStatus.PENDING),
            Refund.created_at,
            since,
            until,
        )
    ).all()
    for refund in pending:
        found.append(
            Mismatch(
                "refund_pending",
                str(refund.id),
                refund.amount_cents,
                None,
                "refund booked but not yet accepted by Stripe",
            )
        )
    stuck = db.session.scalars(
        _in_range(
            select(Refund).where(
                Refund.status == RefundStatus.SUCCEEDED,
                Refund.transfer_reversal_cents > 0,
                ~refund_reversed(),
            ),
            Refund.created_at,
            since,
            until,
        )
    ).all()
    unsettled = receivables.unsettled_refund_ids()
    for refund in stuck:
        refused = refund.reversal_failure_reason is not None
        if refused and refund.id not in unsettled:
            continue  # netted from the vendor's later transfers: settled
        found.append(
            Mismatch(
                "reversal_refused" if refused else "reversal_pending",
                str(refund.id),
                refund.transfer_reversal_cents,
                None,
                f"Stripe refused to reverse the vendor's share: {refund.reversal_failure_reason}"
                if refused
                else "refund made but the vendor's transfer not yet reversed at Stripe",
            )
        )
    return found


def _dispute_recorded(order_id: int) -> bool:
    return (
        db.session.scalar(select(Dispute.id).where(Dispute.order_id == order_id).limit(1))
        is not None
    )


def _check_authorizations(since: datetime | None, until: datetime | None) -> list[Mismatch]:
    """Payments we hold as authorized that Stripe has in fact captured (a capture whose answer
    was lost, then never recorded): money taken that the ledger does not show."""
    found: list[Mismatch] = []
    payments = db.session.scalars(
        _in_range(
            select(Payment)
            .join(Order, Order.id == Payment.order_id)
            .where(Payment.status.in_([PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURING])),
            Order.created_at,
            since,
            until,
        )
    ).all()
    for payment in payments:
        try:
            intent = gateway.retrieve_payment_intent(payment.payment_intent_id)
        except gateway.PaymentProviderRejected:
            found.append(
                Mismatch(
                    "intent_missing",
                    payment.payment_intent_id,
                    payment.amount_authorized_cents,
                    None,
                    f"order {payment.order_id}: payment intent not found at Stripe",
                )
            )
            continue
        received = int(intent.get("amount_received") or 0)
        if received:
            found.append(
                Mismatch(
                    "capture_unrecorded",
                    payment.payment_intent_id,
                    0,
                    received,
                    f"order {payment.order_id}: Stripe captured money the ledger does not show",
                )
            )
    return found


def _sent_transfers(since: datetime | None, until: datetime | None) -> list[Transfer]:
    return list(
        db.session.scalars(
            _in_range(
                select(Transfer).where(Transfer.status == TransferStatus.SENT),
                Transfer.sent_at,
                since,
                until,
            )
        )
    )


def _check_vendor_payouts(since: datetime | None, until: datetime | None) -> list[Mismatch]:
    """A vendor never keeps more than its earnings minus its share of the refunds: a refund
    booked while the transfer was in flight must not leave the vendor overpaid."""
    found: list[Mismatch] = []
    for transfer in _sent_transfers(since, until):
        vendor_order = db.session.get(VendorOrder, transfer.vendor_order_id)
        refunds = db.session.scalars(
            select(Refund).where(
                Refund.vendor_order_id == transfer.vendor_order_id,
                Refund.status != RefundStatus.FAILED,
            )
        ).all()
        due = vendor_order.vendor_earnings_cents - sum(r.vendor_share_cents for r in refunds)
        # taken back: by a reversal (made or pending), or, when Stripe refused it, by the
        # receivable netted from later transfers (reported as `reversal_refused` until then)
        kept = transfer.amount_cents - sum(r.transfer_reversal_cents for r in refunds)
        if kept > due:
            found.append(
                Mismatch(
                    "vendor_overpaid",
                    transfer.stripe_transfer_id,
                    due,
                    kept,
                    f"vendor order {transfer.vendor_order_id}: vendor keeps more than it earned",
                )
            )
    return found


def _check_transfers(since: datetime | None, until: datetime | None) -> list[Mismatch]:
    found: list[Mismatch] = []
    ours = _sent_transfers(since, until)
    known = {t.stripe_transfer_id for t in ours}
    for transfer in ours:
        reversed_ours = -ledger.total(
            "reversal", ledger.VENDOR_PAYABLE, vendor_order_id=transfer.vendor_order_id
        ) + _recovered_from(transfer.id)
        try:
            theirs = gateway.retrieve_transfer(transfer.stripe_transfer_id)
        except gateway.PaymentProviderRejected:
            found.append(
                Mismatch(
                    "transfer_missing",
                    transfer.stripe_transfer_id,
                    transfer.amount_cents,
                    None,
                    f"vendor order {transfer.vendor_order_id}: transfer not found at Stripe",
                )
            )
            continue
        if int(theirs.get("amount") or 0) != transfer.amount_cents:
            found.append(
                Mismatch(
                    "transfer_amount",
                    transfer.stripe_transfer_id,
                    transfer.amount_cents,
                    int(theirs.get("amount") or 0),
                    f"vendor order {transfer.vendor_order_id}: transfer amount differs",
                )
            )
        if int(theirs.get("amount_reversed") or 0) != reversed_ours:
            found.append(
                Mismatch(
                    "transfer_reversed",
                    transfer.stripe_transfer_id,
                    reversed_ours,
                    int(theirs.get("amount_reversed") or 0),
                    f"vendor order {transfer.vendor_order_id}: reversed amount differs",
                )
            )
        found += _check_reversals(transfer)
    for theirs in gateway.list_all("transfers"):
        group = str(theirs.get("transfer_group") or "")
        if group.startswith("order:") and theirs["id"] not in known and since is None:
            found.append(
                Mismatch(
                    "transfer_unknown",
                    theirs["id"],
                    None,
                    int(theirs.get("amount") or 0),
                    f"Stripe has a transfer for {group} that the ledger does not",
                )
            )
    return found


def _check_reversals(transfer: Transfer) -> list[Mismatch]:
    """Reversal by reversal: every reversal Stripe made of this transfer is one we recorded
    (a refund's or a dispute share's), for the same amount, and every one we recorded is at
    Stripe. A reversal Stripe made for a step whose answer is still awaited is left to that
    step's own `reversal_pending` / `dispute_recovery_pending`."""
    ours: dict[str, tuple[str, int]] = {}
    awaited: set[tuple[str, str]] = set()
    for row in db.session.scalars(
        select(Reversal).where(Reversal.transfer_id == transfer.id).order_by(Reversal.id)
    ):
        owner = (
            ("refund_id", str(row.refund_id))
            if row.refund_id is not None
            else ("dispute_recovery_id", str(row.dispute_recovery_id))
        )
        if row.status is ReversalStatus.REVERSED and row.stripe_reversal_id is not None:
            ours[row.stripe_reversal_id] = (f"reversal {row.id}", row.amount_cents)
        elif row.status is ReversalStatus.ASKED:
            awaited.add(owner)
    # refunds whose reversal is due but not asked yet (no row): Stripe may not have it either
    for refund_id in db.session.scalars(
        select(Refund.id).where(
            Refund.vendor_order_id == transfer.vendor_order_id,
            Refund.transfer_reversal_cents > 0,
            Refund.status == RefundStatus.SUCCEEDED,
            ~exists().where(Reversal.refund_id == Refund.id),
        )
    ):
        awaited.add(("refund_id", str(refund_id)))
    for recovery_id in db.session.scalars(
        select(DisputeRecovery.id).where(
            DisputeRecovery.transfer_id == transfer.id,
            DisputeRecovery.status == RecoveryStatus.PENDING,
        )
    ):
        awaited.add(("dispute_recovery_id", str(recovery_id)))
    try:
        theirs = gateway.list_transfer_reversals(transfer.stripe_transfer_id)
    except gateway.PaymentProviderRejected:
        return []  # the transfer itself is reported missing
    found: list[Mismatch] = []
    for reversal in theirs:
        amount = int(reversal.get("amount") or 0)
        mine = ours.pop(reversal["id"], None)
        if mine is None:
            metadata = reversal.get("metadata") or {}
            if any((name, metadata.get(name)) in awaited for name in _REVERSAL_OWNERS):
                continue
            found.append(
                Mismatch(
                    "reversal_unknown",
                    reversal["id"],
                    None,
                    amount,
                    f"vendor order {transfer.vendor_order_id}: Stripe reversed the transfer "
                    "by a reversal the books do not have",
                )
            )
        elif mine[1] != amount:
            found.append(
                Mismatch(
                    "reversal_amount",
                    reversal["id"],
                    mine[1],
                    amount,
                    f"{mine[0]}: the reversal's amount differs",
                )
            )
    for stripe_id, (owner, amount) in ours.items():
        found.append(
            Mismatch(
                "reversal_missing",
                stripe_id,
                amount,
                None,
                f"{owner}: the reversal is not among the transfer's reversals at Stripe",
            )
        )
    return found


# The metadata naming the step a reversal was made for.
_REVERSAL_OWNERS = ("refund_id", "dispute_recovery_id")


def _recovered_from(transfer_id: int) -> int:
    """What disputes took back from this transfer by reversals (recorded)."""
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(DisputeRecovery.amount_cents), 0)).where(
                DisputeRecovery.transfer_id == transfer_id,
                recovery_reversed(),
            )
        )
        or 0
    )


def _check_dispute_recoveries(since: datetime | None, until: datetime | None) -> list[Mismatch]:
    """Vendors' dispute shares: none left with Stripe unanswered, every transfer giving one
    back matches Stripe's, and Stripe has no such transfer the books do not."""
    found: list[Mismatch] = []
    rows = db.session.scalars(
        _in_range(
            select(DisputeRecovery).order_by(DisputeRecovery.id),
            DisputeRecovery.created_at,
            since,
            until,
        )
    ).all()
    for row in rows:
        if row.status in (RecoveryStatus.PENDING, RecoveryStatus.RETURNING):
            taking = row.status is RecoveryStatus.PENDING
            found.append(
                Mismatch(
                    "dispute_recovery_pending",
                    str(row.id),
                    row.amount_cents if taking else row.return_cents,
                    None,
                    "the vendor's dispute share is not yet "
                    + ("reversed at Stripe" if taking else "given back at Stripe"),
                )
            )
    known = {row.stripe_return_transfer_id: row for row in rows if row.stripe_return_transfer_id}
    for stripe_id, row in known.items():
        try:
            theirs = gateway.retrieve_transfer(stripe_id)
        except gateway.PaymentProviderRejected:
            theirs = None
        actual = None if theirs is None else int(theirs.get("amount") or 0)
        if actual != row.return_cents:
            found.append(
                Mismatch(
                    "dispute_return_amount" if theirs else "transfer_missing",
                    stripe_id,
                    row.return_cents,
                    actual,
                    f"dispute recovery {row.id}: the transfer giving it back differs",
                )
            )
    if since is None and rows:  # a recovery row exists before its transfer is asked for
        for theirs in gateway.list_all("transfers"):
            group = str(theirs.get("transfer_group") or "")
            if group.startswith("dispute:") and theirs["id"] not in known:
                found.append(
                    Mismatch(
                        "transfer_unknown",
                        theirs["id"],
                        None,
                        int(theirs.get("amount") or 0),
                        f"Stripe has a transfer for {group} that the ledger does not",
                    )
                )
    return found


def payouts_csv() -> str:
    """One row per transfer or reversal."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "type",
            "id",
            "stripe_id",
            "vendor_id",
            "vendor_order_id",
            "order_id",
            "amount_cents",
            "currency",
            "created_at",
        ]
    )
    rows = db.session.execute(
        select(Transfer, VendorOrder.order_id)
        .join(VendorOrder, VendorOrder.id == Transfer.vendor_order_id)
        .where(Transfer.status == TransferStatus.SENT)
        .order_by(Transfer.id)
    ).all()
    for transfer, order_id in rows:
        writer.writerow(
            [
                "transfer",
                transfer.id,
                transfer.stripe_transfer_id,
                transfer.vendor_id,
                transfer.vendor_order_id,
                order_id,
                transfer.amount_cents,
                transfer.currency,
                (transfer.sent_at or transfer.created_at).isoformat(),
            ]
        )
    reversals = db.session.execute(
        select(Refund, VendorOrder)
        .join(VendorOrder, VendorOrder.id == Refund.vendor_order_id)
        .where(refund_reversed())
        .order_by(Refund.id)
    ).all()
    for refund, vendor_order in reversals:
        writer.writerow(
            [
                "reversal",
                refund.id,
                refund.stripe_reversal_id,
                vendor_order.vendor_id,
                vendor_order.id,
                vendor_order.order_id,
                -refund.transfer_reversal_cents,
                vendor_order.order.currency,
                refund.created_at.isoformat(),
            ]
        )
    return out.getvalue()
