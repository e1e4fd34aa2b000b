"""A coupon's use limit under real concurrency on PostgreSQL: 100 buyers, 8 processes, a code
limited to 10 uses → exactly 10 orders, and the refused checkouts left nothing behind."""

from __future__ import annotations

from collections import Counter

from flask import Flask
from sqlalchemy import func, select

from marketplace.cart import services as carts
from marketplace.catalog.models import Variant
from marketplace.coupons import services as coupons
from marketplace.coupons.models import Coupon, CouponRedemption
from marketplace.db import db
from marketplace.inventory.models import Reservation
from marketplace.orders.models import Order
from tests.helpers import make_buyer, make_product, make_vendor
from tests.integration import concurrency_workers as workers

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def test_100_buyers_racing_for_10_uses_make_exactly_10_orders(pg_app: Flask, pg_config_dict: dict):
    uses, buyers, processes = 10, 100, 8
    variant_id = make_product(make_vendor(), price_cents=2000, stock=1000).variants[0].id
    coupons.create(
        coupons.input_from(
            {"code": "RACE", "kind": "percent", "percent_bps": 500, "max_uses": uses},
            {"code", "kind", "percent_bps", "max_uses"},
        ),
        vendor_id=None,
    )
    tokens = []
    for _ in range(buyers):
        buyer = make_buyer()
        carts.add_item(buyer.id, variant_id, 1)
        tokens.append(buyer.token)

    body = {"shipping_address": ADDRESS, "coupon_code": "race"}
    shares = [tokens[i::processes] for i in range(processes)]
    results = workers.run_concurrently(
        pg_config_dict,
        [(workers.checkout_each, {"tokens": share, "body": body}) for share in shares],
    )
    answers = [answer for share in results for answer in share]

    statuses = Counter((a.status, a.code) for a in answers)
    assert statuses == {(201, None): uses, (422, "coupon_not_applicable"): buyers - uses}, statuses
    db.session.expire_all()
    created = {a.order_id for a in answers if a.status == 201}
    assert set(db.session.scalars(select(Order.id))) == created
    assert db.session.scalar(select(Coupon.uses_count)) == uses
    redeemed = set(db.session.scalars(select(CouponRedemption.order_id)))
    assert redeemed == created
    assert db.session.scalar(select(func.count()).select_from(Reservation)) == uses
    assert db.session.get(Variant, variant_id).reserved == uses
    for order in db.session.scalars(select(Order)):
        assert order.coupon_code == "RACE" and order.discount_cents == 100
