"""Shipping rules (docs/shipping.md): the vendor's API, each mode quoted as charged, the
free-over boundary, destinations a vendor does not serve, and terms changed between the cart
and the checkout (findings 21–22 of the security-and-money review)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.cart.models import CartItem
from marketplace.catalog.models import Variant
from marketplace.catalog.services import update_variant
from marketplace.db import db
from marketplace.inventory.models import Reservation
from marketplace.orders.models import Order
from tests.helpers import assert_error, make_buyer, make_product, make_vendor

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "postal_code": "94000",
    "country": "US",
}
AMOUNTS = ("subtotal_cents", "shipping_cents", "discount_cents", "tax_cents", "total_cents")
_keys = iter(range(10**6))


def _state():
    return (
        db.session.scalar(select(func.count()).select_from(Order)),
        db.session.scalar(select(func.count()).select_from(Reservation)),
        db.session.scalar(select(func.sum(Variant.reserved))),
        sorted((i.variant_id, i.quantity) for i in db.session.query(CartItem)),
    )


def _conforms(api, name, details):
    """`details` match the OpenAPI document's declared shape `name`."""
    from jsonschema import Draft202012Validator

    doc = api.get("/openapi.json").get_json()
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    errors = list(Draft202012Validator(schema).iter_errors(details))
    assert errors == [], errors


def _rules(api, vendor, **terms):
    response = api.put("/vendor/shipping-rules", vendor.token, json=terms)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _add(api, buyer, product, quantity):
    added = api.post(
        "/cart/items",
        buyer.token,
        json={"variant_id": product.variants[0].id, "quantity": quantity},
    )
    assert added.status_code == 201, added.get_json()


def _checkout(api, buyer, address=ADDRESS):
    return api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": address},
        headers={"Idempotency-Key": f"ship-{next(_keys)}"},
    )


def test_a_vendor_reads_and_replaces_its_shipping_rules(api):
    seller = make_vendor("Rules")
    first = api.get("/vendor/shipping-rules", seller.token).get_json()
    assert first == {
        "mode": "flat_per_order",
        "flat_cents": 0,
        "additional_cents": 0,
        "weight_tiers": [],
        "free_over_cents": None,
        "ships_to": [],
        "version": 1,
        "summary": "Free shipping; ships to everywhere",
    }
    tiers = [{"up_to_grams": 500, "cents": 400}, {"up_to_grams": 2000, "cents": 900}]
    saved = _rules(
        api, seller, mode="weight_tiers", weight_tiers=tiers, free_over_cents=9000, ships_to=["us"]
    )
    assert saved["weight_tiers"] == tiers and saved["ships_to"] == ["US"]
    assert saved["version"] == 2
    assert api.get("/vendor/shipping-rules", seller.token).get_json() == saved
    again = _rules(
        api, seller, mode="weight_tiers", weight_tiers=tiers, free_over_cents=9000, ships_to=["US"]
    )
    assert again["version"] == 2  # nothing changed, no new version
    # the old settings route changes the same terms, and their version
    patched = api.patch("/vendor", seller.token, json={"shipping_flat_cents": 250})
    assert patched.status_code == 200
    assert api.get("/vendor/shipping-rules", seller.token).get_json()["version"] == 3


def test_bad_shipping_rules_are_refused_and_change_nothing(api):
    seller = make_vendor("Strict")
    before = api.get("/vendor/shipping-rules", seller.token).get_json()
    refused = assert_error(
        api.put(
            "/vendor/shipping-rules",
            seller.token,
            json={
                "mode": "weight_tiers",
                "flat_cents": -5,
                "weight_tiers": [
                    {"up_to_grams": 1000, "cents": 100},
                    {"up_to_grams": 1000, "cents": 200},
                ],
                "ships_to": ["Narnia"],
            },
        ),
        422,
        "validation_error",
    )
    assert set(refused["details"]["fields"]) == {
        "flat_cents",
        "weight_tiers[1].up_to_grams",
        "ships_to[0]",
    }
    assert_error(api.put("/vendor/shipping-rules", seller.token, json={"mode": "by_ship"}), 422)
    assert_error(api.put("/vendor/shipping-rules", seller.token, json={"flat_cents": "1"}), 400)
    assert api.get("/vendor/shipping-rules", seller.token).get_json() == before
    buyer = make_buyer()
    assert_error(api.get("/vendor/shipping-rules", buyer.token), 403)


def test_weight_grams_on_the_vendor_variant_api(api):
    seller = make_vendor("Heavy")
    created = api.post(
        "/vendor/products",
        seller.token,
        json={
            "title": "Anvil",
            "status": "active",
            "variants": [{"sku": "ANV", "price_cents": 5000, "stock": 3, "weight_grams": 9000}],
        },
    )
    assert created.status_code == 201, created.get_json()
    variant = created.get_json()["variants"][0]
    assert variant["weight_grams"] == 9000
    patched = api.patch(f"/vendor/variants/{variant['id']}", seller.token, json={"weight_grams": 1})
    assert patched.get_json()["weight_grams"] == 1
    bad = api.patch(f"/vendor/variants/{variant['id']}", seller.token, json={"weight_grams": -1})
    assert "weight_grams" in assert_error(bad, 422, "validation_error")["details"]["fields"]


@pytest.mark.parametrize(
    ("terms", "shipping"),
    [
        ({"mode": "flat_per_order", "flat_cents": 650}, 650),
        ({"mode": "per_item", "flat_cents": 500, "additional_cents": 125}, 500 + 3 * 125),
        (
            {
                "mode": "weight_tiers",
                "weight_tiers": [
                    {"up_to_grams": 1000, "cents": 300},
                    {"up_to_grams": 3000, "cents": 800},
                ],
            },
            800,  # 2 × 600 g + 2 × 700 g = 2600 g
        ),
    ],
)
def test_each_mode_is_quoted_as_the_order_charges_it(api, terms, shipping):
    seller = make_vendor("Modes")
    _rules(api, seller, **terms)
    a = make_product(seller, price_cents=1250, stock=5)
    b = make_product(seller, price_cents=799, stock=5)
    update_variant(seller.vendor.id, a.variants[0].id, weight_grams=600)
    update_variant(seller.vendor.id, b.variants[0].id, weight_grams=700)
    buyer = make_buyer()
    _add(api, buyer, a, 2)
    _add(api, buyer, b, 2)
    quote = api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS})
    assert quote.status_code == 200, quote.get_json()
    quoted = quote.get_json()
    assert quoted["shipping_cents"] == shipping
    placed = _checkout(api, buyer)
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    assert {k: order[k] for k in AMOUNTS} == {k: quoted[k] for k in AMOUNTS}
    (part,) = order["vendor_orders"]
    assert part["shipping_cents"] == shipping
    assert part["total_cents"] == (
        part["subtotal_cents"] + part["shipping_cents"] + part["tax_cents"] - part["discount_cents"]
    )


@pytest.mark.parametrize(("quantity", "shipping"), [(4, 0), (3, 450)])
def test_free_over_starts_at_exactly_the_threshold(api, quantity, shipping):
    seller = make_vendor("Threshold")
    _rules(api, seller, mode="flat_per_order", flat_cents=450, free_over_cents=4000)
    product = make_product(seller, price_cents=1000, stock=9)
    buyer = make_buyer()
    _add(api, buyer, product, quantity)
    quote = api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS}).get_json()
    assert quote["shipping_cents"] == shipping
    order = _checkout(api, buyer).get_json()["order"]
    assert order["shipping_cents"] == shipping
    assert quote["vendor_orders"][0]["free_shipping_threshold_cents"] == 4000


def test_a_destination_a_vendor_does_not_serve_names_it_and_holds_nothing(api):
    local = make_vendor("Local")
    _rules(api, local, flat_cents=300, ships_to=["DE", "FR"])
    anywhere = make_vendor("Anywhere")
    mug = make_product(local, title="Mug", price_cents=900, stock=4)
    cup = make_product(local, title="Cup", price_cents=700, stock=4)
    pen = make_product(anywhere, title="Pen", price_cents=200, stock=4)
    buyer = make_buyer()
    for product in (mug, cup, pen):
        _add(api, buyer, product, 1)
    before = _state()
    for answer in (
        api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS}),
        _checkout(api, buyer),
    ):
        error = assert_error(answer, 422, "destination_not_served")
        assert error["details"]["country"] == "US"
        _conforms(api, "DestinationNotServedDetailsJson", error["details"])
        (vendor,) = error["details"]["vendors"]
        assert vendor["vendor_id"] == local.vendor.id
        assert vendor["display_name"] == local.vendor.display_name
        assert vendor["ships_to"] == ["DE", "FR"]
        assert [(i["variant_id"], i["title"]) for i in vendor["items"]] == [
            (mug.variants[0].id, "Mug"),
            (cup.variants[0].id, "Cup"),
        ]
        db.session.rollback()
        assert _state() == before  # no order, nothing held, the cart as it was
    germany = {**ADDRESS, "country": "de"}
    assert _checkout(api, buyer, germany).status_code == 201


def test_shipping_changed_between_cart_and_checkout_is_a_price_change(api):
    """Finding 22: a vendor raising its shipping after the buyer filled the cart."""
    seller = make_vendor("Sly")
    _rules(api, seller, mode="flat_per_order", flat_cents=500)
    product = make_product(seller, price_cents=2000, stock=5)
    buyer = make_buyer()
    _add(api, buyer, product, 2)
    seen = api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS}).get_json()
    assert seen["shipping_cents"] == 500

    patched = api.patch("/vendor", seller.token, json={"shipping_flat_cents": 10_000_000})
    assert patched.status_code == 200
    before = _state()
    quoted = assert_error(
        api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS}),
        409,
        "price_changed",
    )
    assert quoted["details"]["items"] == []
    refused = assert_error(_checkout(api, buyer), 409, "price_changed")
    assert refused["details"]["items"] == []
    assert refused["details"]["vendors"] == [
        {
            "vendor_id": seller.vendor.id,
            "display_name": seller.vendor.display_name,
            "old_shipping_cents": 500,
            "new_shipping_cents": 10_000_000,
            "old_version": 2,
            "new_version": 3,
        }
    ]
    _conforms(api, "PriceChangedDetailsJson", refused["details"])
    db.session.rollback()
    assert _state() == before  # nothing placed or held

    # the cart now remembers the new terms: the buyer sees them and a retry goes through
    now = api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS}).get_json()
    assert now["shipping_cents"] == 10_000_000
    placed = _checkout(api, buyer)
    assert placed.status_code == 201, placed.get_json()
    assert placed.get_json()["order"]["shipping_cents"] == 10_000_000


def test_a_price_and_a_shipping_change_are_reported_together(api):
    seller = make_vendor("Both")
    _rules(api, seller, mode="per_item", flat_cents=300, additional_cents=100)
    product = make_product(seller, price_cents=1500, stock=5)
    buyer = make_buyer()
    _add(api, buyer, product, 3)
    update_variant(seller.vendor.id, product.variants[0].id, price_cents=1700)
    _rules(api, seller, mode="per_item", flat_cents=300, additional_cents=200)
    refused = assert_error(_checkout(api, buyer), 409, "price_changed")
    assert refused["details"]["items"] == [
        {"variant_id": product.variants[0].id, "old_price_cents": 1500, "new_price_cents": 1700}
    ]
    (vendor,) = refused["details"]["vendors"]
    assert (vendor["old_shipping_cents"], vendor["new_shipping_cents"]) == (500, 700)
    placed = _checkout(api, buyer)
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    assert (order["subtotal_cents"], order["shipping_cents"]) == (5100, 700)


def test_the_openapi_document_declares_the_shipping_routes_and_errors(api):
    doc = api.get("/openapi.json").get_json()
    rules = doc["paths"]["/api/v1/vendor/shipping-rules"]
    assert set(rules) == {"get", "put"}
    answer = rules["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/ShippingRulesJson"}
    schemas = doc["components"]["schemas"]
    assert {"mode", "weight_tiers", "ships_to", "version", "summary"} <= set(
        schemas["ShippingRulesJson"]["properties"]
    )
    assert "weight_grams" in schemas["VendorVariantJson"]["properties"]
    for endpoint in ("/api/v1/checkout", "/api/v1/checkout/quote"):
        said = doc["paths"][endpoint]["post"]["description"]
        assert "422 destination_not_served" in said and "409 price_changed" in said
    assert schemas["PriceChangedDetailsJson"]["required"] == ["items"]
    assert "vendors" in schemas["DestinationNotServedDetailsJson"]["properties"]
