"""RQ queues, scheduling and workers.

Jobs are named by dotted path and take ids, so they can be enqueued from anywhere without
importing the job's module. `REDIS_URL` set → a real Redis; unset → an in-process Redis
stand-in (fakeredis) with a worker thread, for the embedded mode. `JOBS_SYNCHRONOUS` runs
jobs inline at enqueue time (tests).
"""

from __future__ import annotations

import importlib
import logging
import threading
from datetime import datetime
from typing import Any

import fakeredis
import redis
from flask import Flask, current_app
from rq import Queue, Retry, SimpleWorker
from rq.timeouts import TimerDeathPenalty

from marketplace.observability import current_request_id, job_context

log = logging.getLogger(__name__)

QUEUE_NAMES = ("default",)

# (job path, interval in seconds): enqueued by every worker's ticker, at most once per interval
# across all workers (a Redis SET NX key), so adding workers does not multiply them. The
# sweepers re-find due work (expiries, payouts past their hold) from the database, so what a
# Redis flush or restart forgot is only delayed.
PERIODIC_JOBS: list[tuple[str, int]] = [
    ("marketplace.jobs.outbox.redispatch_stale", 30),
    ("marketplace.orders.jobs.sweep_expired_orders", 30),
    ("marketplace.settlement.jobs.sweep_due_transfers", 60),
    ("marketplace.settlement.jobs.capture_expiring_authorizations", 3600),
    ("marketplace.settlement.jobs.retry_refused_voids", 3600),
    ("marketplace.jobs.outbox.prune_completed", 86400),
    ("marketplace.orders.jobs.prune_idempotency_records", 86400),
]


def init_app(app: Flask) -> None:
    url = app.config["REDIS_URL"]
    if url:
        connection = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    else:
        connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    app.extensions["redis"] = connection


def get_redis(app: Flask | None = None) -> redis.Redis:
    return (app or current_app).extensions["redis"]


def get_queue(name: str = "default") -> Queue:
    return Queue(name, connection=get_redis())


def resolve(path: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _meta() -> dict[str, Any]:
    """What a job carries from the request that queued it (its id, for the logs and Stripe)."""
    request_id = current_request_id()
    return {"request_id": request_id} if request_id else {}


def enqueue(path: str, *args: Any, job_id: str | None = None, **kwargs: Any) -> None:
    """Queue `path(*args)` now. Call it after commit (see `db.on_commit`)."""
    if current_app.config["JOBS_SYNCHRONOUS"]:
        with job_context(path, current_request_id()):
            resolve(path)(*args, **kwargs)
        return
    get_queue().enqueue(path, *args, job_id=job_id, meta=_meta(), **kwargs)


def enqueue_at(when: datetime, path: str, *args: Any, job_id: str | None = None) -> None:
    """Queue `path(*args)` to run at `when` (needs a worker running with the scheduler)."""
    if current_app.config["JOBS_SYNCHRONOUS"]:
        return  # synchronous mode runs nothing later; tests call the job themselves
    get_queue().enqueue_at(when, path, *args, job_id=job_id, meta=_meta())


def default_retry() -> Retry:
    return Retry(max=5, interval=[1, 5, 15, 60, 300])


def enqueue_due_periodic_jobs(app: Flask) -> None:
    connection = get_redis(app)
    queue = Queue("default", connection=connection)
    for path, interval in PERIODIC_JOBS:
        if connection.set(f"marketplace:periodic:{path}", "1", nx=True, ex=interval):
            queue.enqueue(path)


def start_ticker(app: Flask, stop: threading.Event | None = None) -> threading.Thread:
    """A daemon thread that enqueues the periodic jobs when they are due."""
    stop = stop or threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                enqueue_due_periodic_jobs(app)
            except Exception:  # Redis away: try again at the next tick
                log.warning("periodic jobs not enqueued", exc_info=True)
            stop.wait(5)

    thread = threading.Thread(target=run, name="periodic-ticker", daemon=True)
    thread.start()
    return thread


class InstrumentedWorker(SimpleWorker):
    """RQ's SimpleWorker, each job run under the request id it was queued with, timed, and
    counted when it fails (marketplace.observability, marketplace.metrics)."""

    def perform_job(self, job: Any, queue: Queue) -> bool:
        with job_context(job.func_name, (job.meta or {}).get("request_id")) as run:
            done = super().perform_job(job, queue)
            run.failed = not done
        return done


class ThreadWorker(InstrumentedWorker):
    """An RQ worker that can run in a thread of the web process (embedded mode)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


def start_embedded_worker(app: Flask) -> threading.Thread:
    """Run an RQ worker with scheduler in a daemon thread, inside the app context."""

    def run() -> None:
        with app.app_context():
            queues = [Queue(name, connection=get_redis(app)) for name in QUEUE_NAMES]
            worker = ThreadWorker(queues, connection=get_redis(app))
            worker.work(with_scheduler=True, logging_level="WARNING")

    thread = threading.Thread(target=run, name="rq-embedded-worker", daemon=True)
    thread.start()
    start_ticker(app)
    return thread


def run_worker(app: Flask, *, burst: bool = False) -> None:
    """The `flask worker` command: an RQ worker with scheduler, jobs in the app context."""
    with app.app_context():
        connection = get_redis(app)
        queues = [Queue(name, connection=connection) for name in QUEUE_NAMES]
        worker = InstrumentedWorker(queues, connection=connection)
        if not burst:
            start_ticker(app)
        worker.work(burst=burst, with_scheduler=True)
