"""Payout sweepers running at once (a slow one overlapping the next, a manual run) hand each
delivered part to the outbox once: the parts are locked before the outbox is looked at. Real
processes on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from marketplace.cart import services as carts
from marketplace.db import db, transaction, utcnow
from marketplace.jobs.outbox import OutboxMessage
from marketplace.orders import services as orders
from marketplace.orders.models import VendorOrder, VendorOrderStatus
from marketplace.orders.state import transition_vendor_order
from marketplace.settlement import payout
from tests.helpers import make_buyer, make_product, make_vendor
from tests.integration import concurrency_workers as workers

ADDRESS = orders.Address(
    name="Bea Buyer", line1="1 Main St", city="Springfield", postal_code="94000", country="US"
)
PROCESSES = 6


def _delivered_long_ago(n: int) -> int:
    vendor = make_vendor()
    buyer = make_buyer()
    carts.add_item(buyer.id, make_product(vendor, stock=5).variants[0].id, 1)
    order = orders.checkout(buyer.id, ADDRESS, f"sweep-{n}", "hash").order
    with transaction():
        vendor_order = db.session.get(VendorOrder, order.vendor_orders[0].id)
        for status in (
            VendorOrderStatus.PAID,
            VendorOrderStatus.SHIPPED,
            VendorOrderStatus.DELIVERED,
        ):
            transition_vendor_order(vendor_order, status, actor="test")
        vendor_order.delivered_at = utcnow() - timedelta(days=1)  # well past any hold
        return vendor_order.id


def test_racing_sweeps_hand_each_part_over_once(pg_app: Flask, pg_config_dict: dict):
    parts = {_delivered_long_ago(n) for n in range(3)}
    # The children queue what they hand over (each its own in-process Redis), run nothing.
    config = {**pg_config_dict, "JOBS_SYNCHRONOUS": False, "REDIS_URL": ""}

    handed = workers.run_concurrently(config, [(workers.sweep_due_transfers, {})] * PROCESSES)

    assert sum(handed) == len(parts), handed
    db.session.rollback()
    rows = db.session.scalars(
        select(OutboxMessage.args).where(OutboxMessage.job == payout.TRANSFER_JOB)
    ).all()
    assert sorted(args[0] for args in rows) == sorted(parts)
