"""The transactional outbox: side effects recorded with the state change, run after commit.

`outbox.add("marketplace.search.jobs.index_product", product_id)` inside a `transaction()`
writes a row in that transaction; after commit the row is handed to RQ. If Redis is down at
that moment the row simply stays undispatched and `redispatch_stale` (a periodic job) hands it
over later, so an outage delays side effects but loses none. A row is completed at most once:
`run_message` skips rows already completed, and handlers are idempotent themselves.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import UTCDateTime, db, on_commit, transaction, utcnow

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=1)
# Completed rows are only history once their job is done; failed or pending rows are kept.
COMPLETED_RETENTION = timedelta(days=7)


class OutboxMessage(db.Model):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(200))
    args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


def add(job: str, *args: Any) -> OutboxMessage:
    """Record `job(*args)` in the current transaction; it is dispatched after commit."""
    message = OutboxMessage(job=job, args=list(args))
    db.session.add(message)
    db.session.flush()
    on_commit(dispatch, [message.id])
    return message


def dispatch(message_ids: list[int]) -> None:
    """Hand rows to RQ (or run them inline in synchronous mode); never raises on Redis errors."""
    from flask import current_app

    from marketplace import jobs

    for message_id in message_ids:
        if current_app.config["JOBS_SYNCHRONOUS"]:
            run_message(message_id)
            continue
        try:
            jobs.get_queue().enqueue(
                "marketplace.jobs.outbox.run_message",
                message_id,
                job_id=f"outbox-{message_id}",
                retry=jobs.default_retry(),
            )
        except Exception:  # Redis down: the periodic redispatch will pick it up
            log.warning("outbox %s not dispatched; will retry", message_id, exc_info=True)
            continue
        with transaction():
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.dispatched_at.is_(None))
                .values(dispatched_at=utcnow())
            )


def run_message(message_id: int) -> None:
    """The RQ job behind every outbox row: run the handler once, then mark the row done."""
    from marketplace import jobs

    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.completed_at is not None:
        return
    job, args = message.job, list(message.args)
    db.session.rollback()
    try:
        jobs.resolve(job)(*args)
    except Exception as error:
        db.session.rollback()
        with transaction():
            failed = db.session.get(OutboxMessage, message_id)
            failed.attempts += 1
            failed.last_error = repr(error)[:2000]
        raise
    with transaction():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.completed_at.is_(None))
            .values(completed_at=utcnow(), attempts=OutboxMessage.attempts + 1)
        )


def redispatch_stale(now: datetime | None = None) -> int:
    """Periodic job: dispatch rows never handed to RQ, or handed over but never completed."""
    cutoff = (now or utcnow()) - STALE_AFTER
    ids = db.session.scalars(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.completed_at.is_(None),
            OutboxMessage.created_at <= cutoff,
            (OutboxMessage.dispatched_at.is_(None)) | (OutboxMessage.dispatched_at <= cutoff),
        )
        .order_by(OutboxMessage.id)
        .limit(1000)
    ).all()
    db.session.rollback()
    if ids:
        with transaction():
            db.session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(dispatched_at=None)
            )
        dispatch(list(ids))
    return len(ids)


def prune_completed(now: datetime | None = None) -> int:
    """Periodic job (daily): delete rows completed longer ago than the retention."""
    cutoff = (now or utcnow()) - COMPLETED_RETENTION
    with transaction():
        result = db.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.completed_at.is_not(None), OutboxMessage.completed_at < cutoff
            )
        )
    return result.rowcount
