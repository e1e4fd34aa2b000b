"""The outbox lease, proven with real processes on PostgreSQL: several workers handed the same
row at once (a redispatch racing the first delivery, RQ's retry, a duplicated job) run its
handler exactly once, and a row whose runner died is run again only once its lease expired."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import update

from marketplace.db import db, transaction, utcnow
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from tests.integration import concurrency_workers as workers

HANDLER = "tests.integration.concurrency_workers.record_outbox_run"
PROCESSES = 6


def _row(path: Path) -> int:
    """A pending row, committed but not dispatched (as if its RQ job were about to run)."""
    with transaction():
        message = OutboxMessage(job=HANDLER, args=[str(path)])
        db.session.add(message)
        db.session.flush()
        return message.id


def _race(config: dict, message_id: int) -> list[int]:
    return workers.run_concurrently(
        config, [(workers.run_outbox_message, {"message_id": message_id})] * PROCESSES
    )


def test_racing_runs_of_one_row_run_its_handler_once(
    pg_app: Flask, pg_config_dict: dict, tmp_path: Path
):
    runs = tmp_path / "runs.log"
    message_id = _row(runs)

    pids = _race(pg_config_dict, message_id)

    lines = runs.read_text().splitlines()
    assert len(lines) == 2, lines  # one start, one end: nobody else ran it, before or after
    (start, pid), (end, same) = (line.split() for line in lines)
    assert (start, end, pid) == ("start", "end", same)
    assert int(pid) in pids
    db.session.rollback()
    row = db.session.get(OutboxMessage, message_id)
    assert row.status is OutboxStatus.COMPLETED and row.completed_at is not None
    assert row.attempts == 1 and row.lease_until is None


def test_a_row_leased_by_a_dead_runner_is_run_once_after_its_lease_expired(
    pg_app: Flask, pg_config_dict: dict, tmp_path: Path
):
    runs = tmp_path / "runs.log"
    message_id = _row(runs)
    with transaction():  # a runner took the lease and died
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(attempts=1, lease_until=utcnow() + timedelta(minutes=5))
        )
    _race(pg_config_dict, message_id)
    assert not runs.exists()  # the lease still holds: nobody runs it

    with transaction():  # ... until it expires
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    _race(pg_config_dict, message_id)
    assert [line.split()[0] for line in runs.read_text().splitlines()] == ["start", "end"]
    db.session.rollback()
    row = db.session.get(OutboxMessage, message_id)
    assert row.status is OutboxStatus.COMPLETED and row.attempts == 2
