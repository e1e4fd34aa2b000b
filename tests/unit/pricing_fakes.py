"""Plain objects standing in for vendors and variants, so that `orders.quote.price()` can be
driven by the property tests without a database (only the attributes pricing reads)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from marketplace.catalog.models import TaxCategory
from marketplace.catalog.shipping import ShippingTerms
from marketplace.orders.quote import Line


def fake_vendor(n: int, commission_bps: int, terms: ShippingTerms | None = None) -> Any:
    """Vendor n (id n + 1) with its commission and shipping terms (flat $4.99 by default)."""
    terms = terms or ShippingTerms(flat_cents=499)
    return SimpleNamespace(
        id=n + 1,
        display_name=f"V{n}",
        commission_bps=commission_bps,
        shipping_mode=terms.mode,
        shipping_flat_cents=terms.flat_cents,
        shipping_additional_cents=terms.additional_cents,
        shipping_weight_tiers=[list(tier) for tier in terms.weight_tiers],
        free_shipping_threshold_cents=terms.free_over_cents,
        ships_to=list(terms.ships_to),
        shipping_version=terms.version,
    )


def fake_line(
    index: int,
    seller: Any,
    unit_price_cents: int,
    quantity: int,
    *,
    weight_grams: int = 0,
    tax_category: TaxCategory = TaxCategory.STANDARD,
) -> Line:
    """Line `index` (its product, variant and ref are all index-based) sold by `seller`."""
    product = SimpleNamespace(
        id=index + 1,
        title=f"P{index}",
        vendor=seller,
        vendor_id=seller.id,
        category=None,
        tax_category=tax_category,
    )
    variant = SimpleNamespace(
        id=index + 1,
        product=product,
        product_id=product.id,
        vendor_id=seller.id,
        sku=f"S{index}",
        attributes={},
        available=99,
        weight_grams=weight_grams,
    )
    return Line(variant, quantity, unit_price_cents, ref=index)
