"""The transactional outbox: handlers run after commit, survive a Redis outage, run once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from rq import Queue
from sqlalchemy import func, select, update

from marketplace import jobs
from marketplace.catalog.models import Brand
from marketplace.db import db, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus

HANDLER = "tests.integration.test_outbox.handler"
FAILING = "tests.integration.test_outbox.failing_handler"
LATER = outbox.STALE_AFTER + timedelta(minutes=1)

calls: list[tuple[object, ...]] = []
failures_left: list[int] = [0]


def handler(*args: object) -> None:
    """Records each call, with how many outbox rows it can see committed."""
    with db.engine.connect() as connection:
        committed = connection.execute(select(func.count()).select_from(OutboxMessage)).scalar()
    calls.append((*args, committed))


def failing_handler(*args: object) -> None:
    if failures_left[0] > 0:
        failures_left[0] -= 1
        raise RuntimeError("handler failed")
    calls.append(args)


@pytest.fixture(autouse=True)
def _reset_calls() -> Iterator[None]:
    calls.clear()
    failures_left[0] = 0
    yield
    calls.clear()


def _row(message_id: int) -> OutboxMessage:
    db.session.rollback()
    row = db.session.get(OutboxMessage, message_id)
    assert row is not None
    return row


def _add(*args: object, job: str = HANDLER) -> int:
    with transaction():
        message = outbox.add(job, *args)
        assert calls == []  # nothing runs before the commit
    return message.id


@pytest.fixture
def redis_down(app, monkeypatch):
    """Every enqueue fails as if Redis were unreachable."""
    app.config["JOBS_SYNCHRONOUS"] = False

    def unreachable(name: str = "default") -> Queue:
        raise redis.exceptions.ConnectionError("Redis is down")

    monkeypatch.setattr(jobs, "get_queue", unreachable)
    return monkeypatch


def test_synchronous_mode_runs_the_handler_after_commit(app):
    message_id = _add(7, "x")
    assert calls == [(7, "x", 1)]  # the row was committed when the handler ran
    row = _row(message_id)
    assert row.completed_at is not None and row.attempts == 1
    assert row.dispatched_at is None  # synchronous mode never hands it to RQ


def test_rolled_back_transaction_leaves_no_row_and_runs_nothing(app):
    with pytest.raises(RuntimeError), transaction():
        outbox.add(HANDLER, 1)
        raise RuntimeError
    assert calls == []
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_row_is_written_with_the_state_change(app):
    with pytest.raises(RuntimeError), transaction():
        db.session.add(Brand(name="B", key="b"))
        outbox.add(HANDLER, 1)
        raise RuntimeError
    with transaction():
        db.session.add(Brand(name="B", key="b"))
        outbox.add(HANDLER, 2)
    assert [c[0] for c in calls] == [2]


def test_asynchronous_dispatch_hands_the_row_to_rq(app):
    app.config["JOBS_SYNCHRONOUS"] = False
    message_id = _add(3)
    assert calls == []
    assert _row(message_id).dispatched_at is not None
    queue = jobs.get_queue()
    job = queue.fetch_job(f"outbox-{message_id}")
    assert job is not None and job.args == (message_id,)
    # What the worker would do:
    outbox.run_message(message_id)
    assert calls == [(3, 1)]
    assert _row(message_id).completed_at is not None


def test_redis_outage_delays_but_loses_nothing(app, redis_down):
    message_id = _add("order", 42)
    assert calls == []
    row = _row(message_id)
    assert row.dispatched_at is None and row.completed_at is None

    # Not stale yet: the periodic job leaves young rows alone.
    assert outbox.redispatch_stale() == 0
    # Still down at the next round: the row stays undispatched.
    assert outbox.redispatch_stale(now=utcnow() + LATER) == 1
    assert _row(message_id).dispatched_at is None

    redis_down.undo()  # Redis is back
    assert outbox.redispatch_stale(now=utcnow() + LATER) == 1
    row = _row(message_id)
    assert row.dispatched_at is not None and row.completed_at is None
    job = jobs.get_queue().fetch_job(f"outbox-{message_id}")
    assert job is not None and job.func_name == "marketplace.jobs.outbox.run_message"
    outbox.run_message(message_id)
    assert calls == [("order", 42, 1)]
    assert _row(message_id).completed_at is not None
    # Completed rows are never redispatched.
    assert outbox.redispatch_stale(now=utcnow() + LATER) == 0


def test_redispatch_in_synchronous_mode_runs_the_handler(app, redis_down):
    message_id = _add(9)
    redis_down.undo()
    app.config["JOBS_SYNCHRONOUS"] = True
    assert outbox.redispatch_stale(now=utcnow() + LATER) == 1
    assert calls == [(9, 1)]
    assert _row(message_id).completed_at is not None


def test_dispatched_but_never_completed_rows_are_sent_again(app):
    app.config["JOBS_SYNCHRONOUS"] = False
    message_id = _add(5)
    first = _row(message_id).dispatched_at
    assert first is not None
    jobs.get_queue().empty()  # the job was lost (Redis restarted without persistence)
    assert outbox.redispatch_stale(now=utcnow() + LATER) == 1
    assert jobs.get_queue().fetch_job(f"outbox-{message_id}") is not None
    assert _row(message_id).dispatched_at >= first


def test_run_message_never_runs_a_completed_row_twice(app):
    message_id = _add(1)
    assert len(calls) == 1
    outbox.run_message(message_id)
    outbox.run_message(message_id)
    outbox.dispatch([message_id])
    assert len(calls) == 1
    assert _row(message_id).attempts == 1


def test_run_message_of_a_missing_row_does_nothing(app):
    outbox.run_message(123456)
    assert calls == []


def test_failed_handler_is_recorded_and_retried(app):
    app.config["JOBS_SYNCHRONOUS"] = False
    failures_left[0] = 1
    message_id = _add("x", job=FAILING)
    with pytest.raises(RuntimeError):
        outbox.run_message(message_id)
    row = _row(message_id)
    assert row.completed_at is None and row.attempts == 1
    assert "handler failed" in row.last_error
    outbox.run_message(message_id)  # RQ's retry
    row = _row(message_id)
    assert row.completed_at is not None and row.attempts == 2
    assert calls == [("x",)]


def test_prune_deletes_only_rows_completed_before_the_retention(app):
    failures_left[0] = 10

    def add(*args: object, job: str = HANDLER) -> int:
        with transaction():
            message = outbox.add(job, *args)
        return message.id  # inserted by the commit

    done = add("done")
    with pytest.raises(RuntimeError):
        add(job=FAILING)  # synchronous mode: the handler's error surfaces at commit
    failed = db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.job == FAILING))
    app.config["JOBS_SYNCHRONOUS"] = False
    pending = add("pending")  # dispatched to RQ, never run
    assert _row(done).completed_at is not None and _row(failed).completed_at is None

    assert outbox.prune_completed() == 0  # completed just now: kept
    week_later = utcnow() + outbox.COMPLETED_RETENTION + timedelta(minutes=1)
    assert outbox.prune_completed(now=week_later) == 1
    db.session.rollback()
    assert db.session.get(OutboxMessage, done) is None
    assert {_row(failed).id, _row(pending).id} == {failed, pending}
    outbox.run_message(done)  # a late duplicate of the deleted row's job does nothing
    assert calls == [("done", 1)]


# --- lease, attempts, dead letters --------------------------------------------------------


def _queued(app) -> int:
    """A row committed and handed to RQ (the in-process stand-in), not run yet."""
    app.config["JOBS_SYNCHRONOUS"] = False
    return _add(job=FAILING)


def _fail(message_id: int) -> None:
    with pytest.raises(RuntimeError, match="handler failed"):
        outbox.run_message(message_id)


def test_a_row_whose_lease_is_held_is_not_run(app):
    message_id = _queued(app)
    assert outbox.take_lease(message_id)  # another worker runs it right now
    assert not outbox.take_lease(message_id)
    outbox.run_message(message_id)  # a duplicate of its job: nothing happens
    assert calls == []
    row = _row(message_id)
    assert row.status is OutboxStatus.PENDING and row.attempts == 1
    # The holder died; once its lease expired a runner takes it again.
    later = utcnow() + timedelta(seconds=app.config["OUTBOX_LEASE_SECONDS"] + 1)
    assert outbox.take_lease(message_id, now=later)
    assert _row(message_id).attempts == 2


def test_a_failed_run_frees_the_lease_and_backs_off(app):
    message_id = _queued(app)
    failures_left[0] = 2
    _fail(message_id)
    row = _row(message_id)
    assert row.lease_until is None and row.attempts == 1
    assert row.next_attempt_at - utcnow() <= outbox.BACKOFF_BASE
    assert row.next_attempt_at - utcnow() > outbox.BACKOFF_BASE - timedelta(seconds=5)
    _fail(message_id)  # RQ's own quick retry may still run it: the lease is free
    row = _row(message_id)
    assert row.attempts == 2
    delay = row.next_attempt_at - utcnow()
    assert 2 * outbox.BACKOFF_BASE - timedelta(seconds=5) < delay <= 2 * outbox.BACKOFF_BASE
    # The redispatch waits for the backoff, then hands it over.
    assert outbox.redispatch_stale(now=row.next_attempt_at - timedelta(seconds=1)) == 0
    assert outbox.redispatch_stale(now=row.next_attempt_at + timedelta(seconds=1)) == 1
    outbox.run_message(message_id)
    assert calls == [()]
    assert _row(message_id).status is OutboxStatus.COMPLETED


def test_backoff_grows_exponentially_up_to_its_cap():
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert outbox.backoff(8) == outbox.BACKOFF_CAP
    assert outbox.backoff(1000) == outbox.BACKOFF_CAP


def test_attempts_are_capped_and_the_row_becomes_a_dead_letter(app):
    app.config["OUTBOX_MAX_ATTEMPTS"] = 3
    failures_left[0] = 100
    message_id = _queued(app)
    for _ in range(3):
        _fail(message_id)
    row = _row(message_id)
    assert row.status is OutboxStatus.DEAD and row.attempts == 3
    assert row.dead_at is not None and "handler failed" in row.last_error
    assert row.completed_at is None and row.next_attempt_at is None and row.lease_until is None
    assert failures_left[0] == 97

    outbox.run_message(message_id)  # a late job: a dead row is not run
    assert outbox.redispatch_stale(now=utcnow() + timedelta(days=1)) == 0
    assert failures_left[0] == 97
    assert [m.id for m in outbox.dead_letters()[0]] == [message_id]


def test_a_lease_that_expired_on_the_last_attempt_makes_a_dead_letter(app):
    app.config["OUTBOX_MAX_ATTEMPTS"] = 2
    message_id = _queued(app)
    with transaction():  # the second runner took the lease and its worker was killed
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(attempts=2, lease_until=utcnow() + timedelta(minutes=5))
        )
    assert outbox.redispatch_stale(now=utcnow() + LATER) == 0  # the lease may still be used
    assert _row(message_id).status is OutboxStatus.PENDING
    assert outbox.redispatch_stale(now=utcnow() + timedelta(minutes=10)) == 0
    row = _row(message_id)
    assert row.status is OutboxStatus.DEAD and row.last_error
    assert not outbox.take_lease(message_id, now=utcnow() + timedelta(hours=1))


def test_retrying_a_dead_letter_runs_it_again_with_fresh_attempts(app):
    app.config["OUTBOX_MAX_ATTEMPTS"] = 2
    failures_left[0] = 2
    message_id = _queued(app)
    _fail(message_id)
    _fail(message_id)
    assert _row(message_id).status is OutboxStatus.DEAD
    queue = jobs.get_queue()
    queue.empty()

    retried = outbox.retry_dead(message_id)
    assert retried.status is OutboxStatus.PENDING and retried.attempts == 0
    row = _row(message_id)
    assert row.dead_at is None and row.dispatched_at is not None
    assert queue.fetch_job(f"outbox-{message_id}") is not None  # handed to RQ after commit
    outbox.run_message(message_id)  # the cause was fixed: it succeeds
    assert calls == [()]
    row = _row(message_id)
    assert row.status is OutboxStatus.COMPLETED and row.attempts == 1
    assert outbox.dead_letters() == ([], 0)


def test_only_a_dead_letter_can_be_retried(app):
    message_id = _queued(app)
    with pytest.raises(outbox.MessageNotDead):
        outbox.retry_dead(message_id)
    with pytest.raises(outbox.MessageNotFound):
        outbox.retry_dead(message_id + 1000)
    assert _row(message_id).attempts == 0


def test_rows_that_keep_failing_do_not_starve_a_newer_one(app, monkeypatch):
    """More poisoned rows than one redispatch takes, all due again, and a newer row whose job
    was lost (Redis flushed): the newer row is handed over by the very next redispatch."""
    monkeypatch.setattr(outbox, "REDISPATCH_BATCH", 20)
    app.config["JOBS_SYNCHRONOUS"] = False
    now = utcnow()
    with transaction():
        db.session.add_all(
            OutboxMessage(
                job=FAILING,
                args=[n],
                created_at=now - timedelta(hours=2),
                dispatched_at=now - timedelta(hours=1),
                attempts=3,
                last_error="RuntimeError('handler failed')",
                next_attempt_at=now - timedelta(minutes=5),
            )
            for n in range(outbox.REDISPATCH_BATCH + 5)
        )
    with transaction():
        newer = outbox.add(HANDLER, "newer")
    jobs.get_queue().empty()  # its job is lost
    with transaction():  # ... a couple of minutes ago
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == newer.id)
            .values(created_at=now - LATER, dispatched_at=now - LATER)
        )

    assert outbox.redispatch_stale() == outbox.REDISPATCH_BATCH
    assert jobs.get_queue().fetch_job(f"outbox-{newer.id}") is not None
    outbox.run_message(newer.id)
    assert calls == [("newer", outbox.REDISPATCH_BATCH + 6)]
    # The poisoned rows all get their turn too: a row just handed over is not picked again.
    assert outbox.redispatch_stale() == 6  # 25 poisoned rows, 19 of them went with the newer
    assert outbox.redispatch_stale() == 0
