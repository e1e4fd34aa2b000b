"""RQ jobs for payouts: they take ids and call one service."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, select

from marketplace.db import db, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from marketplace.orders.models import VendorOrder
from marketplace.payouts import refunds, transfers
from marketplace.payouts.models import Transfer, TransferStatus

log = logging.getLogger(__name__)

TRANSFER_JOB = "marketplace.payouts.jobs.transfer_vendor_order"
# The sweeper leaves a part this long past its hold to the job scheduled for it, so the two do
# not ask Stripe at the same moment.
SWEEP_GRACE = timedelta(minutes=5)
SWEEP_BATCH = 500


def transfer_vendor_order(vendor_order_id: int) -> None:
    transfers.transfer_vendor_order(vendor_order_id)


def execute_refund(refund_id: int) -> None:
    refunds.execute_refund(refund_id)


def unpaid_due_vendor_order_ids(now: datetime | None = None) -> list[int]:
    """Delivered parts past their hold (plus the grace) whose transfer was never started: no
    Transfer row, or one still `pending`. The database is the source of truth, not Redis."""
    now = now or utcnow()
    hold = timedelta(seconds=current_app.config["PAYOUT_HOLD_SECONDS"])
    started = exists().where(
        Transfer.vendor_order_id == VendorOrder.id, Transfer.status != TransferStatus.PENDING
    )
    return list(
        db.session.scalars(
            select(VendorOrder.id)
            .where(
                VendorOrder.status.in_(transfers.PAYABLE),
                VendorOrder.delivered_at.is_not(None),
                VendorOrder.delivered_at <= now - hold - SWEEP_GRACE,
                ~started,
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
