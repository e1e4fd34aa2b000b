"""Stock held by an unpaid order comes back at the reservation's TTL: the scheduled job never
starts before it (RQ's scheduler keeps whole seconds), a job that runs early anyway schedules
itself again at the expiry instead of giving up until the next sweep, and when Redis forgot
the job (flushed, restarted, the embedded mode's in-process Redis) the sweeper finds the
order in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue

from marketplace import jobs
from marketplace.catalog.models import Variant
from marketplace.db import db
from marketplace.orders import jobs as order_jobs
from marketplace.orders import services
from marketplace.orders.models import Order
from tests.helpers import make_buyer, make_product, make_vendor

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "postal_code": "94000",
    "country": "US",
}
JOB = "marketplace.orders.jobs.expire_order"


@pytest.fixture
def queued(app):
    """Jobs go to the in-process Redis stand-in, where no worker runs: the test plays it."""
    app.config["JOBS_SYNCHRONOUS"] = False
    return jobs.get_queue()


def _order(api) -> tuple[int, int, datetime]:
    """An unpaid order holding 2 of a variant's 3; its id, the variant's, its expiry."""
    variant_id = make_product(make_vendor(), stock=3).variants[0].id
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 2})
    response = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": ADDRESS},
        headers={"Idempotency-Key": "expiry"},
    )
    assert response.status_code == 201, response.get_json()
    order_id = response.get_json()["order"]["id"]
    db.session.rollback()
    expires_at = db.session.get(Order, order_id).reservation_expires_at
    return order_id, variant_id, expires_at


def _reserved(variant_id: int) -> int:
    db.session.rollback()
    return db.session.get(Variant, variant_id).reserved


def _scheduled(queue: Queue, order_id: int) -> list[tuple[str, float]]:
    """The expiry jobs of this order waiting in RQ's scheduler: (job id, score)."""
    registry = queue.scheduled_job_registry
    found = []
    for job_id, score in queue.connection.zrange(registry.key, 0, -1, withscores=True):
        job = queue.fetch_job(job_id.decode())
        if job is not None and job.func_name == JOB and job.args == (order_id,):
            found.append((job.id, score))
    return found


def _when(score: float) -> datetime:
    return datetime.fromtimestamp(score, UTC)


def test_the_expiry_job_is_never_started_before_the_ttl(api, queued):
    order_id, _, expires_at = _order(api)
    if expires_at.microsecond == 0:  # a whole second already: nothing to round, try again
        order_id, _, expires_at = _order(api)
    ((job_id, score),) = _scheduled(queued, order_id)
    assert job_id == f"expire-order-{order_id}"
    # The scheduler starts a job once its score is at most the current whole second.
    assert _when(score) >= expires_at
    assert _when(score) - expires_at < timedelta(seconds=1)


def test_an_expiry_job_run_early_schedules_itself_at_the_expiry(api, queued):
    order_id, variant_id, expires_at = _order(api)
    assert _reserved(variant_id) == 2
    queued.connection.flushdb()  # only the job the early run schedules is left

    early = expires_at - timedelta(milliseconds=400)
    assert services.expire_order_when_due(order_id, now=early) is False
    assert _reserved(variant_id) == 2  # not yet
    ((_, score),) = _scheduled(queued, order_id)
    assert expires_at <= _when(score) < expires_at + timedelta(seconds=1)

    # The rescheduled job, run when the scheduler starts it: the stock is back.
    assert services.expire_order_when_due(order_id, now=_when(score)) is True
    assert _reserved(variant_id) == 0
    db.session.rollback()
    assert db.session.get(Order, order_id).status.value == "cancelled"
    queued.connection.flushdb()
    assert services.expire_order_when_due(order_id, now=_when(score)) is False
    assert _scheduled(queued, order_id) == []  # done: nothing scheduled again


def test_the_job_itself_reschedules_when_run_before_the_expiry(api, queued):
    """The RQ entry point (real clock): run right after checkout, well before the TTL."""
    order_id, variant_id, expires_at = _order(api)
    queued.connection.flushdb()
    assert order_jobs.expire_order(order_id) is False
    assert _reserved(variant_id) == 2
    ((_, score),) = _scheduled(queued, order_id)
    assert _when(score) >= expires_at


def test_a_flushed_redis_loses_no_expiry(api, queued):
    order_id, variant_id, expires_at = _order(api)
    assert _scheduled(queued, order_id)
    queued.connection.flushdb()  # Redis restarted without persistence

    assert order_jobs.sweep_expired_orders(now=expires_at - timedelta(seconds=1)) == 0
    assert _reserved(variant_id) == 2
    after = expires_at + timedelta(seconds=1)
    assert order_jobs.sweep_expired_orders(now=after) == 1
    assert _reserved(variant_id) == 0
    assert order_jobs.sweep_expired_orders(now=after) == 0
    db.session.rollback()
    order = db.session.get(Order, order_id)
    assert order.status.value == "cancelled" and order.cancel_reason == "reservation_expired"


def test_one_failing_order_does_not_stop_the_sweep(api, queued, monkeypatch):
    first, first_variant, expires_at = _order(api)
    second, second_variant, _ = _order(api)
    real = services.expire_order

    def expire(order_id: int, now: datetime | None = None) -> bool:
        if order_id == first:
            raise RuntimeError("deadlock detected")
        return real(order_id, now=now)

    monkeypatch.setattr(services, "expire_order", expire)
    later = expires_at + timedelta(hours=1)
    assert order_jobs.sweep_expired_orders(now=later) == 1
    assert (_reserved(first_variant), _reserved(second_variant)) == (2, 0)
