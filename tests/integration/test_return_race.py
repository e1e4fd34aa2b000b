"""Deciding a return is claimed by one guarded update: vendors clicking at once (several tabs,
a double submit) decide it exactly once. Real processes on PostgreSQL."""

from __future__ import annotations

from collections import Counter

from flask import Flask

from marketplace.cart import services as carts
from marketplace.db import db, transaction
from marketplace.orders import returns
from marketplace.orders import services as orders
from marketplace.orders.models import (
    OrderHistory,
    ReturnRequest,
    ReturnStatus,
    VendorOrder,
    VendorOrderStatus,
)
from marketplace.orders.state import transition_vendor_order
from tests.helpers import make_buyer, make_product, make_vendor
from tests.integration import concurrency_workers as workers

ADDRESS = orders.Address(
    name="Bea Buyer", line1="1 Main St", city="Springfield", postal_code="94000", country="US"
)


def _delivered_item(vendor_id: int, buyer_id: int, variant_id: int) -> tuple[int, int]:
    """An order whose vendor part went through the state machine to `delivered`."""
    carts.add_item(buyer_id, variant_id, 1)
    order = orders.checkout(buyer_id, ADDRESS, "race-return", "hash").order
    with transaction():
        vendor_order = db.session.get(VendorOrder, order.vendor_orders[0].id)
        for status in (
            VendorOrderStatus.PAID,
            VendorOrderStatus.SHIPPED,
            VendorOrderStatus.DELIVERED,
        ):
            transition_vendor_order(vendor_order, status, actor="test")
        item_id = vendor_order.items[0].id
    return order.id, item_id


def test_racing_declines_decide_a_return_once(pg_app: Flask, pg_config_dict: dict):
    vendor = make_vendor()
    buyer = make_buyer()
    variant_id = make_product(vendor, stock=5).variants[0].id
    order_id, item_id = _delivered_item(vendor.vendor.id, buyer.id, variant_id)
    request = returns.request_return(buyer.id, order_id, item_id, 1, "Too small")
    history_before = db.session.query(OrderHistory).count()

    processes = 6
    results = workers.run_concurrently(
        pg_config_dict,
        [
            (
                workers.decline_return,
                {"return_id": request.id, "token": vendor.token, "reason": f"reason {n}"},
            )
            for n in range(processes)
        ],
    )

    assert Counter(results) == {"declined": 1, "409 return_already_decided": processes - 1}
    winner = results.index("declined")
    db.session.rollback()
    decided = db.session.get(ReturnRequest, request.id)
    assert decided.status is ReturnStatus.DECLINED
    assert decided.decision_reason == f"reason {winner}"
    assert decided.decided_at is not None
    assert db.session.query(OrderHistory).count() == history_before
