"""Pay the vendor: one Transfer per delivered VendorOrder, from the order's charge.

The amount is fixed and the transfer marked `sending` under the order's lock before Stripe
is asked (key `transfer:<vendor_order_id>`), so a retry repeats the very same transfer and a
refund meanwhile reverses it once it is sent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import exists, select, update

from marketplace import jobs
from marketplace.audit import services as audit
from marketplace.catalog.models import Vendor, VendorStatus
from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from marketplace.orders import fulfilment
from marketplace.orders.models import VendorOrder
from marketplace.payments import gateway
from marketplace.payments.models import Dispute, DisputeStatus, Payment, PaymentStatus
from marketplace.payments.services import payment_of
from marketplace.payouts import ledger, receivables
from marketplace.payouts.models import Refund, RefundStatus, Transfer, TransferStatus
from marketplace.payouts.state import move_transfer
from marketplace.payouts.transfers import (
    PAYABLE,
    refund_reversed,
    started_transfer,
    vendor_share_refunded,
)
from marketplace.settlement import ANSWER_LOST_AFTER, disputes
from marketplace.settlement.capture import capture_order

log = logging.getLogger(__name__)

TRANSFER_JOB = "marketplace.settlement.jobs.transfer_vendor_order"
# The sweeper leaves a part this long past its hold to the job scheduled for it, so the two do
# not ask Stripe at the same moment.
SWEEP_GRACE = timedelta(minutes=5)
SWEEP_BATCH = 500


class TransferNotReady(Conflict):
    code, message = "transfer_not_ready", "The order's payment is not captured yet."


def transfer_vendor_order(vendor_order_id: int) -> Transfer | None:
    """Send the vendor its earnings for a delivered VendorOrder, once (`transfer:<id>`).

    :raises TransferNotReady: the charge is not captured (the job is retried).
    """
    vendor_order = db.session.get(VendorOrder, vendor_order_id)
    if vendor_order is None:
        return None
    in_flight = started_transfer(vendor_order_id)
    if in_flight is not None and in_flight.status is TransferStatus.SENDING:
        # asked of Stripe already, amount fixed: finish it whatever happened to the part since
        # (a refund meanwhile planned to reverse it once it is recorded)
        return _send(vendor_order, payment_of(vendor_order.order_id), in_flight)
    if vendor_order.status not in PAYABLE:
        return None
    hold = timedelta(seconds=current_app.config["PAYOUT_HOLD_SECONDS"])
    due_at = (vendor_order.delivered_at or utcnow()) + hold
    if due_at > utcnow():
        jobs.enqueue_at(
            due_at,
            "marketplace.settlement.jobs.transfer_vendor_order",
            vendor_order_id,
            job_id=f"transfer-{vendor_order_id}",
        )
        return None
    if vendor_order.vendor.status is VendorStatus.SUSPENDED:
        log.info("vendor order %s not paid out: its vendor is suspended", vendor_order_id)
        return None  # the payout sweeper pays it once an admin reinstates the vendor
    payment = payment_of(vendor_order.order_id)
    if payment is not None and payment.status in (
        PaymentStatus.AUTHORIZED,
        PaymentStatus.CAPTURING,
    ):
        capture_order(vendor_order.order_id)
        payment = payment_of(vendor_order.order_id)
    if payment is not None and payment.status is PaymentStatus.CANCELED:
        return None  # the authorization lapsed uncaptured: there is no charge to pay from
    if payment is None or payment.status is not PaymentStatus.CAPTURED or not payment.charge_id:
        raise TransferNotReady()
    if disputes.has_open_dispute(vendor_order.order_id):
        log.info("vendor order %s not paid out: its charge is disputed", vendor_order_id)
        return None  # the dispute's decision queues it again (the platform carries a loss)
    with transaction():
        transfer = _claim_transfer(vendor_order)
    if transfer is None:
        return None  # a refund is with Stripe: its settlement queues this transfer again
    if transfer.status is not TransferStatus.SENDING:
        return transfer
    return _send(vendor_order, payment, transfer)


def _send(vendor_order: VendorOrder, payment: Payment, transfer: Transfer) -> Transfer:
    """Ask Stripe for the claimed transfer (key `transfer:<vendor_order_id>`), record it."""
    vendor_order_id = vendor_order.id
    vendor_order = db.session.get(VendorOrder, vendor_order_id)
    destination = vendor_order.vendor.stripe_account_id
    if not destination:
        raise TransferNotReady("The vendor has no connected Stripe account yet.")
    params = {
        "amount_cents": transfer.amount_cents,
        "currency": transfer.currency,
        "destination": destination,
        "source_transaction": payment.charge_id,
        "transfer_group": f"order:{vendor_order.order_id}",
        "metadata": {
            "vendor_order_id": str(vendor_order.id),
            "order_id": str(vendor_order.order_id),
            # the checkout's request id: stable, so a retry asks with the same parameters
            **({"request_id": rid} if (rid := vendor_order.order.request_id) else {}),
        },
    }
    transfer_id = transfer.id
    key = f"transfer:{vendor_order_id}"
    if transfer.attempt > 1:  # an admin's retry: Stripe would replay the refusal
        key = f"{key}:{transfer.attempt}"
    # a retry looks first: an earlier attempt's answer may have been lost
    asked_long_ago = transfer.attempt > 1 or utcnow() - transfer.created_at > ANSWER_LOST_AFTER
    db.session.rollback()
    sent = _made_already(vendor_order_id, params["transfer_group"]) if asked_long_ago else None
    if sent is None:
        try:
            sent = gateway.create_transfer(key=key, **params)
        except gateway.PaymentProviderRejected as refusal:
            sent = _made_already(vendor_order_id, params["transfer_group"])
            if sent is None:
                _transfer_refused(transfer_id, refusal)
                return db.session.get(Transfer, transfer_id)
    with transaction():
        claimed = move_transfer(
            transfer_id,
            TransferStatus.SENDING,
            TransferStatus.SENT,
            stripe_transfer_id=sent["id"],
            sent_at=utcnow(),
        )
        transfer = db.session.get(Transfer, transfer_id)
        if claimed:
            db.session.refresh(transfer)
            ledger.record_transfer(transfer, vendor_order.order_id)
            for refund_id in _reversals_waiting(vendor_order.id):
                outbox.add("marketplace.settlement.jobs.execute_refund", refund_id)
    return transfer


def _transfer_refused(transfer_id: int, refusal: gateway.PaymentProviderRejected) -> None:
    """Nothing was sent: the transfer is `refused` (not retried by itself), what it held back
    for the vendor's debts is owed again, refunds made meanwhile take the vendor's share from
    a later transfer instead of reversing this one, and the admins are told."""
    with transaction():
        transfer = db.session.get(Transfer, transfer_id)
        vendor_order = db.session.get(VendorOrder, transfer.vendor_order_id)
        fulfilment.locked_order(vendor_order.order_id)
        if not move_transfer(
            transfer_id,
            TransferStatus.SENDING,
            TransferStatus.REFUSED,
            failure_reason=refusal.message[:2000],
        ):
            return
        db.session.refresh(transfer)
        receivables.give_back(transfer.vendor_id, transfer.netted_cents)
        transfer.netted_cents = 0
        db.session.execute(
            update(Refund)
            .where(
                Refund.vendor_order_id == vendor_order.id,
                ~refund_reversed(),
                Refund.transfer_reversal_cents > 0,
            )
            .values(transfer_reversal_cents=0)
        )
        outbox.add("marketplace.notifications.jobs.transfer_refused", transfer_id)


def retry_refused_transfer(transfer_id: int) -> Transfer:
    """An admin tries a refused transfer again (after the vendor fixed its account, say).

    :raises TransferNotRefused:
    """
    with transaction():
        # a new attempt, a new key: under the old one Stripe replays its refusal for 24 h
        if not move_transfer(
            transfer_id,
            TransferStatus.REFUSED,
            TransferStatus.PENDING,
            failure_reason=None,
            attempt=Transfer.attempt + 1,
        ):
            raise TransferNotRefused()
        transfer = db.session.get(Transfer, transfer_id)
        audit.record(
            "transfer.retry",
            "transfer",
            transfer_id,
            {"status": TransferStatus.REFUSED.value},
            {"status": TransferStatus.PENDING.value},
        )
        outbox.add("marketplace.settlement.jobs.transfer_vendor_order", transfer.vendor_order_id)
    return db.session.get(Transfer, transfer_id)


class TransferNotRefused(Conflict):
    code, message = "transfer_not_refused", "Only a transfer Stripe refused can be tried again."


def _made_already(vendor_order_id: int, transfer_group: str) -> dict[str, Any] | None:
    """The transfer Stripe made for this part although we never heard back, if any."""
    for made in gateway.list_all("transfers", transfer_group=transfer_group):
        if (made.get("metadata") or {}).get("vendor_order_id") == str(vendor_order_id):
            return made
    return None


def _reversals_waiting(vendor_order_id: int) -> list[int]:
    """Refunds booked while the transfer was being sent: their reversal can go now."""
    return list(
        db.session.scalars(
            select(Refund.id).where(
                Refund.vendor_order_id == vendor_order_id,
                Refund.status != RefundStatus.FAILED,
                Refund.transfer_reversal_cents > 0,
                ~refund_reversed(),
            )
        )
    )


def _claim_transfer(vendor_order: VendorOrder) -> Transfer | None:
    """Fix the amount and mark the transfer `sending`, under the order's lock (refunds take it
    too): a refund made before this lowers the amount, one made after reverses it. While a
    refund waits for Stripe's answer the amount is not known yet: None, nothing claimed."""
    fulfilment.locked_order(vendor_order.order_id)
    transfer = db.session.scalar(
        select(Transfer).where(Transfer.vendor_order_id == vendor_order.id).with_for_update()
    )
    if transfer is not None and transfer.status is not TransferStatus.PENDING:
        return transfer  # sending (a retry sends the same amount), sent or skipped
    if _refund_awaiting_stripe(vendor_order.id):
        return None
    amount = max(vendor_order.vendor_earnings_cents - vendor_share_refunded(vendor_order.id), 0)
    netted = receivables.net_against(vendor_order.vendor_id, amount)  # what it still owes
    amount -= netted
    status = TransferStatus.SENDING if amount > 0 else TransferStatus.SKIPPED
    if transfer is None:
        transfer = Transfer(
            vendor_order_id=vendor_order.id,
            vendor_id=vendor_order.vendor_id,
            currency=vendor_order.order.currency,
        )
        db.session.add(transfer)
    transfer.amount_cents, transfer.status = amount, status
    transfer.netted_cents = netted
    db.session.flush()
    return transfer


def _refund_awaiting_stripe(vendor_order_id: int) -> bool:
    return (
        db.session.scalar(
            select(Refund.id)
            .where(Refund.vendor_order_id == vendor_order_id, Refund.status == RefundStatus.PENDING)
            .limit(1)
        )
        is not None
    )


# --- the sweeper: due payouts re-found from the database --------------------------------


def unpaid_due_vendor_order_ids(now: datetime | None = None) -> list[int]:
    """Delivered parts past their hold (plus the grace) whose transfer was never started: no
    Transfer row, or one still `pending`. The database is the source of truth, not Redis."""
    now = now or utcnow()
    hold = timedelta(seconds=current_app.config["PAYOUT_HOLD_SECONDS"])
    started = exists().where(
        Transfer.vendor_order_id == VendorOrder.id, Transfer.status != TransferStatus.PENDING
    )
    suspended = exists().where(
        Vendor.id == VendorOrder.vendor_id, Vendor.status == VendorStatus.SUSPENDED
    )
    disputed = exists().where(
        Dispute.order_id == VendorOrder.order_id, Dispute.status == DisputeStatus.OPEN
    )
    return list(
        db.session.scalars(
            select(VendorOrder.id)
            .where(
                VendorOrder.status.in_(PAYABLE),
                VendorOrder.delivered_at.is_not(None),
                VendorOrder.delivered_at <= now - hold - SWEEP_GRACE,
                ~started,
                # not payable now: they are found again once reinstated or decided
                ~suspended,
                ~disputed,
            )
            .order_by(VendorOrder.delivered_at, VendorOrder.id)
        )
    )


def _in_outbox() -> set[int]:
    """Parts whose transfer job waits in the outbox (pending) or is a dead letter for an
    admin: the sweeper adds no second row for them."""
    rows = db.session.scalars(
        select(OutboxMessage.args).where(
            OutboxMessage.job == TRANSFER_JOB,
            OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.DEAD]),
        )
    )
    return {int(args[0]) for args in rows if args}


def sweep_due_transfers(now: datetime | None = None) -> int:
    """Periodic: pay delivered parts past their hold that no transfer was started for.

    With `PAYOUT_HOLD_SECONDS` the transfer waits in RQ's scheduler, which a Redis flush or
    restart (and every restart of the embedded mode) forgets. Each part found is handed to the
    outbox as the usual transfer job, so it runs under a lease with capped attempts and, if it
    keeps failing, becomes a dead letter the admin sees. The parts are locked (id order) before
    the outbox is looked at, so sweeps running at once hand each part over once. Returns how
    many were handed over.
    """
    # Parts waiting in the outbox (or dead there) are left out before the batch is cut, so
    # dead letters cannot fill it; the check is repeated under the lock.
    waiting = _in_outbox()
    candidates = [i for i in unpaid_due_vendor_order_ids(now) if i not in waiting][:SWEEP_BATCH]
    db.session.rollback()
    if not candidates:
        return 0
    with transaction():
        db.session.execute(
            select(VendorOrder.id)
            .where(VendorOrder.id.in_(candidates))
            .order_by(VendorOrder.id)
            .with_for_update()
        ).all()
        busy = _in_outbox()
        due = [vendor_order_id for vendor_order_id in candidates if vendor_order_id not in busy]
        for vendor_order_id in due:
            outbox.add(TRANSFER_JOB, vendor_order_id)
    if due:
        log.info("payout sweeper handed over %s transfers: %s", len(due), due)
    return len(due)
