"""The checkout's concurrency claims, proven with real OS processes on PostgreSQL.

ARCHITECTURE.md ("Checkout, stock and payment") promises: guarded updates never oversell,
variant-id order never deadlocks, releases move stock only when the reservation row changes,
and one Idempotency-Key makes one order. Each test spawns processes that build their own app
and connections, meet at a barrier and race; the parent sets up through the services and
checks the database afterwards.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select, update

from marketplace.cart import services as carts
from marketplace.catalog.models import Variant
from marketplace.db import db, utcnow
from marketplace.inventory.models import Reservation, ReservationStatus
from marketplace.orders import services as orders
from marketplace.orders.models import Order, OrderHistory, OrderItem, OrderStatus, VendorOrder
from tests.helpers import make_buyer, make_product, make_vendor
from tests.integration import concurrency_workers as workers
from tests.integration.concurrency_workers import Answer

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}
BODY = {"shipping_address": ADDRESS}


def _fresh(variant_id: int) -> Variant:
    db.session.expire_all()
    variant = db.session.get(Variant, variant_id)
    assert variant is not None
    return variant


def _sold(variant_id: int) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.variant_id == variant_id,
            Reservation.status == ReservationStatus.COMMITTED,
        )
    )


def _active_reserved(variant_id: int) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.variant_id == variant_id, Reservation.status == ReservationStatus.ACTIVE
        )
    )


def _ordered(variant_id: int) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(OrderItem.quantity), 0)).where(
            OrderItem.variant_id == variant_id
        )
    )


def _count(model: Any, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _server_errors(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.status >= 500]


def _assert_stock_consistent(variant_id: int, stock: int) -> Variant:
    """reserved + sold <= stock, and `reserved` is exactly what the active reservations hold."""
    variant = _fresh(variant_id)
    sold = _sold(variant_id)
    assert variant.on_hand == stock - sold
    assert variant.reserved >= 0
    assert variant.reserved + sold <= stock
    assert variant.reserved == _active_reserved(variant_id)
    return variant


def test_hot_sku_200_buyers_20_units_exactly_20_orders(pg_app: Flask, pg_config_dict: dict):
    units, buyers, processes = 20, 200, 8
    variant_id = make_product(make_vendor(), stock=units).variants[0].id
    tokens = []
    for _ in range(buyers):
        buyer = make_buyer()
        carts.add_item(buyer.id, variant_id, 1)
        tokens.append(buyer.token)

    shares = [tokens[i::processes] for i in range(processes)]
    results = workers.run_concurrently(
        pg_config_dict,
        [(workers.checkout_each, {"tokens": share, "body": BODY}) for share in shares],
    )
    answers = [answer for share in results for answer in share]

    assert len(answers) == buyers
    assert _server_errors(answers) == []
    statuses = Counter((a.status, a.code) for a in answers)
    assert statuses == {(201, None): units, (409, "out_of_stock"): buyers - units}, statuses
    created = {a.order_id for a in answers if a.status == 201}
    assert len(created) == units and None not in created
    assert _count(Order) == units
    assert set(db.session.scalars(select(Order.id))) == created
    variant = _assert_stock_consistent(variant_id, units)
    assert (variant.on_hand, variant.reserved) == (units, units)
    assert _ordered(variant_id) == units


def test_opposite_cart_orders_never_deadlock(pg_app: Flask, pg_config_dict: dict):
    """A adds X then Y, B adds Y then X; many rounds of overlapping checkouts.

    Stock runs out part-way, so both the success and the out-of-stock paths race.
    """
    rounds, pairs, stock = 15, 2, 45
    x = make_product(make_vendor("X"), stock=stock).variants[0].id
    y = make_product(make_vendor("Y"), stock=stock).variants[0].id
    jobs = []
    for _ in range(pairs):
        for order in ([x, y], [y, x]):
            payload = {
                "token": make_buyer().token,
                "variant_ids": order,
                "rounds": rounds,
                "body": BODY,
            }
            jobs.append((workers.cart_then_checkout_rounds, payload))

    # Each buyer checks out every round and never pays: lift the per-buyer cap on unpaid orders,
    # which would otherwise end the race after five rounds (it has its own test).
    config = {**pg_config_dict, "MAX_UNPAID_ORDERS_PER_BUYER": rounds + 1}
    results = workers.run_concurrently(config, jobs)

    adds = [a for process in results for round_adds, _ in process for a in round_adds]
    checkouts = [c for process in results for _, c in process]
    assert _server_errors(adds + checkouts) == []
    assert {(a.status, a.code) for a in adds} <= {(201, None), (409, "out_of_stock")}
    assert {(c.status, c.code) for c in checkouts} <= {
        (201, None),
        (409, "out_of_stock"),
        (409, "cart_empty"),  # both adds refused once stock is gone
    }
    created = [c for c in checkouts if c.status == 201]
    assert created, "no checkout succeeded: the race did not happen"
    assert len(created) < len(checkouts), "stock never ran out: the sold-out path did not race"
    assert _count(Order) == len(created)
    for variant_id in (x, y):
        variant = _assert_stock_consistent(variant_id, stock)
        assert variant.reserved == _ordered(variant_id)


def test_expiry_returns_stock_exactly_once_with_twin_jobs_and_sweeper(
    pg_app: Flask, pg_config_dict: dict
):
    orders_count, stock = 30, 100
    a = make_product(make_vendor("A"), stock=stock).variants[0].id
    b = make_product(make_vendor("B"), stock=stock).variants[0].id
    order_ids = []
    for n in range(orders_count):
        buyer = make_buyer()
        carts.add_item(buyer.id, a, 2)
        if n % 2:
            carts.add_item(buyer.id, b, 1)
        result = orders.checkout(
            buyer.id, orders.Address(**ADDRESS), f"expire-{n}", orders.request_fingerprint(BODY)
        )
        order_ids.append(result.order.id)
    assert _fresh(a).reserved == 2 * orders_count
    # The sweeper has no `now`: the reservations must really be past their expiry.
    db.session.execute(
        update(Order)
        .where(Order.id.in_(order_ids))
        .values(reservation_expires_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    later = utcnow() + timedelta(seconds=1)

    cancelled = workers.run_concurrently(
        pg_config_dict,
        [
            (workers.expire_each, {"order_ids": order_ids, "later": later}),
            (workers.expire_each, {"order_ids": order_ids[::-1], "later": later}),
            (workers.sweep, {"times": 2}),
        ],
    )

    assert sum(cancelled) == orders_count, cancelled  # each order cancelled by exactly one call
    for variant_id in (a, b):
        variant = _fresh(variant_id)
        assert (variant.on_hand, variant.reserved) == (stock, 0)
    assert _count(Reservation, Reservation.status != ReservationStatus.RELEASED) == 0
    for order_id in order_ids:
        order = db.session.get(Order, order_id)
        assert order.status is OrderStatus.CANCELLED
        assert order.cancel_reason == "reservation_expired"
        to_cancelled = db.session.scalars(
            select(OrderHistory).where(
                OrderHistory.order_id == order_id, OrderHistory.to_status == "cancelled"
            )
        ).all()
        order_rows = [h for h in to_cancelled if h.vendor_order_id is None]
        vendor_rows = Counter(h.vendor_order_id for h in to_cancelled if h.vendor_order_id)
        assert len(order_rows) == 1
        vendor_order_ids = db.session.scalars(
            select(VendorOrder.id).where(VendorOrder.order_id == order_id)
        ).all()
        assert vendor_rows == dict.fromkeys(vendor_order_ids, 1)


def test_one_idempotency_key_twice_at_once_makes_one_order(pg_app: Flask, pg_config_dict: dict):
    rounds, stock = 12, 50
    variant_id = make_product(make_vendor(), stock=stock).variants[0].id
    buyers = []
    for _ in range(rounds):
        buyer = make_buyer()
        carts.add_item(buyer.id, variant_id, 1)
        buyers.append(buyer)
    payload = {
        "tokens": [b.token for b in buyers],
        "keys": [f"twin-{n}" for n in range(rounds)],
        "body": BODY,
    }

    first, second = workers.run_concurrently(
        pg_config_dict,
        [(workers.twin_checkouts, payload), (workers.twin_checkouts, payload)],
    )

    for buyer, one, other in zip(buyers, first, second, strict=True):
        pair = sorted([one, other], key=lambda a: (a.status, a.replayed))
        assert _server_errors(pair) == []
        assert _count(Order, Order.buyer_id == buyer.id) == 1
        order_id = db.session.scalar(select(Order.id).where(Order.buyer_id == buyer.id))
        if pair[1].status == 409:
            assert pair[1].code == "idempotency_in_progress", pair
            assert (pair[0].status, pair[0].order_id) == (201, order_id)
        else:
            assert [a.status for a in pair] == [201, 201], pair
            assert [a.replayed for a in pair] == [False, True], pair
            assert pair[0].order_id == pair[1].order_id == order_id
        assert _count(Reservation, Reservation.order_id == order_id) == 1
    variant = _assert_stock_consistent(variant_id, stock)
    assert variant.reserved == rounds
    assert _count(Order) == rounds
