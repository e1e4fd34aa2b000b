"""Per-buyer caps on checkout: open unpaid orders and the units they hold, so one account cannot
take stock off sale by checking out and never paying. A refused checkout holds nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from marketplace.catalog.models import Variant
from marketplace.db import db
from marketplace.orders.models import Order
from tests.functional.money import ADDRESS
from tests.helpers import assert_error, make_buyer, make_product, make_vendor


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"MAX_UNPAID_ORDERS_PER_BUYER": 2, "MAX_HELD_UNITS_PER_BUYER": 5}


def _checkout(api, buyer, variant_id, quantity, key):
    added = api.post(
        "/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": quantity}
    )
    assert added.status_code in (200, 201), added.get_json()
    return api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": ADDRESS},
        headers={"Idempotency-Key": key},
    )


def _held(variant_id: int) -> tuple[int, int]:
    db.session.rollback()
    orders_count = db.session.scalar(select(func.count()).select_from(Order))
    return orders_count, db.session.get(Variant, variant_id).reserved


def test_a_buyer_with_too_many_unpaid_orders_is_refused_and_nothing_is_held(api):
    variant = make_product(make_vendor(), stock=50).variants[0]
    buyer = make_buyer()
    for n in range(2):
        assert _checkout(api, buyer, variant.id, 1, f"k{n}").status_code == 201
    refused = _checkout(api, buyer, variant.id, 1, "k3")
    error = assert_error(refused, 409, "too_many_unpaid_orders")
    assert error["details"] == {"limit": 2, "unpaid_orders": 2}
    assert _held(variant.id) == (2, 2)
    assert api.get("/cart", buyer.token).get_json()["items"], "the cart is kept"

    # Another buyer is not affected, and once an order is cancelled the buyer may check out.
    other = make_buyer("Other")
    assert _checkout(api, other, variant.id, 1, "o1").status_code == 201
    first = db.session.scalar(select(Order.id).where(Order.buyer_id == buyer.id).order_by(Order.id))
    assert api.post(f"/orders/{first}/cancel", buyer.token).status_code == 200
    assert (
        api.post(
            "/checkout",
            buyer.token,
            json={"shipping_address": ADDRESS},
            headers={"Idempotency-Key": "k4"},
        ).status_code
        == 201
    )


def test_held_units_are_capped_across_a_buyers_unpaid_orders(api):
    variant = make_product(make_vendor(), stock=50).variants[0]
    buyer = make_buyer()
    assert _checkout(api, buyer, variant.id, 4, "k1").status_code == 201
    refused = _checkout(api, buyer, variant.id, 2, "k2")  # 4 held + 2 > 5
    error = assert_error(refused, 409, "too_many_held_units")
    assert error["details"] == {"limit": 5, "held_units": 4, "units": 2}
    assert _held(variant.id) == (1, 4)
    api.patch(
        f"/cart/items/{api.get('/cart', buyer.token).get_json()['items'][0]['id']}",
        buyer.token,
        json={"quantity": 1},
    )
    assert (
        api.post(
            "/checkout",
            buyer.token,
            json={"shipping_address": ADDRESS},
            headers={"Idempotency-Key": "k3"},
        ).status_code
        == 201
    )
    assert _held(variant.id) == (2, 5)
