"""Shipping terms (marketplace/catalog/shipping.py): each mode at its boundaries, the terms'
validation, and property tests over random carts × random terms (with and without a coupon,
at random tax) priced through `orders.quote.price()`: the order total is the sum of its
VendorOrders, each VendorOrder's items + shipping + tax − discount is its total, commission +
vendor earnings is the vendor's share of the charge, and no amount is negative."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.catalog.shipping import (
    ShippingTerms,
    shipping_cents,
    summary,
    validated,
)
from marketplace.coupons.pricing import CouponNotApplicable, CouponTerms
from marketplace.errors import ValidationFailed
from tests.unit.pricing_fakes import fake_line, fake_vendor

FLAT = ShippingTerms(flat_cents=599)
PER_ITEM = ShippingTerms(mode="per_item", flat_cents=500, additional_cents=150)
TIERS = ShippingTerms(mode="weight_tiers", weight_tiers=((500, 400), (2000, 900), (10_000, 2500)))


def test_flat_per_order_is_one_fee_whatever_the_cart():
    assert shipping_cents(FLAT, 100, [(1, 0)]) == 599
    assert shipping_cents(FLAT, 100_000, [(9, 5000), (3, 10)]) == 599


def test_per_item_charges_the_first_unit_then_each_additional():
    assert shipping_cents(PER_ITEM, 1000, [(1, 0)]) == 500
    assert shipping_cents(PER_ITEM, 1000, [(2, 0)]) == 650
    assert shipping_cents(PER_ITEM, 1000, [(2, 0), (3, 0)]) == 500 + 4 * 150
    assert shipping_cents(PER_ITEM, 0, []) == 0


@pytest.mark.parametrize(
    ("lines", "cents"),
    [
        ([(1, 0)], 400),  # weightless items are the lightest tier
        ([(1, 500)], 400),  # up to and including the tier's weight
        ([(1, 501)], 900),
        ([(2, 1000)], 900),
        ([(1, 2001)], 2500),
        ([(1, 10_000)], 2500),
        ([(3, 10_000)], 2500),  # above the heaviest tier: the heaviest tier's fee
        ([(1, 300), (1, 250)], 900),  # the lines' total weight
    ],
)
def test_weight_tiers_take_the_first_tier_that_holds_the_weight(lines, cents):
    assert shipping_cents(TIERS, 1, lines) == cents


@pytest.mark.parametrize("terms", [FLAT, PER_ITEM, TIERS])
def test_free_over_starts_exactly_at_the_threshold(terms):
    terms = replace(terms, free_over_cents=5000)
    assert shipping_cents(terms, 4999, [(1, 100)]) > 0
    assert shipping_cents(terms, 5000, [(1, 100)]) == 0
    assert shipping_cents(terms, 5001, [(1, 100)]) == 0


def test_ships_to_empty_is_everywhere():
    assert ShippingTerms().serves("DE")
    only = ShippingTerms(ships_to=("CA", "US"))
    assert only.serves("us") and not only.serves("DE")


def test_terms_round_trip_through_json():
    terms = replace(TIERS, free_over_cents=7500, ships_to=("US",), version=4)
    assert ShippingTerms.from_json(terms.to_json()) == terms


def test_validation_names_each_bad_field():
    with pytest.raises(ValidationFailed) as refused:
        validated(
            {
                "mode": "by_distance",
                "flat_cents": -1,
                "free_over_cents": 10**12,
                "weight_tiers": [
                    {"up_to_grams": 500, "cents": 1},
                    {"up_to_grams": 400, "cents": 2},
                ],
                "ships_to": ["USA", "de"],
            }
        )
    assert set(refused.value.details["fields"]) == {
        "mode",
        "flat_cents",
        "free_over_cents",
        "weight_tiers[1].up_to_grams",
        "ships_to[0]",
    }
    with pytest.raises(ValidationFailed) as refused:
        validated({"mode": "weight_tiers"})
    assert set(refused.value.details["fields"]) == {"weight_tiers"}


def test_validation_normalises_countries():
    terms = validated({"ships_to": ["us", "CA", "US"], "flat_cents": 100})
    assert terms.ships_to == ("CA", "US") and terms.version == 1


def test_summary_says_how_and_where():
    assert summary(replace(FLAT, free_over_cents=7500), "usd") == (
        "$5.99 per order; free over $75.00; ships to everywhere"
    )
    assert "each additional" in summary(PER_ITEM, "usd")
    assert "ships to CA, US" in summary(replace(TIERS, ships_to=("CA", "US")), "usd")


# --- random carts × random terms through price() ---------------------------------------------

tiers_st = st.lists(
    st.tuples(st.integers(1, 20_000), st.integers(0, 5000)), min_size=1, max_size=4
).map(lambda tiers: tuple(sorted({g: c for g, c in tiers}.items())))
shipping_st = st.builds(
    ShippingTerms,
    mode=st.sampled_from(["flat_per_order", "per_item", "weight_tiers"]),
    flat_cents=st.integers(0, 5000),
    additional_cents=st.integers(0, 2000),
    weight_tiers=tiers_st,
    free_over_cents=st.one_of(st.none(), st.integers(0, 100_000)),
    ships_to=st.just(()),
)
coupon_st = st.one_of(
    st.none(),
    st.builds(
        CouponTerms,
        code=st.just("C"),
        kind=st.sampled_from(["percent", "fixed"]),
        value=st.integers(min_value=1, max_value=200_000),
        vendor_id=st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
    ).filter(lambda t: t.kind == "fixed" or t.value <= 10_000),
)
line_st = st.tuples(
    st.integers(0, 2),  # the vendor
    st.integers(1, 30_000),  # unit price
    st.integers(1, 5),  # quantity
    st.integers(0, 30_000),  # unit weight in grams
)


def _cart(raw, vendors):
    return [
        fake_line(index, vendors[n], unit_price, quantity, weight_grams=grams)
        for index, (n, unit_price, quantity, grams) in enumerate(raw)
    ]


@settings(max_examples=300, deadline=None)
@given(
    raw=st.lists(line_st, min_size=1, max_size=7),
    rules=st.lists(shipping_st, min_size=3, max_size=3),
    vendor_bps=st.lists(st.integers(0, 3000), min_size=3, max_size=3),
    tax_bps=st.one_of(st.none(), st.integers(0, 2500)),
    coupon=coupon_st,
    seen_old=st.booleans(),
)
def test_random_carts_under_random_shipping_rules_add_up(
    raw, rules, vendor_bps, tax_bps, coupon, seen_old
):
    from marketplace.orders.quote import price

    vendors = [
        fake_vendor(n, bps, terms)
        for n, (bps, terms) in enumerate(zip(vendor_bps, rules, strict=True))
    ]
    lines = _cart(raw, vendors)
    # the terms passed in win over the vendor's own (the terms the buyer saw)
    seen = {v.id: replace(rules[(v.id) % 3], version=2) for v in vendors} if seen_old else None
    try:
        quote = price(lines, "usd", tax_bps, 1000, coupon=coupon, shipping_terms=seen)
    except CouponNotApplicable as refused:
        assert coupon is not None and refused.reason in {"out_of_scope", "below_minimum"}
        return
    plain = price(lines, "usd", tax_bps, 1000, shipping_terms=seen)

    assert quote.total_cents == sum(v.total_cents for v in quote.vendors)
    assert quote.shipping_cents == sum(v.shipping_cents for v in quote.vendors)
    for vendor, before in zip(quote.vendors, plain.vendors, strict=True):
        terms = (seen or {}).get(vendor.vendor_id) or rules[vendor.vendor_id - 1]
        mine = [line for line in lines if line.variant.vendor_id == vendor.vendor_id]
        assert vendor.subtotal_cents == sum(line.quantity * line.unit_price_cents for line in mine)
        assert vendor.shipping_cents == shipping_cents(
            terms, vendor.subtotal_cents, [(x.quantity, x.variant.weight_grams) for x in mine]
        )
        assert vendor.shipping_cents == before.shipping_cents  # coupons never touch shipping
        assert vendor.total_cents == (
            vendor.subtotal_cents + vendor.shipping_cents + vendor.tax_cents - vendor.discount_cents
        )
        share = vendor.total_cents - vendor.tax_cents  # the tax stays with the platform
        assert vendor.platform_fee_cents + vendor.vendor_earnings_cents == share
        assert (
            min(
                vendor.subtotal_cents,
                vendor.shipping_cents,
                vendor.tax_cents,
                vendor.discount_cents,
                vendor.platform_fee_cents,
                vendor.vendor_earnings_cents,
                vendor.total_cents,
            )
            >= 0
        )
        assert vendor.free_shipping_threshold_cents == terms.free_over_cents
        if tax_bps is None:
            assert vendor.tax_cents == 0
        if terms.free_over_cents is not None and vendor.subtotal_cents >= terms.free_over_cents:
            assert vendor.shipping_cents == 0
