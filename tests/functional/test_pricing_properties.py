"""Issue 12's invariants through the real checkout, payment and refunds (Hypothesis).

Each example is one order: a random cart over three vendors, each vendor's random shipping
terms (flat, per item or weight tiers, free over a threshold, where it ships), products in each
tax category, a random coupon (none, the platform's or a vendor's), a random destination (US
states with and without tax on shipping or any tax, German VAT with its reduced rate, a German
business reverse charged, a country some vendors do not serve), prices before or including
tax (`PRICES_INCLUDE_TAX`), paid with the test card through the SDK and the emulator, then
shipped (captured) and refunded item by item in random batches. What must hold, in the order
the money moves:

- the quote is the order: the checkout charges what the quote showed, to the cent;
- the order's total is the sum of its VendorOrders'; each VendorOrder's items + shipping + tax −
  discount = its total; commission + vendor earnings = its total less tax (the vendor's share of
  the charge: tax stays with the platform); no amount is negative;
- the PaymentIntent is for the order's total;
- refunds of any subset, in any batches, never return more than the VendorOrder was charged,
  tax and discount included, and refunding every unit returns exactly its items' charge;
- the ledger balances and reconciliation matches Stripe after every example.

The unit-level properties (`tests/unit/test_coupon_allocation.py` and its siblings) cover many
more carts through `price()` alone; this one covers the path from the cart to the refund.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from flask import current_app
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from marketplace.catalog.models import TaxCategory
from marketplace.catalog.services import update_product, update_variant
from marketplace.orders.tax import set_rate
from tests.functional.money import (
    SHIP,
    assert_books_match_stripe,
    onboarded_vendor,
    pay,
)
from tests.helpers import VendorAccount, make_admin, make_buyer, make_product

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DESTINATIONS = {
    "US-CA": {"state": "CA", "country": "US", "postal_code": "94000"},
    "US-OR": {"state": "OR", "country": "US", "postal_code": "97201"},
    "US-NY": {"state": "NY", "country": "US", "postal_code": "10001"},
    "DE": {"state": None, "country": "DE", "postal_code": "10115"},
    "DE business": {"state": None, "country": "DE", "postal_code": "10115"},
}
VAT_NUMBER = "DE136695976"  # a valid German VAT number's format: reverse charged
PRICES = ((199, 1999, 4999), (333, 2501, 1000), (1250, 75, 3999))  # per vendor
WEIGHTS = ((250, 1200, 0), (90, 3000, 499), (500, 501, 20_000))  # grams
CATEGORIES = ((TaxCategory.STANDARD, TaxCategory.REDUCED, TaxCategory.EXEMPT),) * 3
_codes = itertools.count(1)


@dataclass
class Shop:
    vendors: list[VendorAccount]
    variants: list[list[int]]  # per vendor: its variant ids
    admin: Any


def _open_shop(api: Any, emulator: Any) -> Shop:
    set_rate("US", "CA", 725)  # items only
    set_rate("US", "NY", 400, shipping_taxed=True)
    set_rate("DE", None, 1900, reduced_rate_bps=700, shipping_taxed=True)
    vendors, variants = [], []
    for n, name in enumerate(("Books", "Games", "Teas")):
        vendor = onboarded_vendor(api, emulator, name)
        vendors.append(vendor)
        ids = [
            make_product(vendor, price_cents=price, stock=10_000, category=category).variants[0].id
            for price, category in zip(PRICES[n], ("Gear", "Food", "Toys"), strict=True)
        ]
        for variant_id, grams, category in zip(ids, WEIGHTS[n], CATEGORIES[n], strict=True):
            variant = update_variant(vendor.vendor.id, variant_id, weight_grams=grams)
            update_product(vendor.vendor.id, variant.product_id, tax_category=category)
        variants.append(ids)
    return Shop(vendors, variants, make_admin())


fee = st.integers(0, 1500)
tiers = st.lists(
    st.tuples(st.integers(1, 25_000), fee), min_size=1, max_size=4, unique_by=lambda t: t[0]
).map(lambda ts: [{"up_to_grams": g, "cents": c} for g, c in sorted(ts)])
shipping_terms = st.one_of(
    st.fixed_dictionaries({"mode": st.just("flat_per_order"), "flat_cents": fee}),
    st.fixed_dictionaries(
        {"mode": st.just("per_item"), "flat_cents": fee, "additional_cents": st.integers(0, 500)}
    ),
    st.fixed_dictionaries({"mode": st.just("weight_tiers"), "weight_tiers": tiers}),
).flatmap(
    lambda terms: st.fixed_dictionaries(
        {
            "free_over_cents": st.none() | st.integers(0, 12_000),
            "ships_to": st.sampled_from([[], ["US"], ["US", "DE", "FR"]]),
        }
    ).map(lambda extra: terms | extra)
)


@st.composite
def orders(draw: Any) -> dict[str, Any]:
    picks = draw(
        st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(1, 4)),
            min_size=1,
            max_size=5,
            unique_by=lambda pick: pick[:2],
        )
    )
    coupon = draw(
        st.none()
        | st.fixed_dictionaries(
            {
                "funder": st.sampled_from(["platform", 0, 1, 2]),
                "kind": st.just("percent"),
                "percent_bps": st.integers(1, 10_000),
            }
        )
        | st.fixed_dictionaries(
            {
                "funder": st.sampled_from(["platform", 0, 1, 2]),
                "kind": st.just("fixed"),
                "amount_cents": st.integers(1, 5000),
            }
        )
    )
    return {
        "picks": picks,
        "shipping": draw(st.lists(shipping_terms, min_size=3, max_size=3)),
        "coupon": coupon,
        "destination": draw(st.sampled_from(sorted(DESTINATIONS))),
        "prices_include_tax": draw(st.booleans()),
        "refund_batches": draw(st.integers(1, 3)),
        "include_shipping": draw(st.booleans()),
        "seed": draw(st.randoms(use_true_random=False)),
    }


def _set_shipping(api: Any, shop: Shop, terms: list[dict[str, Any]]) -> None:
    for vendor, term in zip(shop.vendors, terms, strict=True):
        answer = api.put("/vendor/shipping-rules", vendor.token, json=term)
        assert answer.status_code == 200, answer.get_json()


def _make_coupon(api: Any, shop: Shop, coupon: dict[str, Any] | None) -> str | None:
    if coupon is None:
        return None
    code = f"PROP{next(_codes)}"
    terms = {key: value for key, value in coupon.items() if key != "funder"}
    if coupon["funder"] == "platform":
        path, token = "/admin/coupons", shop.admin.token
    else:
        path, token = "/vendor/coupons", shop.vendors[coupon["funder"]].token
    created = api.post(path, token, json={"code": code, **terms})
    assert created.status_code == 201, created.get_json()
    return code


def _address(destination: str) -> dict[str, Any]:
    address = {"name": "Bea Buyer", "line1": "1 Main St", "city": "Springfield"}
    return address | {k: v for k, v in DESTINATIONS[destination].items() if v is not None}


AMOUNTS = ("subtotal_cents", "shipping_cents", "discount_cents", "tax_cents", "total_cents")


def _assert_adds_up(order: dict[str, Any], inclusive: bool) -> None:
    parts = order["vendor_orders"]
    for amount in AMOUNTS:
        assert order[amount] == sum(part[amount] for part in parts), amount
    for part in parts:
        assert part["total_cents"] == (
            part["subtotal_cents"]
            + part["shipping_cents"]
            + part["tax_cents"]
            - part["discount_cents"]
        )
        assert part["platform_fee_cents"] + part["vendor_earnings_cents"] == (
            part["total_cents"] - part["tax_cents"]
        )
        items = sum(item["line_total_cents"] for item in part["items"])
        if inclusive:  # the prices held the tax: the subtotal is net of the items' tax
            items -= sum(item["tax_cents"] for item in part["items"])
        assert part["subtotal_cents"] == items
        assert part["discount_cents"] == sum(item["discount_cents"] for item in part["items"])
        for name, value in part.items():
            if name.endswith("_cents") and value is not None:
                assert value >= 0, (name, value)


def _assert_quote_is_order(quote: dict[str, Any], order: dict[str, Any]) -> None:
    for amount in AMOUNTS:
        assert quote[amount] == order[amount], amount
    quoted = {part["vendor_id"]: part for part in quote["vendor_orders"]}
    for part in order["vendor_orders"]:
        for amount in AMOUNTS:
            assert quoted[part["vendor_id"]][amount] == part[amount], (part["vendor_id"], amount)


def _refund_in_batches(api: Any, seller: VendorAccount, part: dict[str, Any], example: Any) -> int:
    """Refund every unit of the part in random batches; returns what came back."""
    rng = example["seed"]
    units = [item["id"] for item in part["items"] for _ in range(item["quantity"])]
    rng.shuffle(units)
    cuts = sorted(rng.sample(range(1, len(units)), min(example["refund_batches"], len(units)) - 1))
    refunded = 0
    for n, batch in enumerate(
        units[start:end] for start, end in zip([0, *cuts], [*cuts, len(units)], strict=True)
    ):
        quantities: dict[int, int] = {}
        for item_id in batch:
            quantities[item_id] = quantities.get(item_id, 0) + 1
        body: dict[str, Any] = {
            "items": [{"order_item_id": i, "quantity": q} for i, q in quantities.items()],
            "reason": "property test",
        }
        query = "&".join(f"items={i}:{q}" for i, q in quantities.items())
        if example["include_shipping"] and n == 0:
            body["include_shipping"] = True
            query += "&include_shipping=true"
        preview = api.get(f"/vendor/orders/{part['id']}/refund-preview?{query}", seller.token)
        answer = api.post(f"/vendor/orders/{part['id']}/refund", seller.token, json=body)
        if preview.status_code == 409 or preview.get_json()["amount_cents"] == 0:
            # units a coupon made free (and no shipping with them): nothing to give back
            assert answer.status_code == 409, answer.get_json()
            assert answer.get_json()["error"]["code"] == "nothing_to_refund"
            event("a batch worth nothing to refund")
            continue
        assert answer.status_code == 201, answer.get_json()
        assert answer.get_json()["amount_cents"] == preview.get_json()["amount_cents"]
        refunded += answer.get_json()["amount_cents"]
        assert refunded <= part["total_cents"]
    return refunded


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=orders())
def test_random_orders_add_up_from_the_quote_to_the_last_refund(api, webhooks, example):
    shop = _shop(api, webhooks)
    _set_shipping(api, shop, example["shipping"])
    code = _make_coupon(api, shop, example["coupon"])
    buyer = make_buyer()
    for vendor, product, quantity in example["picks"]:
        added = api.post(
            "/cart/items",
            buyer.token,
            json={"variant_id": shop.variants[vendor][product], "quantity": quantity},
        )
        assert added.status_code in (200, 201), added.get_json()
    body: dict[str, Any] = {"shipping_address": _address(example["destination"])}
    if code:
        body["coupon_code"] = code
    if example["destination"] == "DE business":
        body["vat_number"] = VAT_NUMBER
    current_app.config["PRICES_INCLUDE_TAX"] = example["prices_include_tax"]
    event(f"to {example['destination']}")
    event("prices include tax" if example["prices_include_tax"] else "prices before tax")
    try:
        _order_pay_refund(api, webhooks, shop, buyer, body, example)
    finally:
        current_app.config["PRICES_INCLUDE_TAX"] = False


def _order_pay_refund(api, webhooks, shop, buyer, body, example) -> None:
    quoted = api.post("/checkout/quote", buyer.token, json=body)
    placed = api.post("/checkout", buyer.token, json=body, headers={"Idempotency-Key": "p"})
    if quoted.status_code == 422:
        # a coupon that fits none of the lines or too little, or a vendor that does not ship
        # there: the checkout says the same and places nothing
        error = quoted.get_json()["error"]
        assert error["code"] in ("coupon_not_applicable", "destination_not_served")
        assert placed.status_code == 422
        assert placed.get_json()["error"] == error
        assert api.get("/orders", buyer.token).get_json()["items"] == []
        event(f"refused: {error['code']} {error['details'].get('reason', '')}")
        return
    assert quoted.status_code == 200, quoted.get_json()
    if placed.status_code == 422 and placed.get_json()["error"]["code"] == "amount_not_chargeable":
        # a coupon made the order (nearly) free: below Stripe's minimum charge, nothing placed
        assert quoted.get_json()["total_cents"] < placed.get_json()["error"]["details"]["min_cents"]
        assert api.get("/orders", buyer.token).get_json()["items"] == []
        event("below the minimum charge")
        return
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    _assert_quote_is_order(quoted.get_json(), order)
    _assert_adds_up(order, example["prices_include_tax"])
    if "vat_number" in body:
        assert order["reverse_charge"] is True and order["tax_cents"] == 0
    if example["destination"] == "US-OR":
        assert order["tax_cents"] == 0  # no rate there

    intent = pay(placed.get_json())
    assert intent["status"] == "requires_capture"
    assert intent["amount"] == order["total_cents"]
    assert webhooks.flush_webhooks()
    paid = api.get(f"/orders/{order['id']}", buyer.token).get_json()
    assert paid["status"] == "paid"
    _assert_adds_up(paid, example["prices_include_tax"])

    sellers = {vendor.vendor.id: vendor for vendor in shop.vendors}
    refunded_total = 0
    for part in paid["vendor_orders"]:
        seller = sellers[part["vendor_id"]]
        shipped = api.post(f"/vendor/orders/{part['id']}/ship", seller.token, json=SHIP)
        assert shipped.status_code == 200, shipped.get_json()
        refunded = _refund_in_batches(api, seller, part, example)
        items_charged = part["total_cents"] - part["shipping_cents"] - _shipping_tax(part)
        expected = part["total_cents"] if example["include_shipping"] else items_charged
        assert refunded == expected, (refunded, part)
        refunded_total += refunded
    assert webhooks.flush_webhooks() is not None
    assert refunded_total <= paid["total_cents"]
    event("refunded" if paid["discount_cents"] == 0 else "refunded, with a discount")
    assert_books_match_stripe()


def _shipping_tax(part: dict[str, Any]) -> int:
    """The part's tax on shipping: its tax less its items' tax."""
    return part["tax_cents"] - sum(item.get("tax_cents", 0) for item in part["items"])


_opened: list[tuple[Any, Shop]] = []


def _shop(api: Any, emulator: Any) -> Shop:
    """One shop per test (its examples share it, each with its own buyer and coupon); the
    test's client is kept with it, so a later test's fresh database never gets a stale one."""
    if not _opened or _opened[0][0] is not api:
        _opened[:] = [(api, _open_shop(api, emulator))]
    return _opened[0][1]
