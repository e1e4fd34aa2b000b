"""The shipping side of the checkout's checks (docs/shipping.md): every vendor ships to the
destination, and each vendor's shipping terms are the ones the buyer's cart was priced with.

Both work on what the checkout already loaded (the cart's lines, their variants and vendors),
so they cost no statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NotRequired

from typing_extensions import TypedDict

from marketplace.cart.models import CartItem
from marketplace.catalog import shipping
from marketplace.catalog.models import Variant, Vendor
from marketplace.catalog.shipping import ShippingTerms
from marketplace.db import db
from marketplace.errors import DomainError
from marketplace.orders.quote import Quote, item_title


class NotServedItemJson(TypedDict):
    variant_id: int
    title: str


class NotServedVendorJson(TypedDict):
    vendor_id: int
    display_name: str
    ships_to: list[str]  # the countries it does ship to
    items: list[NotServedItemJson]


class DestinationNotServedDetailsJson(TypedDict):
    """`details` of 422 `destination_not_served`."""

    country: str
    vendors: list[NotServedVendorJson]


class PriceChangeJson(TypedDict):
    variant_id: int
    old_price_cents: int
    new_price_cents: int


class ShippingChangeJson(TypedDict):
    vendor_id: int
    display_name: str
    old_shipping_cents: int  # the cart's shipping from this vendor under the terms it saw
    new_shipping_cents: int  # ... and under the vendor's terms now
    old_version: int
    new_version: int


class PriceChangedDetailsJson(TypedDict):
    """`details` of 409 `price_changed`: unit prices that moved, and vendors whose shipping
    terms did (only when one did)."""

    items: list[PriceChangeJson]
    vendors: NotRequired[list[ShippingChangeJson]]


class DestinationNotServed(DomainError):
    status, code = 422, "destination_not_served"
    message = "Some vendors in your cart do not ship to that country: remove their items first."


def _by_vendor(
    items: Iterable[CartItem], variants: dict[int, Variant]
) -> dict[int, list[CartItem]]:
    grouped: dict[int, list[CartItem]] = {}
    for item in items:
        grouped.setdefault(variants[item.variant_id].vendor_id, []).append(item)
    return dict(sorted(grouped.items()))


def _vendor(items: list[CartItem], variants: dict[int, Variant]) -> Vendor:
    return variants[items[0].variant_id].product.vendor


def check_destination(
    items: Iterable[CartItem], variants: dict[int, Variant], country: str
) -> None:
    """:raises DestinationNotServed: naming each vendor that does not ship to `country` and
    its items."""
    refused = []
    for vendor_id, lines in _by_vendor(items, variants).items():
        vendor = _vendor(lines, variants)
        terms = shipping.terms_of(vendor)
        if not terms.serves(country):
            refused.append(
                {
                    "vendor_id": vendor_id,
                    "display_name": vendor.display_name,
                    "ships_to": list(terms.ships_to),
                    "items": [
                        {
                            "variant_id": i.variant_id,
                            "title": item_title(variants[i.variant_id]),
                        }
                        for i in lines
                    ],
                }
            )
    if refused:
        raise DestinationNotServed(details={"country": country.upper(), "vendors": refused})


def explain(refused: DestinationNotServed) -> list[str]:
    """One sentence per vendor that does not ship there, naming its items (for pages)."""
    country = refused.details["country"]
    return [
        f"{v['display_name']} does not ship to {country} (it ships to "
        f"{', '.join(v['ships_to'])}): " + ", ".join(i["title"] for i in v["items"]) + "."
        for v in refused.details["vendors"]
    ]


def seen_terms(items: Iterable[CartItem], variants: dict[int, Variant]) -> dict[int, ShippingTerms]:
    """The terms each vendor's lines were priced with: the oldest a line of theirs remembers
    (checkout answers `price_changed` until every line saw the current ones); a line from
    before terms were remembered counts as having seen the current ones."""
    seen: dict[int, ShippingTerms] = {}
    for vendor_id, lines in _by_vendor(items, variants).items():
        remembered = [
            ShippingTerms.from_json(i.shipping_terms_seen)
            for i in lines
            if i.shipping_terms_seen is not None
        ]
        current = shipping.terms_of(_vendor(lines, variants))
        oldest = min(remembered, key=lambda terms: terms.version, default=current)
        # the same version is the same terms: read them from the vendor's row
        seen[vendor_id] = current if oldest.version == current.version else oldest
    return seen


def _cents(terms: ShippingTerms, lines: list[CartItem], variants: dict[int, Variant]) -> int:
    subtotal = sum(i.quantity * i.unit_price_cents for i in lines)
    weights = [(i.quantity, variants[i.variant_id].weight_grams or 0) for i in lines]
    return shipping.shipping_cents(terms, subtotal, weights)


def changed_terms(items: Iterable[CartItem], variants: dict[int, Variant]) -> list[dict[str, Any]]:
    """The vendors whose shipping terms changed since a line of theirs was priced, with the
    cart's shipping under the old and the new terms (`price_changed`'s `details.vendors`)."""
    changed = []
    for vendor_id, lines in _by_vendor(items, variants).items():
        vendor = _vendor(lines, variants)
        current = shipping.terms_of(vendor)
        stale = [
            ShippingTerms.from_json(i.shipping_terms_seen)
            for i in lines
            if i.shipping_terms_seen is not None
            and i.shipping_terms_seen.get("version") != current.version
        ]
        if not stale:
            continue
        old = min(stale, key=lambda terms: terms.version)
        changed.append(
            {
                "vendor_id": vendor_id,
                "display_name": vendor.display_name,
                "old_shipping_cents": _cents(old, lines, variants),
                "new_shipping_cents": _cents(current, lines, variants),
                "old_version": old.version,
                "new_version": current.version,
            }
        )
    return changed


def summaries(quote: Quote) -> dict[int, str]:
    """Each quoted vendor's shipping terms in words (where it ships, for a cart without an
    address yet). The vendors were loaded with the lines just priced: no statement."""
    found = {}
    for vendor_quote in quote.vendors:
        vendor = db.session.get(Vendor, vendor_quote.vendor_id)
        if vendor is not None:
            found[vendor.id] = shipping.summary(shipping.terms_of(vendor), quote.currency)
    return found
