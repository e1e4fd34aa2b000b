"""The transactional outbox: side effects recorded with the state change, run after commit.

`outbox.add("marketplace.search.jobs.index_product", product_id)` inside a `transaction()`
writes a row in that transaction; after commit the row is handed to RQ. If Redis is down at
that moment the row simply stays undispatched and `redispatch_stale` (a periodic job) hands it
over later, so an outage delays side effects but loses none.

A row runs under a lease: `run_message` first takes it with one guarded UPDATE (`lease_until`
in the past or unset, row still pending, attempts left), so however many copies of its RQ job
exist (a redispatch, RQ's own retry, a duplicated delivery) one runner at a time runs it; a run
that cannot take the lease does nothing. A failure frees the lease and sets `next_attempt_at`
(exponential backoff with a cap); once `OUTBOX_MAX_ATTEMPTS` runs failed the row is `dead`,
keeping its last error, until an admin retries it (`retry_dead`). Handlers stay idempotent
themselves: a lease that outlived a killed worker is taken again.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import (
    JSON,
    Enum,
    Integer,
    String,
    Text,
    delete,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.audit import services as audit
from marketplace.db import UTCDateTime, db, on_commit, on_commit_collect, transaction, utcnow
from marketplace.errors import Conflict, NotFound
from marketplace.observability import current_request_id, job_context

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=1)
# Completed rows are only history once their job is done; failed or pending rows are kept.
COMPLETED_RETENTION = timedelta(days=7)
# How many rows one redispatch hands over; the rest wait for the next round.
REDISPATCH_BATCH = 1000
# Backoff before the redispatch retries a failed row: BACKOFF_BASE * 2**(attempts-1), capped.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
# RQ stops a job after this long; the lease (OUTBOX_LEASE_SECONDS) must outlast it, so a run
# still going is never leased to a second runner.
JOB_TIMEOUT_SECONDS = 180


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    DEAD = "dead"


class OutboxMessage(db.Model):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(200))
    args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[OutboxStatus] = mapped_column(
        Enum(
            OutboxStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=OutboxStatus.PENDING,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Held by the runner until then; a run that finds it held does nothing.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # After a failure, the redispatch leaves the row alone until then.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The request that wrote the row: its job runs under that id (marketplace.observability).
    request_id: Mapped[str | None] = mapped_column(String(64))


class MessageNotFound(NotFound):
    code, message = "outbox_message_not_found", "No such outbox message."


class MessageNotDead(Conflict):
    code, message = "outbox_message_not_dead", "Only a dead letter can be retried."


def lease_duration() -> timedelta:
    return timedelta(seconds=current_app.config["OUTBOX_LEASE_SECONDS"])


def max_attempts() -> int:
    return current_app.config["OUTBOX_MAX_ATTEMPTS"]


def backoff(attempts: int) -> timedelta:
    """How long the redispatch waits after the `attempts`-th failed run."""
    exponent = min(max(attempts - 1, 0), 30)
    return min(BACKOFF_BASE * 2**exponent, BACKOFF_CAP)


def add(job: str, *args: Any) -> OutboxMessage:
    """Record `job(*args)` in the current transaction; it is dispatched after commit.

    The row is inserted by the commit (with the transaction's other rows), so its id is known
    once the transaction committed.
    """
    message = OutboxMessage(job=job, args=list(args), request_id=current_request_id())
    db.session.add(message)
    # No flush: the commit inserts every row the transaction added in one batched statement,
    # and one call dispatches them all.
    on_commit_collect(_dispatch_added, message)
    return message


def _dispatch_added(messages: list[OutboxMessage]) -> None:
    # The committed rows' ids, without reloading the expired objects.
    dispatch([inspect(message).identity[0] for message in messages])


def dispatch(message_ids: list[int]) -> None:
    """Hand rows to RQ (or run them inline in synchronous mode); never raises on Redis errors."""
    from marketplace import jobs

    if current_app.config["JOBS_SYNCHRONOUS"]:
        for message_id in message_ids:
            run_message(message_id)
        return
    enqueued = []
    for message_id in message_ids:
        try:
            jobs.get_queue().enqueue(
                "marketplace.jobs.outbox.run_message",
                message_id,
                job_id=f"outbox-{message_id}",
                retry=jobs.default_retry(),
                job_timeout=JOB_TIMEOUT_SECONDS,
            )
        except Exception:  # Redis down: the periodic redispatch will pick it up
            log.warning("outbox %s not dispatched; will retry", message_id, exc_info=True)
            continue
        enqueued.append(message_id)
    if enqueued:
        with transaction():
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(enqueued), OutboxMessage.dispatched_at.is_(None))
                .values(dispatched_at=utcnow())
            )


def take_lease(message_id: int, now: datetime | None = None) -> bool:
    """Lease a pending row to this runner (and count the attempt); False if someone holds it,
    it is done or dead, or it has no attempts left. One guarded UPDATE, committed at once."""
    now = now or utcnow()
    with transaction():
        taken = db.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == OutboxStatus.PENDING,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
                OutboxMessage.attempts < max_attempts(),
            )
            .values(lease_until=now + lease_duration(), attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        )
    return taken.rowcount == 1


def run_message(message_id: int) -> None:
    """The RQ job behind every outbox row: lease it, run the handler, then mark the row done.

    A failure is recorded (last error, backoff, dead after the last attempt) and re-raised, so
    RQ logs it and may retry; a run that finds the row leased, done or dead does nothing.
    """
    from marketplace import jobs

    if not take_lease(message_id):
        return
    message = db.session.get(OutboxMessage, message_id)
    job, args, request_id = message.job, list(message.args), message.request_id
    db.session.rollback()
    try:
        with job_context(job, request_id):
            jobs.resolve(job)(*args)
    except Exception as error:
        db.session.rollback()
        _record_failure(message_id, error)
        raise
    with transaction():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.COMPLETED, completed_at=utcnow(), lease_until=None)
            .execution_options(synchronize_session=False)
        )


def _record_failure(message_id: int, error: BaseException) -> None:
    now = utcnow()
    with transaction():
        failed = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()
        )
        if failed is None or failed.status is not OutboxStatus.PENDING:
            return
        failed.last_error = repr(error)[:2000]
        failed.lease_until = None
        if failed.attempts >= max_attempts():
            failed.status, failed.dead_at, failed.next_attempt_at = OutboxStatus.DEAD, now, None
            log.error(
                "outbox %s (%s) is a dead letter after %s attempts: %s",
                message_id,
                failed.job,
                failed.attempts,
                failed.last_error,
            )
        else:
            failed.next_attempt_at = now + backoff(failed.attempts)


def redispatch_stale(now: datetime | None = None) -> int:
    """Periodic job: dispatch pending rows nobody runs (never handed to RQ, or handed over a
    while ago and lost) whose lease expired and whose backoff has passed.

    Rows tried least often go first, then the longest due, so a batch of rows that fail for
    good cannot starve newer ones. A row whose last lease expired with no attempts left (its
    runner died) becomes a dead letter here.
    """
    now = now or utcnow()
    cutoff = now - STALE_AFTER
    lease_free = or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now)
    pending = OutboxMessage.status == OutboxStatus.PENDING
    with transaction():
        db.session.execute(
            update(OutboxMessage)
            .where(pending, lease_free, OutboxMessage.attempts >= max_attempts())
            .values(
                status=OutboxStatus.DEAD,
                dead_at=now,
                lease_until=None,
                next_attempt_at=None,
                last_error=func.coalesce(
                    OutboxMessage.last_error, "lease expired on the last attempt"
                ),
            )
            .execution_options(synchronize_session=False)
        )
    due = func.coalesce(OutboxMessage.next_attempt_at, OutboxMessage.created_at)
    ids = db.session.scalars(
        select(OutboxMessage.id)
        .where(
            pending,
            lease_free,
            OutboxMessage.created_at <= cutoff,
            (OutboxMessage.dispatched_at.is_(None)) | (OutboxMessage.dispatched_at <= cutoff),
            (OutboxMessage.next_attempt_at.is_(None)) | (OutboxMessage.next_attempt_at <= now),
        )
        .order_by(OutboxMessage.attempts, due, OutboxMessage.id)
        .limit(REDISPATCH_BATCH)
    ).all()
    db.session.rollback()
    if ids:
        with transaction():
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(dispatched_at=None)
                .execution_options(synchronize_session=False)
            )
        dispatch(list(ids))
    return len(ids)


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_age_seconds: float
    dead: int


def backlog(now: datetime | None = None) -> Backlog:
    """Rows not run yet (and how long the oldest has waited), and dead letters (metrics)."""
    now = now or utcnow()
    pending, oldest = db.session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(
            OutboxMessage.status == OutboxStatus.PENDING
        )
    ).one()
    dead = db.session.scalar(select(func.count()).where(OutboxMessage.status == OutboxStatus.DEAD))
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return Backlog(pending=int(pending or 0), oldest_age_seconds=age, dead=int(dead or 0))


def dead_letters(page: int = 1, per_page: int = 50) -> tuple[list[OutboxMessage], int]:
    """Rows that used up their attempts, newest first, for the admin."""
    dead = OutboxMessage.status == OutboxStatus.DEAD
    total = db.session.scalar(select(func.count()).select_from(OutboxMessage).where(dead))
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(dead)
        .order_by(OutboxMessage.dead_at.desc(), OutboxMessage.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), int(total or 0)


def retry_dead(message_id: int) -> OutboxMessage:
    """An admin's retry of a dead letter: pending again with its attempts reset, dispatched
    after commit. The last error is kept until a run replaces it.

    :raises MessageNotFound, MessageNotDead:
    """
    with transaction():
        message = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()
        )
        if message is None:
            raise MessageNotFound()
        if message.status is not OutboxStatus.DEAD:
            raise MessageNotDead()
        audit.record(
            "outbox.retry",
            "outbox_message",
            message.id,
            {"status": message.status.value, "attempts": message.attempts},
            {"status": OutboxStatus.PENDING.value, "attempts": 0},
        )
        message.status = OutboxStatus.PENDING
        message.attempts = 0
        message.dead_at = message.next_attempt_at = message.lease_until = None
        message.dispatched_at = None
        db.session.flush()
        on_commit(dispatch, [message.id])
    return message


def prune_completed(now: datetime | None = None) -> int:
    """Periodic job (daily): delete rows completed longer ago than the retention."""
    cutoff = (now or utcnow()) - COMPLETED_RETENTION
    with transaction():
        result = db.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.status == OutboxStatus.COMPLETED, OutboxMessage.completed_at < cutoff
            )
        )
    return result.rowcount
