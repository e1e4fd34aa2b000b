"""Random carts × tax rates × tax categories × taxed shipping × each vendor's shipping rules
(flat, per item, weight tiers, free over) × an optional coupon, with prices before or including
tax, priced through `orders.quote.price()`: every VendorOrder adds
up (items + shipping + tax − discount = total), the order is the sum of its VendorOrders,
commission + vendor earnings is the vendor's share of the charge, no amount is negative, and
refunding any units in any batches never returns more than was charged, tax included."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.catalog.models import TaxCategory
from marketplace.catalog.shipping import ShippingTerms
from marketplace.coupons.pricing import CouponNotApplicable, CouponTerms
from marketplace.orders.quote import price
from marketplace.orders.tax import NO_TAX, TaxRates, tax_on
from marketplace.settlement.refunds import _item_share
from tests.unit.pricing_fakes import fake_line, fake_vendor

CATEGORIES = list(TaxCategory)

line_st = st.tuples(
    st.integers(0, 2),  # the vendor
    st.integers(1, 40_000),  # unit price
    st.integers(1, 6),  # quantity
    st.sampled_from(CATEGORIES),
    st.integers(0, 30_000),  # weight in grams
)
rates_st = st.one_of(
    st.none(),  # no address yet
    st.builds(
        TaxRates,
        standard_bps=st.integers(0, 5000),
        reduced_bps=st.one_of(st.none(), st.integers(0, 5000)),
        shipping_taxed=st.booleans(),
    ),
)
shipping_st = st.builds(
    ShippingTerms,
    mode=st.sampled_from(["flat_per_order", "per_item", "weight_tiers"]),
    flat_cents=st.integers(0, 2_000),
    additional_cents=st.integers(0, 1_000),
    weight_tiers=st.lists(
        st.tuples(st.integers(1, 40_000), st.integers(0, 3_000)), min_size=1, max_size=4
    ).map(lambda tiers: tuple(sorted(dict(tiers).items()))),
    free_over_cents=st.one_of(st.none(), st.integers(0, 20_000)),
)
vendor_st = st.tuples(
    st.integers(0, 10_000),  # commission bps (up to 100 %)
    shipping_st,  # the vendor's shipping rules
)
terms_st = st.one_of(
    st.none(),
    st.builds(
        CouponTerms,
        code=st.just("C"),
        kind=st.sampled_from(["percent", "fixed"]),
        value=st.integers(1, 100_000),
        vendor_id=st.one_of(st.none(), st.integers(1, 3)),
    ).filter(lambda t: t.kind == "fixed" or t.value <= 10_000),
)


def _lines(raw, vendors_raw):
    vendors = [fake_vendor(n, bps, terms) for n, (bps, terms) in enumerate(vendors_raw)]
    return [
        fake_line(index, vendors[v], unit, quantity, weight_grams=grams, tax_category=category)
        for index, (v, unit, quantity, category, grams) in enumerate(raw)
    ]


def _item(line):
    """The OrderItem the checkout would write for a priced line."""
    return SimpleNamespace(
        quantity=line.quantity,
        refunded_quantity=0,
        unit_price_cents=line.unit_price_cents,
        line_total_cents=line.line_total_cents,
        tax_cents=line.tax_cents,
        discount_cents=line.discount_cents,
        platform_fee_cents=line.platform_fee_cents,
    )


@settings(max_examples=500, deadline=None)
@given(
    raw=st.lists(line_st, min_size=1, max_size=7),
    vendors_raw=st.lists(vendor_st, min_size=3, max_size=3),
    rates=rates_st,
    terms=terms_st,
    inclusive=st.booleans(),
    batches=st.lists(st.integers(0, 6), min_size=7, max_size=7),
    currency=st.sampled_from(["usd", "jpy", "kwd"]),
)
def test_random_carts_add_up_to_the_cent(
    raw, vendors_raw, rates, terms, inclusive, batches, currency
):
    if currency == "kwd":  # three decimals: prices in whole tens, as the shop takes them
        raw = [(v, unit * 10, q, c, g) for v, unit, q, c, g in raw]
        vendors_raw = [(b, _in_tens(terms)) for b, terms in vendors_raw]
    lines = _lines(raw, vendors_raw)
    try:
        quote = price(lines, currency, rates, 1000, coupon=terms, prices_include_tax=inclusive)
    except CouponNotApplicable:
        return
    plain = price(lines, currency, rates, 1000, prices_include_tax=inclusive)

    # The order is the sum of its VendorOrders.
    assert quote.total_cents == sum(v.total_cents for v in quote.vendors)
    assert quote.total_cents == (
        quote.subtotal_cents + quote.shipping_cents + quote.tax_cents - quote.discount_cents
    )
    assert quote.tax_bps == (rates.standard_bps if rates else None)
    for vendor, before in zip(quote.vendors, plain.vendors, strict=True):
        # items + shipping + tax − discount = total
        assert vendor.total_cents == (
            vendor.subtotal_cents + vendor.shipping_cents + vendor.tax_cents - vendor.discount_cents
        )
        assert vendor.tax_cents == sum(line.tax_cents for line in vendor.lines) + (
            vendor.shipping_tax_cents
        )
        # commission + vendor earnings = the vendor's share of the charge (all but the tax)
        assert vendor.platform_fee_cents + vendor.vendor_earnings_cents == (
            vendor.total_cents - vendor.tax_cents
        )
        amounts = [
            vendor.subtotal_cents,
            vendor.shipping_cents,
            vendor.discount_cents,
            vendor.tax_cents,
            vendor.shipping_tax_cents,
            vendor.total_cents,
            vendor.platform_fee_cents,
            vendor.vendor_earnings_cents,
        ]
        for line in vendor.lines:
            amounts += [line.tax_cents, line.discount_cents, line.platform_fee_cents]
            assert line.discount_cents <= line.line_total_cents
            category_bps = rates.bps_for(line_category(line, lines)) if rates else 0
            if category_bps == 0:
                assert line.tax_cents == 0  # exempt, or a zero rate: no tax
        assert min(amounts) >= 0, amounts
        assert vendor.shipping_tax_cents <= vendor.tax_cents
        if rates is None or not rates.shipping_taxed:
            assert vendor.shipping_tax_cents == 0
        if inclusive:  # the buyer pays what was shown: the prices and the shipping fee
            shown = sum(line.line_total_cents for line in vendor.lines)
            assert (
                vendor.total_cents
                == shown
                + before.shipping_cents
                + before.shipping_tax_cents
                - (vendor.discount_cents)
            )
        elif rates is not None:
            assert vendor.shipping_tax_cents == tax_on(
                vendor.shipping_cents, rates.shipping_bps, currency
            )
        # Shipping is never discounted by a coupon.
        assert vendor.shipping_cents == before.shipping_cents

        # Refunds of any units, in any batches, never return more than was charged.
        refunded = refunded_tax = 0
        for index, line in enumerate(vendor.lines):
            item = _item(line)
            left = item.quantity
            for _ in range(3):
                quantity = min(left, batches[index % len(batches)] or 1)
                if quantity <= 0:
                    break
                value = item.unit_price_cents * quantity - _item_share(
                    item.discount_cents, item, quantity
                )
                tax = _item_share(item.tax_cents, item, quantity)
                if inclusive:
                    value -= tax
                assert value >= 0 and tax >= 0
                refunded += value + tax
                refunded_tax += tax
                item.refunded_quantity += quantity
                left -= quantity
        assert refunded_tax <= vendor.tax_cents
        assert refunded <= vendor.total_cents
        # Everything refunded, shipping and its tax as well, is exactly the charge.
        if all(_fully(line, batches, i) for i, line in enumerate(vendor.lines)):
            assert (
                refunded + vendor.shipping_cents + vendor.shipping_tax_cents == vendor.total_cents
            )


def _in_tens(terms: ShippingTerms) -> ShippingTerms:
    """The terms' amounts in whole tens (a three-decimal currency's step)."""
    return replace(
        terms,
        flat_cents=terms.flat_cents * 10,
        additional_cents=terms.additional_cents * 10,
        weight_tiers=tuple((grams, cents * 10) for grams, cents in terms.weight_tiers),
        free_over_cents=None if terms.free_over_cents is None else terms.free_over_cents * 10,
    )


def line_category(line, lines):
    return next(item.variant.product.tax_category for item in lines if item.ref == line.ref)


def _fully(line, batches, index):
    step = batches[index % len(batches)] or 1
    return min(line.quantity, step * 3) >= line.quantity


@settings(max_examples=200, deadline=None)
@given(raw=st.lists(line_st, min_size=1, max_size=5), vendors_raw=st.lists(vendor_st, min_size=3))
def test_the_reverse_charge_rates_tax_nothing(raw, vendors_raw):
    quote = price(_lines(raw, vendors_raw[:3]), "usd", NO_TAX, 1000)
    assert quote.tax_cents == 0 and all(v.shipping_tax_cents == 0 for v in quote.vendors)


def test_a_bare_rate_is_the_standard_rate_alone():
    lines = _lines(
        [(0, 1000, 1, TaxCategory.REDUCED, 0)], [(1000, ShippingTerms(flat_cents=500))] * 3
    )
    quote = price(lines, "usd", 800, 1000)
    assert quote.tax_cents == 80 and quote.vendors[0].shipping_tax_cents == 0
    assert replace(quote, reverse_charge=True).total_cents == quote.total_cents
