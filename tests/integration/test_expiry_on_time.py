"""Seen from outside, with a real Redis and a real `flask --app wsgi worker` (with its RQ
scheduler): stock held by an unpaid order comes back at the reservation's TTL, not when the
30-second sweeper next passes.

The checkout is timed so that its expiry falls late in a second (…:07.9): RQ's scheduler keeps
whole seconds, so a job scheduled at the expiry itself would start at …:07, find the order not
yet expired and give up, leaving the stock to the sweeper.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from marketplace import jobs
from marketplace.cart import services as carts
from marketplace.catalog.models import Variant
from marketplace.db import db, utcnow
from marketplace.orders import services as orders
from marketplace.orders.models import Order
from tests.helpers import make_buyer, make_product, make_vendor
from tests.integration.redis_server import (
    RedisServer,
    WorkerProcess,
    jobs_app,
    wait_for,
    worker_env,
)

ADDRESS = orders.Address(
    name="Bea Buyer", line1="1 Main St", city="Springfield", postal_code="94000", country="US"
)
TTL_SECONDS = 3


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def _late_in_a_second() -> None:
    """Sleep until the clock is 0.85 s into a second."""
    fraction = utcnow().microsecond / 1_000_000
    time.sleep((0.85 - fraction) % 1.0)


def test_stock_comes_back_at_the_ttl(app: Flask, private_redis: RedisServer, tmp_path: Path):
    variant_id = make_product(make_vendor(), stock=3).variants[0].id
    buyer_id = make_buyer().id
    carts.add_item(buyer_id, variant_id, 2)
    db.session.rollback()
    # Plain ids only from here: an object of the test app's session, touched inside the
    # second app's context, would borrow a connection there and outlive it.

    with jobs_app(
        app, private_redis.url, tmp_path / "mail", RESERVATION_TTL_SECONDS=TTL_SECONDS
    ) as web:
        worker = WorkerProcess(worker_env(web), tmp_path / "worker.log")
        try:
            with web.app_context():
                # The worker is up once its ticker ran the periodic jobs (the expiry sweeper
                # among them: its next round is 30 s away).
                wait_for(
                    lambda: jobs.get_redis().exists(
                        "marketplace:periodic:marketplace.orders.jobs.sweep_expired_orders"
                    ),
                    30,
                    message="the worker's periodic jobs",
                )
                time.sleep(1.5)  # ... and its scheduler has started
                _late_in_a_second()
                order_id = orders.checkout(buyer_id, ADDRESS, "on-time", "hash").order.id
                db.session.rollback()
                expires_at = db.session.get(Order, order_id).reservation_expires_at
                assert expires_at.microsecond > 500_000, expires_at  # late in its second

                def reserved() -> int:
                    db.session.rollback()
                    return db.session.get(Variant, variant_id).reserved

                assert reserved() == 2
                wait_for(
                    lambda: reserved() == 0,
                    TTL_SECONDS + 5,
                    message=f"the stock to come back (worker log:\n{worker.output()})",
                )
                back_at = utcnow()
                db.session.rollback()
                order = db.session.get(Order, order_id)
                assert order.status.value == "cancelled"
                assert order.cancel_reason == "reservation_expired"
                assert expires_at <= back_at < expires_at + timedelta(seconds=4)
        finally:
            worker.stop()
