"""Who carries a dispute: the platform, or the vendors for their share of the disputed amount.

The platform setting `dispute_recovery` decides when a dispute opens:

- `platform_absorbs` (the default): nothing is taken from the vendors; a lost dispute is the
  platform's loss.
- `reverse_vendor_share`: each vendor's share of the disputed amount (the disputed amount
  spread over the charge's parts, then the vendor's earnings' share of its part) is a
  `DisputeRecovery` row. A part whose transfer was sent is reversed at Stripe (key
  `dispute_recovery:<id>`, outside any transaction); one not sent yet, or whose reversal
  Stripe refuses, is owed: a receivable netted from the vendor's next transfers. A won
  dispute gives back what was taken by a new transfer (`dispute_return:<id>`) and drops what
  was still owed; a lost one leaves it taken. A return Stripe refuses is still owed to the
  vendor (`return_refused`, listed among reconciliation's failed steps) until an admin tries
  it again.

Each Stripe answer is recorded under the order's lock, and the books take the dispute's state
at that moment: a reversal recorded after the decision covers the loss (lost) or is owed back
at once (won). A step whose answer was lost looks at Stripe (the transfer's reversals, the
dispute's transfers, by metadata) before asking again, so a pruned idempotency key never takes
or gives twice.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select
from typing_extensions import TypedDict

from marketplace.audit import services as audit
from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict, ValidationFailed
from marketplace.jobs import outbox
from marketplace.money import split_by_weights
from marketplace.orders import commission, fulfilment
from marketplace.orders.models import PlatformSettings, VendorOrder, VendorOrderStatus
from marketplace.payments import gateway
from marketplace.payments.models import Dispute, DisputeStatus
from marketplace.payments.services import payment_of
from marketplace.payouts import ledger, receivables
from marketplace.payouts.models import (
    DisputeRecovery,
    RecoveryStatus,
    Refund,
    RefundStatus,
    Reversal,
    ReversalStatus,
    Transfer,
)
from marketplace.payouts.state import move_recovery, move_reversal
from marketplace.payouts.transfers import (
    ask_reversal,
    refund_reversal_answered,
    sent_transfer,
    vendor_share_refunded,
)
from marketplace.settlement import ANSWER_LOST_AFTER

log = logging.getLogger(__name__)

PLATFORM_ABSORBS = "platform_absorbs"
REVERSE_VENDOR_SHARE = "reverse_vendor_share"
MODES = (PLATFORM_ABSORBS, REVERSE_VENDOR_SHARE)

RECOVER_JOB = "marketplace.settlement.jobs.recover_dispute_share"
RETURN_JOB = "marketplace.settlement.jobs.return_dispute_share"

# The parts a vendor still earns on (a cancelled part's money is the buyer's, not the vendor's).
_EARNING = (
    VendorOrderStatus.PAID,
    VendorOrderStatus.PROCESSING,
    VendorOrderStatus.SHIPPED,
    VendorOrderStatus.DELIVERED,
    VendorOrderStatus.COMPLETED,
)
# Recorded while the dispute was open: they cover part of the disputed amount.
_COVERING = (RecoveryStatus.REVERSED, RecoveryStatus.OWED)


# --- the setting ------------------------------------------------------------------------------


def mode() -> str:
    """The platform's `dispute_recovery` setting."""
    row = db.session.get(PlatformSettings, 1)
    return (row.dispute_recovery if row is not None else None) or PLATFORM_ABSORBS


def set_mode(value: str) -> str:
    """Change who carries the next disputes (disputes already open keep their decision).

    :raises ValidationFailed:
    """
    if value not in MODES:
        raise ValidationFailed({"dispute_recovery": f"must be one of {', '.join(MODES)}"})
    with transaction():
        row = commission.settings_row()
        before = row.dispute_recovery or PLATFORM_ABSORBS
        row.dispute_recovery = value
        audit.record(
            "dispute_recovery.set",
            "platform",
            "dispute_recovery",
            {"dispute_recovery": before},
            {"dispute_recovery": value},
        )
    return value


# --- a dispute opens ----------------------------------------------------------------------


def plan(dispute: Dispute) -> list[DisputeRecovery]:
    """Inside the webhook's transaction, with the order locked: one recovery per vendor share
    of the disputed amount, when the setting says so."""
    if mode() != REVERSE_VENDOR_SHARE:
        return []
    captured = [
        vo
        for vo in db.session.scalars(
            select(VendorOrder)
            .where(VendorOrder.order_id == dispute.order_id)
            .order_by(VendorOrder.id)
        )
        if ledger.captured(vo.id)
    ]
    if not captured:
        return []
    unrefunded = [max(vo.total_cents - _refunded(vo.id), 0) for vo in captured]
    if sum(unrefunded) == 0:
        return []
    parts = split_by_weights(dispute.amount_cents, unrefunded)
    planned: list[DisputeRecovery] = []
    for vendor_order, part, left in zip(captured, parts, unrefunded, strict=True):
        if vendor_order.status not in _EARNING or left == 0:
            continue
        earned = vendor_order.vendor_earnings_cents
        vendor_net = max(earned - vendor_share_refunded(vendor_order.id), 0)
        share = min(split_by_weights(part, [vendor_net, max(left - vendor_net, 0)])[0], vendor_net)
        if share <= 0:
            continue
        planned.append(_start(dispute, vendor_order, share))
    return planned


def _refunded(vendor_order_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
                Refund.vendor_order_id == vendor_order_id,
                Refund.status == RefundStatus.SUCCEEDED,
            )
        )
        or 0
    )


def _reversible(transfer: Transfer) -> int:
    """What is left to reverse of a sent transfer once the refunds' reversals are taken."""
    planned = int(
        db.session.scalar(
            select(func.coalesce(func.sum(Refund.transfer_reversal_cents), 0)).where(
                Refund.vendor_order_id == transfer.vendor_order_id,
                Refund.status != RefundStatus.FAILED,
                ~refund_reversal_answered(),
            )
        )
        or 0
    )
    return transfer.amount_cents - transfer.reversed_cents - planned


def _start(dispute: Dispute, vendor_order: VendorOrder, share: int) -> DisputeRecovery:
    transfer = sent_transfer(vendor_order.id)
    recovery = DisputeRecovery(
        dispute_id=dispute.id,
        vendor_order_id=vendor_order.id,
        vendor_id=vendor_order.vendor_id,
        amount_cents=share,
        return_cents=0,
        currency=dispute.currency,
        status=RecoveryStatus.PENDING,
    )
    if transfer is not None and _reversible(transfer) >= share:
        recovery.transfer_id = transfer.id
        db.session.add(recovery)
        db.session.flush()
        outbox.add(RECOVER_JOB, recovery.id)
        return recovery
    # nothing (or too little) was sent to reverse: the vendor owes it, netted from its next
    # transfers (this part's own, held while the dispute is open, first of all)
    recovery.status = RecoveryStatus.OWED
    db.session.add(recovery)
    db.session.flush()
    receivables.record_for_dispute(recovery)
    ledger.record_dispute_recovery(recovery, DisputeStatus.OPEN)
    return recovery


# --- the reversal, a Stripe step ----------------------------------------------------------


def recover_share(recovery_id: int) -> DisputeRecovery | None:
    """Reverse the vendor's share from its transfer (`dispute_recovery:<id>`), record it."""
    recovery = db.session.get(DisputeRecovery, recovery_id)
    if recovery is None or recovery.status is not RecoveryStatus.PENDING:
        return recovery
    with transaction():
        recovery, dispute = _locked(recovery_id)
        transfer = db.session.get(Transfer, recovery.transfer_id)
        stripe_transfer_id, amount = transfer.stripe_transfer_id, recovery.amount_cents
        won_already = dispute.status is DisputeStatus.WON
        reversal = recovery.reversal
        if reversal is None and not won_already:
            # the intent row, written before Stripe is asked
            reversal = ask_reversal(transfer, amount, dispute_recovery_id=recovery_id)
        reversal_id = reversal.id if reversal is not None else None
        key = reversal.key if reversal is not None else ""
        # asked since the share was planned, maybe by a run from before reversals had rows
        look_first = won_already or utcnow() - recovery.created_at > ANSWER_LOST_AFTER
    db.session.rollback()
    made = _reversal_made(stripe_transfer_id, recovery_id) if look_first else None
    if made is None:
        if won_already:  # decided before anything was taken: take nothing
            with transaction():
                _locked(recovery_id)
                canceled = move_recovery(
                    recovery_id, RecoveryStatus.PENDING, RecoveryStatus.CANCELED
                )
                if canceled and reversal_id is not None:
                    move_reversal(
                        reversal_id,
                        ReversalStatus.ASKED,
                        ReversalStatus.FAILED,
                        failure_reason="the dispute was won before the reversal was made",
                    )
            return db.session.get(DisputeRecovery, recovery_id)
        try:
            made = gateway.create_transfer_reversal(
                key=key,
                transfer_id=stripe_transfer_id,
                amount_cents=amount,
                metadata={"dispute_recovery_id": str(recovery_id)},
            )
        except gateway.PaymentProviderRejected as refusal:
            made = _reversal_made(stripe_transfer_id, recovery_id)
            if made is None:
                _refused(recovery_id, reversal_id, refusal)
                return db.session.get(DisputeRecovery, recovery_id)
    _record_reversed(recovery_id, made)
    return db.session.get(DisputeRecovery, recovery_id)


def _reversal_made(stripe_transfer_id: str, recovery_id: int) -> dict[str, Any] | None:
    """The reversal Stripe made for this recovery although we never heard back, if any."""
    for made in gateway.list_transfer_reversals(stripe_transfer_id):
        if (made.get("metadata") or {}).get("dispute_recovery_id") == str(recovery_id):
            return made
    return None


def _locked(recovery_id: int) -> tuple[DisputeRecovery, Dispute]:
    recovery = db.session.get(DisputeRecovery, recovery_id)
    fulfilment.locked_order(db.session.get(VendorOrder, recovery.vendor_order_id).order_id)
    dispute = db.session.get(Dispute, recovery.dispute_id)
    db.session.refresh(dispute)
    return recovery, dispute


def _record_reversed(recovery_id: int, made: dict[str, Any]) -> None:
    with transaction():
        recovery, dispute = _locked(recovery_id)
        if not move_recovery(recovery_id, RecoveryStatus.PENDING, RecoveryStatus.REVERSED):
            return
        db.session.refresh(recovery)
        reversal = db.session.scalar(
            select(Reversal).where(Reversal.dispute_recovery_id == recovery_id)
        )
        if reversal is None:  # asked by a run from before reversals had their own rows
            transfer = db.session.get(Transfer, recovery.transfer_id)
            reversal = ask_reversal(
                transfer, recovery.amount_cents, dispute_recovery_id=recovery_id
            )
        move_reversal(
            reversal.id, reversal.status, ReversalStatus.REVERSED, stripe_reversal_id=made["id"]
        )
        transfer = db.session.get(Transfer, recovery.transfer_id)
        transfer.reversed_cents += recovery.amount_cents
        ledger.record_dispute_recovery(recovery, dispute.status, stripe_reversal_id=made["id"])
        if dispute.status is DisputeStatus.WON:  # decided meanwhile: it goes straight back
            move_recovery(
                recovery_id,
                RecoveryStatus.REVERSED,
                RecoveryStatus.RETURNING,
                return_cents=recovery.amount_cents,
            )
            outbox.add(RETURN_JOB, recovery_id)


def _refused(
    recovery_id: int, reversal_id: int | None, refusal: gateway.PaymentProviderRejected
) -> None:
    """Stripe refused the reversal: the vendor owes the share (unless the dispute was won
    meanwhile: then it owes nothing)."""
    with transaction():
        recovery, dispute = _locked(recovery_id)
        reason = refusal.message[:2000]
        if reversal_id is not None:
            move_reversal(
                reversal_id, ReversalStatus.ASKED, ReversalStatus.FAILED, failure_reason=reason
            )
        if dispute.status is DisputeStatus.WON:
            move_recovery(
                recovery_id,
                RecoveryStatus.PENDING,
                RecoveryStatus.CANCELED,
                failure_reason=reason,
            )
            return
        if not move_recovery(
            recovery_id, RecoveryStatus.PENDING, RecoveryStatus.OWED, failure_reason=reason
        ):
            return
        db.session.refresh(recovery)
        receivables.record_for_dispute(recovery)
        ledger.record_dispute_recovery(recovery, dispute.status)
        log.warning("dispute recovery %s refused by Stripe; owed: %s", recovery_id, reason)


# --- the decision -------------------------------------------------------------------------


def covered_cents(dispute: Dispute) -> int:
    """What the vendors cover of the open dispute (recorded while it was open)."""
    return sum(recovery.amount_cents for recovery in _covering(dispute))


def _covering(dispute: Dispute) -> list[DisputeRecovery]:
    return list(
        db.session.scalars(
            select(DisputeRecovery)
            .where(DisputeRecovery.dispute_id == dispute.id, DisputeRecovery.status.in_(_COVERING))
            .order_by(DisputeRecovery.id)
            .with_for_update()
        )
    )


def give_back(dispute: Dispute) -> None:
    """The dispute was won (inside the webhook's transaction, order locked): what was taken
    from each vendor goes back by a transfer, what it still owed is dropped. Recoveries still
    with Stripe settle themselves when their answer is recorded."""
    for recovery in _covering(dispute):
        ledger.record_dispute_share_owed_back(recovery)
        if recovery.status is RecoveryStatus.REVERSED:
            back = recovery.amount_cents
        else:
            back = receivables.forgive_dispute_share(recovery.id)  # netted so far
        if back == 0:
            move_recovery(recovery.id, RecoveryStatus.OWED, RecoveryStatus.WAIVED)
            continue
        move_recovery(recovery.id, recovery.status, RecoveryStatus.RETURNING, return_cents=back)
        outbox.add(RETURN_JOB, recovery.id)


# --- giving back, a Stripe step -----------------------------------------------------------


def return_share(recovery_id: int) -> DisputeRecovery | None:
    """Give the vendor back what the won dispute had taken (`dispute_return:<id>`).

    A refusal is final for this try: the recovery is `return_refused` with Stripe's answer
    and the admins are told. Nothing was booked for the transfer, so the books keep showing
    the share owed to the vendor (`dispute_share_back`); reconciliation lists it among the
    failed steps until an admin tries it again (`retry_refused_return`).
    """
    recovery = db.session.get(DisputeRecovery, recovery_id)
    if recovery is None or recovery.status is not RecoveryStatus.RETURNING:
        return recovery
    vendor_order = db.session.get(VendorOrder, recovery.vendor_order_id)
    payment = payment_of(vendor_order.order_id)
    group = f"dispute:{vendor_order.order_id}"
    params = {
        "amount_cents": recovery.return_cents,
        "currency": recovery.currency,
        "destination": vendor_order.vendor.stripe_account_id,
        "source_transaction": payment.charge_id,
        "transfer_group": group,
        "metadata": {
            "dispute_recovery_id": str(recovery_id),
            "vendor_order_id": str(vendor_order.id),
        },
    }
    key = f"dispute_return:{recovery_id}"
    if recovery.return_attempt > 1:  # an admin's retry: Stripe would replay the refusal
        key = f"{key}:{recovery.return_attempt}"
    db.session.rollback()
    made = _return_made(group, recovery_id)
    if made is None:
        try:
            made = gateway.create_transfer(key=key, **params)
        except gateway.PaymentProviderRejected as refusal:
            made = _return_made(group, recovery_id)  # made by a run we never heard back from
            if made is None:
                _return_refused(recovery_id, refusal)
                return db.session.get(DisputeRecovery, recovery_id)
    with transaction():
        _locked(recovery_id)
        if move_recovery(
            recovery_id,
            RecoveryStatus.RETURNING,
            RecoveryStatus.RETURNED,
            stripe_return_transfer_id=made["id"],
        ):
            recovery = db.session.get(DisputeRecovery, recovery_id)
            db.session.refresh(recovery)
            ledger.record_dispute_return(recovery)
    return db.session.get(DisputeRecovery, recovery_id)


def _return_refused(recovery_id: int, refusal: gateway.PaymentProviderRejected) -> None:
    with transaction():
        _locked(recovery_id)
        if move_recovery(
            recovery_id,
            RecoveryStatus.RETURNING,
            RecoveryStatus.RETURN_REFUSED,
            failure_reason=refusal.message[:2000],
        ):
            outbox.add("marketplace.notifications.jobs.dispute_return_refused", recovery_id)
    log.warning("return of dispute share %s refused by Stripe: %s", recovery_id, refusal.message)


class ReturnNotRefused(Conflict):
    code = "dispute_return_not_refused"
    message = "Only a dispute share whose return Stripe refused can be tried again."


def retry_refused_return(recovery_id: int) -> DisputeRecovery:
    """An admin tries a refused return of a dispute share again (like a refused transfer).

    :raises ReturnNotRefused:
    """
    with transaction():
        # a new attempt, a new key: under the old one Stripe replays its refusal for 24 h
        if not move_recovery(
            recovery_id,
            RecoveryStatus.RETURN_REFUSED,
            RecoveryStatus.RETURNING,
            return_attempt=DisputeRecovery.return_attempt + 1,
        ):
            raise ReturnNotRefused()
        outbox.add(RETURN_JOB, recovery_id)
    return db.session.get(DisputeRecovery, recovery_id)


def _return_made(group: str, recovery_id: int) -> dict[str, Any] | None:
    for made in gateway.list_all("transfers", transfer_group=group):
        if (made.get("metadata") or {}).get("dispute_recovery_id") == str(recovery_id):
            return made
    return None


class RecoveryJson(TypedDict):
    id: int
    vendor_order_id: int
    amount_cents: int
    return_cents: int
    status: RecoveryStatus
    stripe_reversal_id: str | None
    stripe_return_transfer_id: str | None
    failure_reason: str | None


def recovery_json(recovery: DisputeRecovery) -> RecoveryJson:
    return {
        "id": recovery.id,
        "vendor_order_id": recovery.vendor_order_id,
        "amount_cents": recovery.amount_cents,
        "return_cents": recovery.return_cents,
        "status": recovery.status.value,
        "stripe_reversal_id": recovery.stripe_reversal_id,
        "stripe_return_transfer_id": recovery.stripe_return_transfer_id,
        "failure_reason": recovery.failure_reason,
    }
