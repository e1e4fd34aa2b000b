"""Pricing of a cart: each vendor's lines, shipping, tax, commission and totals.

The checkout turns a `Quote` into the order's VendorOrders and OrderItems, and the quote a
buyer sees before ordering (cart page, checkout page, `POST /api/v1/checkout/quote`) is the
same function on the same lines, so the numbers shown are the numbers charged.

Rules: shipping is per vendor, by its shipping terms (catalog/shipping.py: flat per order,
per item or weight tiers, free once its items reach its threshold); tax is charged per line at
the destination's rate for the product's tax category (marketplace.orders.tax), and on each
vendor's shipping where the destination taxes shipping; commission is resolved per line
(vendor → category → platform) and taken on items only. With tax-inclusive prices the amounts
shown contain the tax: the quote keeps items and shipping net of it, so items + shipping + tax
− discount is still the total (docs/tax.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from typing_extensions import TypedDict

from marketplace.catalog import shipping
from marketplace.catalog.models import Variant, Vendor, VendorRefJson
from marketplace.catalog.shipping import ShippingTerms
from marketplace.coupons.pricing import CouponTerms, discounted_commission, line_discounts
from marketplace.money import apply_bps
from marketplace.orders import commission
from marketplace.orders.tax import TaxRates, tax_on


@dataclass(frozen=True)
class Line:
    """A line to price: `unit_price_cents` is the price the buyer saw (the cart keeps it)."""

    variant: Variant
    quantity: int
    unit_price_cents: int
    ref: int | None = None  # the cart item's id (or the variant's, in a guest cart)


@dataclass(frozen=True)
class LineQuote:
    ref: int | None
    variant_id: int
    product_id: int
    sku: str
    title: str  # the product's title with its options, as the order item keeps it
    product_title: str
    attributes: dict[str, Any]
    quantity: int
    available: int
    unit_price_cents: int
    line_total_cents: int
    tax_cents: int
    commission_bps: int
    platform_fee_cents: int
    discount_cents: int = 0  # this line's part of the coupon's discount


@dataclass(frozen=True)
class VendorQuote:
    vendor_id: int
    display_name: str
    lines: tuple[LineQuote, ...]
    subtotal_cents: int
    shipping_cents: int
    discount_cents: int
    tax_cents: int
    platform_fee_cents: int
    free_shipping_threshold_cents: int | None
    shipping_tax_cents: int = 0  # the part of tax_cents charged on shipping

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.shipping_cents + self.tax_cents - self.discount_cents

    @property
    def vendor_earnings_cents(self) -> int:
        """Items and shipping less discount and commission (tax stays with the platform)."""
        return (
            self.subtotal_cents
            + self.shipping_cents
            - self.discount_cents
            - self.platform_fee_cents
        )

    @property
    def free_shipping_remaining_cents(self) -> int | None:
        """How much more from this vendor ships free; None when shipping is free already or
        never is."""
        threshold = self.free_shipping_threshold_cents
        if threshold is None or self.shipping_cents == 0:
            return None
        # the items as priced (tax-inclusive prices: the subtotal is net of their tax)
        return threshold - sum(line.line_total_cents for line in self.lines)


@dataclass(frozen=True)
class Quote:
    currency: str
    tax_bps: int | None  # None: no address yet, so no tax in the totals
    vendors: tuple[VendorQuote, ...]
    coupon_code: str | None = None
    reverse_charge: bool = False  # an EU business buyer's VAT number: no VAT charged
    vat_number: str | None = None
    prices_include_tax: bool = False

    @property
    def lines(self) -> list[LineQuote]:
        return [line for vendor in self.vendors for line in vendor.lines]

    @property
    def subtotal_cents(self) -> int:
        return sum(v.subtotal_cents for v in self.vendors)

    @property
    def shipping_cents(self) -> int:
        return sum(v.shipping_cents for v in self.vendors)

    @property
    def discount_cents(self) -> int:
        return sum(v.discount_cents for v in self.vendors)

    @property
    def tax_cents(self) -> int:
        return sum(v.tax_cents for v in self.vendors)

    @property
    def total_cents(self) -> int:
        return sum(v.total_cents for v in self.vendors)


def item_title(variant: Variant) -> str:
    attributes = ", ".join(str(v) for v in (variant.attributes or {}).values())
    title = variant.product.title
    return f"{title} ({attributes})"[:255] if attributes else title[:255]


def price(
    lines: list[Line],
    currency: str,
    tax: TaxRates | int | None,
    platform_bps: int,
    *,
    coupon: CouponTerms | None = None,
    shipping_terms: Mapping[int, ShippingTerms] | None = None,
    prices_include_tax: bool = False,
) -> Quote:
    """Price `lines` grouped by vendor (vendors in id order, lines in the order given), less
    `coupon`'s discount (marketplace.coupons.pricing: tax is on the discounted amounts).
    Shipping follows `shipping_terms[vendor_id]` (the terms the buyer saw), else the vendor's
    current terms.

    `tax`: the destination's rates (a bare int is a standard rate alone; None: no address
    yet, no tax). `prices_include_tax`: unit prices and shipping fees contain the tax.

    :raises CouponNotApplicable: the coupon applies to none of the lines, or too little.
    """
    rates = TaxRates(tax) if isinstance(tax, int) else tax
    tax_bps = rates.standard_bps if rates is not None else None
    discounts = (
        line_discounts(coupon, lines, currency, lambda line: _commission_bps(line, platform_bps))
        if coupon
        else {}
    )
    by_vendor: dict[int, list[Line]] = {}
    for line in lines:
        by_vendor.setdefault(line.variant.vendor_id, []).append(line)
    vendors = []
    for vendor_id in sorted(by_vendor):
        vendor = by_vendor[vendor_id][0].variant.product.vendor
        priced = tuple(
            _price_line(
                line,
                vendor,
                rates,
                platform_bps,
                currency,
                coupon=coupon,
                discount_cents=discounts.get(id(line), 0),
                inclusive=prices_include_tax,
            )
            for line in by_vendor[vendor_id]
        )
        subtotal = sum(line.line_total_cents for line in priced)
        terms = _terms(vendor, shipping_terms)
        shipping_fee = shipping.shipping_cents(terms, subtotal, _weights(by_vendor[vendor_id]))
        shipping_tax = tax_on(
            shipping_fee, rates.shipping_bps if rates else 0, currency, inclusive=prices_include_tax
        )
        lines_tax = sum(line.tax_cents for line in priced)
        if prices_include_tax:  # the shown amounts held the tax: keep them net of it
            subtotal, shipping_fee = subtotal - lines_tax, shipping_fee - shipping_tax
        vendors.append(
            VendorQuote(
                vendor_id=vendor.id,
                display_name=vendor.display_name,
                lines=priced,
                subtotal_cents=subtotal,
                shipping_cents=shipping_fee,
                discount_cents=sum(line.discount_cents for line in priced),
                tax_cents=lines_tax + shipping_tax,
                platform_fee_cents=sum(line.platform_fee_cents for line in priced),
                free_shipping_threshold_cents=terms.free_over_cents,
                shipping_tax_cents=shipping_tax,
            )
        )
    return Quote(
        currency=currency,
        tax_bps=tax_bps,
        vendors=tuple(vendors),
        coupon_code=coupon.code if coupon else None,
        prices_include_tax=prices_include_tax,
    )


def _terms(vendor: Vendor, seen: Mapping[int, ShippingTerms] | None) -> ShippingTerms:
    terms = seen.get(vendor.id) if seen else None
    return terms if terms is not None else shipping.terms_of(vendor)


def _weights(lines: list[Line]) -> list[tuple[int, int]]:
    return [(line.quantity, line.variant.weight_grams or 0) for line in lines]


def _commission_bps(line: Line, platform_bps: int) -> int:
    product = line.variant.product
    return commission.resolve_bps(product.vendor, product.category, platform_bps)


def _price_line(
    line: Line,
    vendor: Vendor,
    rates: TaxRates | None,
    platform_bps: int,
    currency: str,
    *,
    coupon: CouponTerms | None = None,
    discount_cents: int = 0,
    inclusive: bool = False,
) -> LineQuote:
    variant = line.variant
    line_total = line.quantity * line.unit_price_cents
    bps = commission.resolve_bps(vendor, variant.product.category, platform_bps)
    tax_bps = rates.bps_for(getattr(variant.product, "tax_category", None)) if rates else 0
    tax_cents = tax_on(line_total - discount_cents, tax_bps, currency, inclusive=inclusive)
    if not inclusive:
        fee = apply_bps(line_total, bps)
        if coupon is not None and discount_cents:
            fee = discounted_commission(coupon, line_total, fee, discount_cents, bps)
    else:  # commission on the line net of the tax it contains
        fee = apply_bps(line_total - tax_on(line_total, tax_bps, currency, inclusive=True), bps)
        if coupon is not None and discount_cents:
            fee = (
                max(0, fee - discount_cents)
                if coupon.platform_funded
                else apply_bps(line_total - discount_cents - tax_cents, bps)
            )
    return LineQuote(
        ref=line.ref,
        variant_id=variant.id,
        product_id=variant.product_id,
        sku=variant.sku,
        title=item_title(variant),
        product_title=variant.product.title,
        attributes=dict(variant.attributes or {}),
        quantity=line.quantity,
        available=variant.available,
        unit_price_cents=line.unit_price_cents,
        line_total_cents=line_total,
        tax_cents=tax_cents,
        commission_bps=bps,
        platform_fee_cents=fee,
        discount_cents=discount_cents,
    )


class QuoteItemJson(TypedDict):
    variant_id: int
    product_id: int
    sku: str
    title: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    tax_cents: int
    discount_cents: int


class QuoteVendorJson(TypedDict):
    vendor_id: int
    vendor: VendorRefJson
    subtotal_cents: int
    shipping_cents: int
    discount_cents: int
    tax_cents: int
    shipping_tax_cents: int
    total_cents: int
    free_shipping_threshold_cents: int | None
    free_shipping_remaining_cents: int | None
    items: list[QuoteItemJson]


class QuoteJson(TypedDict):
    currency: str
    tax_rate_bps: int
    subtotal_cents: int
    discount_cents: int
    shipping_cents: int
    tax_cents: int
    total_cents: int
    vendor_orders: list[QuoteVendorJson]
    coupon_code: str | None
    reverse_charge: bool
    vat_number: str | None
    prices_include_tax: bool


def quote_json(quote: Quote) -> QuoteJson:
    """The API's quote: the order's amounts before it exists (commission is not shown)."""
    return {
        "currency": quote.currency,
        "tax_rate_bps": quote.tax_bps,
        "subtotal_cents": quote.subtotal_cents,
        "discount_cents": quote.discount_cents,
        "shipping_cents": quote.shipping_cents,
        "tax_cents": quote.tax_cents,
        "total_cents": quote.total_cents,
        "vendor_orders": [
            {
                "vendor_id": v.vendor_id,
                "vendor": {"id": v.vendor_id, "display_name": v.display_name},
                "subtotal_cents": v.subtotal_cents,
                "shipping_cents": v.shipping_cents,
                "discount_cents": v.discount_cents,
                "tax_cents": v.tax_cents,
                "shipping_tax_cents": v.shipping_tax_cents,
                "total_cents": v.total_cents,
                "free_shipping_threshold_cents": v.free_shipping_threshold_cents,
                "free_shipping_remaining_cents": v.free_shipping_remaining_cents,
                "items": [
                    {
                        "variant_id": line.variant_id,
                        "product_id": line.product_id,
                        "sku": line.sku,
                        "title": line.title,
                        "quantity": line.quantity,
                        "unit_price_cents": line.unit_price_cents,
                        "line_total_cents": line.line_total_cents,
                        "tax_cents": line.tax_cents,
                        "discount_cents": line.discount_cents,
                    }
                    for line in v.lines
                ],
            }
            for v in quote.vendors
        ],
        "coupon_code": quote.coupon_code,
        "reverse_charge": quote.reverse_charge,
        "vat_number": quote.vat_number,
        "prices_include_tax": quote.prices_include_tax,
    }
