"""A coupon's discount split over lines and VendorOrders, as property tests: the parts add up to
the discount, none is negative or more than its line, a platform coupon never takes more than
the commission of a VendorOrder, and refunds of any units never return more than was paid."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.coupons.pricing import (
    CouponNotApplicable,
    CouponTerms,
    EligibleLine,
    allocate,
    discount_total,
    discounted_commission,
)
from marketplace.money import apply_bps
from marketplace.settlement.refunds import _item_share
from tests.unit.pricing_fakes import fake_line, fake_vendor

line_st = st.tuples(
    st.integers(min_value=0, max_value=3),  # the vendor
    st.integers(min_value=1, max_value=50_000),  # unit price
    st.integers(min_value=1, max_value=7),  # quantity
    st.integers(min_value=0, max_value=3000),  # commission bps
)
terms_st = st.builds(
    CouponTerms,
    code=st.just("C"),
    kind=st.sampled_from(["percent", "fixed"]),
    value=st.integers(min_value=1, max_value=200_000),
    vendor_id=st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
).filter(lambda t: t.kind == "fixed" or t.value <= 10_000)


@settings(max_examples=400, deadline=None)
@given(terms=terms_st, raw=st.lists(line_st, min_size=1, max_size=8), tax_bps=st.integers(0, 2500))
def test_allocation_adds_up_and_stays_within_each_line(terms, raw, tax_bps):
    lines = [
        (vendor, price, qty, bps, EligibleLine(price * qty, apply_bps(price * qty, bps)))
        for vendor, price, qty, bps in raw
        if terms.vendor_id is None or vendor == terms.vendor_id
    ]
    eligible = [line for *_, line in lines]
    try:
        discount = discount_total(terms, eligible, "usd")
    except CouponNotApplicable as refused:
        assert refused.reason == "out_of_scope" and not eligible
        return
    parts = allocate(terms, eligible, discount)

    assert sum(parts) == discount >= 0
    assert discount <= sum(line.amount_cents for line in eligible)
    if terms.kind == "fixed":
        assert discount <= terms.value
    fee_by_vendor: dict[int, int] = {}
    part_by_vendor: dict[int, int] = {}
    for (vendor, _price, _qty, bps, line), part in zip(lines, parts, strict=True):
        assert 0 <= part <= line.amount_cents
        fee = discounted_commission(terms, line.amount_cents, line.commission_cents, part, bps)
        earnings = line.amount_cents - part - fee
        assert fee >= 0 and earnings >= 0
        if terms.platform_funded:  # the vendor earns what it would without the coupon
            assert earnings == line.amount_cents - line.commission_cents
        fee_by_vendor[vendor] = fee_by_vendor.get(vendor, 0) + line.commission_cents
        part_by_vendor[vendor] = part_by_vendor.get(vendor, 0) + part
        assert apply_bps(line.amount_cents - part, tax_bps) <= apply_bps(line.amount_cents, tax_bps)
    if terms.platform_funded:
        for vendor, part in part_by_vendor.items():
            assert part <= fee_by_vendor[vendor]


@settings(max_examples=300, deadline=None)
@given(
    quantity=st.integers(min_value=1, max_value=12),
    unit=st.integers(min_value=1, max_value=20_000),
    discount_share=st.floats(min_value=0, max_value=1),
    batches=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=12),
)
def test_refunds_of_any_units_never_return_more_than_was_paid(
    quantity, unit, discount_share, batches
):
    line_total = unit * quantity
    discount = int(line_total * discount_share)
    item = SimpleNamespace(quantity=quantity, refunded_quantity=0, discount_cents=discount)
    refunded = 0
    for batch in batches:
        left = item.quantity - item.refunded_quantity
        if left == 0:
            break
        units = min(batch, left)
        paid_back = unit * units - _item_share(discount, item, units)
        assert paid_back >= 0
        refunded += paid_back
        item.refunded_quantity += units
        assert refunded <= line_total - discount
    if item.refunded_quantity == quantity:  # all of it: exactly what was charged
        assert refunded == line_total - discount


def test_below_the_minimum_and_the_window():
    from datetime import UTC, datetime, timedelta

    terms = CouponTerms(code="C", kind="fixed", value=500, vendor_id=None, min_order_cents=5000)
    with pytest.raises(CouponNotApplicable) as below:
        discount_total(terms, [EligibleLine(4999, 500)], "usd")
    assert below.value.reason == "below_minimum"
    assert discount_total(terms, [EligibleLine(5000, 300)], "usd") == 300  # the commission caps it
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window = CouponTerms(
        code="C", kind="fixed", value=1, vendor_id=None, starts_at=now, ends_at=now + timedelta(1)
    )
    for moment, reason in (
        (now - timedelta(seconds=1), "not_started"),
        (now + timedelta(1), "expired"),
    ):
        with pytest.raises(CouponNotApplicable) as refused:
            window.check_window(moment)
        assert refused.value.reason == reason
    window.check_window(now)


def _cart(raw, vendor_bps):
    """`orders.quote.Line`s over plain objects: (vendor, price, quantity) each; vendor n has
    commission `vendor_bps[n]` and $4.99 shipping."""
    vendors = [fake_vendor(n, bps) for n, bps in enumerate(vendor_bps)]
    return [
        fake_line(index, vendors[vendor % len(vendors)], price, quantity)
        for index, (vendor, price, quantity) in enumerate(raw)
    ]


@settings(max_examples=200, deadline=None)
@given(
    terms=terms_st,
    raw=st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 30_000), st.integers(1, 5)),
        min_size=1,
        max_size=6,
    ),
    vendor_bps=st.lists(st.integers(0, 3000), min_size=3, max_size=3),
    tax_bps=st.integers(0, 2500),
)
def test_random_carts_priced_with_a_coupon_add_up_per_vendor_order(terms, raw, vendor_bps, tax_bps):
    from dataclasses import replace

    from marketplace.orders.quote import price

    if terms.vendor_id is not None:
        terms = replace(terms, vendor_id=terms.vendor_id % 3 + 1)
    lines = _cart(raw, vendor_bps)
    plain = price(lines, "usd", tax_bps, 1000)
    try:
        quote = price(lines, "usd", tax_bps, 1000, coupon=terms)
    except CouponNotApplicable as refused:
        assert refused.reason == "out_of_scope"
        return
    assert quote.total_cents == sum(v.total_cents for v in quote.vendors)
    assert quote.total_cents == (
        quote.subtotal_cents + quote.shipping_cents + quote.tax_cents - quote.discount_cents
    )
    for vendor, before in zip(quote.vendors, plain.vendors, strict=True):
        assert vendor.discount_cents == sum(line.discount_cents for line in vendor.lines)
        assert vendor.shipping_cents == before.shipping_cents  # never on shipping
        assert vendor.tax_cents <= before.tax_cents  # tax on the discounted lines
        assert min(vendor.platform_fee_cents, vendor.vendor_earnings_cents, vendor.total_cents) >= 0
        assert vendor.platform_fee_cents + vendor.vendor_earnings_cents == (
            vendor.subtotal_cents + vendor.shipping_cents - vendor.discount_cents
        )
        if terms.platform_funded:
            assert vendor.discount_cents <= before.platform_fee_cents
            assert vendor.vendor_earnings_cents == before.vendor_earnings_cents
        elif vendor.vendor_id != terms.vendor_id:
            assert vendor.discount_cents == 0
