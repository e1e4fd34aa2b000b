"""Random carts, tax rates, categories, taxed shipping and an optional coupon, checked out
through the API: the quote is the order, every VendorOrder adds up (and the database's CHECKs
take it), the order is the sum of its VendorOrders, and commission + vendor earnings is each
vendor's share of the charge. (The pure properties, with refunds, are
tests/unit/test_tax_pricing_properties.py; this one goes through checkout and the database.)"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.catalog.models import TaxCategory
from marketplace.catalog.services import update_product, update_vendor_settings
from marketplace.orders.commission import set_vendor_bps
from marketplace.orders.tax import set_rate
from marketplace.search import indexing
from tests.helpers import make_admin, make_buyer, make_product, make_vendor

AMOUNTS = ("subtotal_cents", "shipping_cents", "discount_cents", "tax_cents", "total_cents")
_keys = itertools.count()

cart_st = st.lists(
    st.tuples(
        st.integers(0, 1),  # vendor
        st.integers(100, 20_000),  # unit price
        st.integers(1, 3),  # quantity
        st.sampled_from(list(TaxCategory)),
    ),
    min_size=1,
    max_size=4,
)
destination_st = st.sampled_from(
    [
        {"country": "US", "state": "NY"},
        {"country": "US", "state": "CA"},
        {"country": "DE", "state": None},
    ]
)


@pytest.fixture
def no_search_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dozens of products a test: the search index is not what is tested here."""
    monkeypatch.setattr(indexing, "product_changed", lambda *args, **kwargs: None)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    cart=cart_st,
    destination=destination_st,
    standard=st.integers(0, 2500),
    reduced=st.one_of(st.none(), st.integers(0, 1000)),
    shipping_taxed=st.booleans(),
    shipping=st.lists(st.integers(0, 999), min_size=2, max_size=2),
    commission=st.lists(st.integers(0, 3000), min_size=2, max_size=2),
    coupon_bps=st.one_of(st.none(), st.integers(100, 5000)),
)
def test_random_checkouts_add_up_and_the_quote_is_the_order(
    api,
    no_search_index,
    cart,
    destination,
    standard,
    reduced,
    shipping_taxed,
    shipping,
    commission,
    coupon_bps,
):
    n = next(_keys)
    set_rate(
        destination["country"],
        destination["state"],
        standard,
        reduced_rate_bps=reduced,
        shipping_taxed=shipping_taxed,
    )
    vendors = [make_vendor(f"V{n}-{i}") for i in range(2)]
    for vendor, flat, bps in zip(vendors, shipping, commission, strict=True):
        update_vendor_settings(vendor.vendor.id, shipping_flat_cents=flat)
        set_vendor_bps(vendor.vendor.id, bps)
    buyer = make_buyer()
    for which, unit, quantity, category in cart:
        product = make_product(vendors[which], price_cents=unit, stock=5)
        update_product(vendors[which].vendor.id, product.id, tax_category=category)
        added = api.post(
            "/cart/items",
            buyer.token,
            json={"variant_id": product.variants[0].id, "quantity": quantity},
        )
        assert added.status_code == 201, added.get_json()
    body = {
        "shipping_address": {
            "name": "Bea",
            "line1": "1 Main St",
            "city": "Town",
            "postal_code": "10001",
            **destination,
        }
    }
    if coupon_bps is not None:
        code = f"TAXPROP{n}"
        created = api.post(
            "/admin/coupons",
            make_admin().token,
            json={"code": code, "kind": "percent", "percent_bps": coupon_bps},
        )
        assert created.status_code == 201, created.get_json()
        body["coupon_code"] = code
    quote = api.post("/checkout/quote", buyer.token, json=body)
    if quote.status_code == 422 and quote.get_json()["error"]["code"] == "coupon_not_applicable":
        return
    assert quote.status_code == 200, quote.get_json()
    quote = quote.get_json()
    placed = api.post("/checkout", buyer.token, json=body, headers={"Idempotency-Key": f"p{n}"})
    if placed.status_code == 422 and placed.get_json()["error"]["code"] == "amount_not_chargeable":
        return
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    assert {k: order[k] for k in AMOUNTS} == {k: quote[k] for k in AMOUNTS}
    for key in AMOUNTS:
        assert order[key] == sum(part[key] for part in order["vendor_orders"])
    for part in order["vendor_orders"]:
        assert part["total_cents"] == (
            part["subtotal_cents"]
            + part["shipping_cents"]
            + part["tax_cents"]
            - part["discount_cents"]
        )
        assert part["platform_fee_cents"] + part["vendor_earnings_cents"] == (
            part["total_cents"] - part["tax_cents"]
        )
        assert (
            part["tax_cents"]
            == sum(i["tax_cents"] for i in part["items"]) + (part["shipping_tax_cents"])
        )
        if not shipping_taxed:
            assert part["shipping_tax_cents"] == 0
        for value in (
            part["platform_fee_cents"],
            part["vendor_earnings_cents"],
            part["tax_cents"],
            part["discount_cents"],
        ):
            assert value >= 0
        for item in part["items"]:
            assert item["tax_cents"] >= 0 and item["discount_cents"] <= item["line_total_cents"]
