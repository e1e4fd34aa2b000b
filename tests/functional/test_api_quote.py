"""`POST /api/v1/checkout/quote`: the order's numbers before it exists, with no side effects."""

from __future__ import annotations

from sqlalchemy import func, select

from marketplace.cart.models import CartItem
from marketplace.catalog.models import Variant
from marketplace.catalog.services import update_variant, update_vendor_settings
from marketplace.db import db
from marketplace.inventory.models import Reservation
from marketplace.orders.commission import set_vendor_bps
from marketplace.orders.models import Order
from marketplace.orders.tax import set_rate
from tests.helpers import assert_error, make_buyer, make_product, make_vendor

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}
AMOUNTS = ("subtotal_cents", "shipping_cents", "discount_cents", "tax_cents", "total_cents")


def _state():
    return (
        db.session.scalar(select(func.count()).select_from(Order)),
        db.session.scalar(select(func.count()).select_from(Reservation)),
        db.session.scalar(select(func.sum(Variant.reserved))),
        sorted((i.variant_id, i.quantity) for i in db.session.query(CartItem)),
    )


def _multi_vendor_cart(api):
    """Two vendors: one under its free-shipping threshold, one over it; tax 7.25 % in CA and
    odd prices, so rounding per line shows."""
    near = make_vendor("Near")
    update_vendor_settings(
        near.vendor.id, shipping_flat_cents=599, free_shipping_threshold_cents=5000
    )
    far = make_vendor("Far")
    update_vendor_settings(
        far.vendor.id, shipping_flat_cents=850, free_shipping_threshold_cents=2000
    )
    set_vendor_bps(far.vendor.id, 1500)
    set_rate("US", None, 400)
    set_rate("US", "CA", 725)
    a = make_product(near, price_cents=1999, stock=5)
    b = make_product(near, price_cents=333, stock=5)
    c = make_product(far, price_cents=2501, stock=5)
    buyer = make_buyer()
    for product, quantity in ((a, 1), (b, 3), (c, 1)):
        added = api.post(
            "/cart/items",
            buyer.token,
            json={"variant_id": product.variants[0].id, "quantity": quantity},
        )
        assert added.status_code == 201
    return buyer, near, far


def test_the_quote_is_what_the_order_charges(api):
    buyer, near, far = _multi_vendor_cart(api)
    before = _state()
    response = api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS})
    assert response.status_code == 200, response.get_json()
    quote = response.get_json()
    db.session.rollback()
    assert _state() == before  # no order, no reservation, the cart untouched

    by_vendor = {v["vendor_id"]: v for v in quote["vendor_orders"]}
    # Near: 19.99 + 3 × 3.33 = 29.98 < 50.00 → 5.99 shipping; tax 7.25 % per line: 145 + 72.
    assert {k: by_vendor[near.vendor.id][k] for k in AMOUNTS} == {
        "subtotal_cents": 2998,
        "shipping_cents": 599,
        "discount_cents": 0,
        "tax_cents": 145 + 72,
        "total_cents": 2998 + 599 + 217,
    }
    assert by_vendor[near.vendor.id]["free_shipping_remaining_cents"] == 5000 - 2998
    # Far: 25.01 ≥ 20.00 ships free; tax 181.
    assert {k: by_vendor[far.vendor.id][k] for k in AMOUNTS} == {
        "subtotal_cents": 2501,
        "shipping_cents": 0,
        "discount_cents": 0,
        "tax_cents": 181,
        "total_cents": 2682,
    }
    assert by_vendor[far.vendor.id]["free_shipping_remaining_cents"] is None
    assert quote["tax_rate_bps"] == 725 and quote["currency"] == "usd"
    assert "platform_fee_cents" not in str(quote)  # the commission is not the buyer's business

    placed = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": ADDRESS},
        headers={"Idempotency-Key": "after-quote"},
    )
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    assert {k: order[k] for k in AMOUNTS} == {k: quote[k] for k in AMOUNTS}
    for part in order["vendor_orders"]:
        quoted = by_vendor[part["vendor_id"]]
        assert {k: part[k] for k in AMOUNTS} == {k: quoted[k] for k in AMOUNTS}
        assert [(i["sku"], i["quantity"], i["line_total_cents"]) for i in part["items"]] == [
            (i["sku"], i["quantity"], i["line_total_cents"]) for i in quoted["items"]
        ]


def test_the_quote_follows_the_destination(api):
    buyer, _, _ = _multi_vendor_cart(api)
    oregon = {**ADDRESS, "state": "OR"}  # no region rate: the country's 4 %
    quote = api.post("/checkout/quote", buyer.token, json={"shipping_address": oregon}).get_json()
    assert quote["tax_rate_bps"] == 400
    assert quote["tax_cents"] == 80 + 40 + 100
    abroad = {**ADDRESS, "country": "DE", "state": None}
    assert (
        api.post("/checkout/quote", buyer.token, json={"shipping_address": abroad}).get_json()[
            "tax_cents"
        ]
        == 0
    )


def test_the_quote_refuses_what_the_checkout_would_refuse(api):
    buyer = make_buyer()
    assert_error(
        api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS}),
        409,
        "cart_empty",
    )
    product = make_product(make_vendor(), price_cents=1000, stock=2)
    variant = product.variants[0]
    api.post("/cart/items", buyer.token, json={"variant_id": variant.id, "quantity": 2})
    bad = {**ADDRESS, "country": "USA"}
    error = assert_error(
        api.post("/checkout/quote", buyer.token, json={"shipping_address": bad}), 422
    )
    assert "shipping_address.country" in error["details"]["fields"]
    assert_error(
        api.post(
            "/checkout/quote",
            buyer.token,
            json={"shipping_address": ADDRESS, "coupon_code": "FREE"},
        ),
        422,
    )
    assert_error(api.post("/checkout/quote", buyer.token, json={"shipping_address": 5}), 400)
    assert_error(api.post("/checkout/quote", None, json={"shipping_address": ADDRESS}), 401)
    assert_error(
        api.post("/checkout/quote", make_vendor().token, json={"shipping_address": ADDRESS}), 403
    )

    update_variant(variant.vendor_id, variant.id, price_cents=1100)
    before = _state()
    changed = assert_error(
        api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS}),
        409,
        "price_changed",
    )
    assert changed["details"]["items"] == [
        {"variant_id": variant.id, "old_price_cents": 1000, "new_price_cents": 1100}
    ]
    db.session.rollback()
    assert _state() == before  # unlike the checkout, the quote leaves the cart's price alone

    update_variant(variant.vendor_id, variant.id, price_cents=1000, stock=1)
    short = assert_error(
        api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS}),
        409,
        "out_of_stock",
    )
    assert short["details"]["variant_ids"] == [variant.id]


def test_openapi_documents_the_quote(api):
    document = api.get("/openapi.json").get_json()
    operation = document["paths"]["/api/v1/checkout/quote"]["post"]
    assert operation["security"] == [{"bearer": []}] and "200" in operation["responses"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert (
        body
        == document["paths"]["/api/v1/checkout"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"]
    )
