"""A vendor's shipping terms and the fee they charge (docs/shipping.md).

Pure pricing (`shipping_cents`) plus the terms' validation and their one writer
(`set_terms`). The terms live on the vendor's row (`Vendor.shipping_*`, `ships_to`), so every
statement that loads a line's vendor for pricing already reads them.

Modes:
- `flat_per_order`: `flat_cents` once per order from this vendor.
- `per_item`: `flat_cents` for the first unit, `additional_cents` for each further unit.
- `weight_tiers`: the cents of the first tier whose `up_to_grams` holds the vendor's lines'
  total weight (unit `weight_grams` × quantity); heavier than the heaviest tier pays the
  heaviest tier.

`free_over_cents`: shipping is 0 once the vendor's item subtotal (before any coupon) reaches
it. `ships_to`: the ISO 3166-1 countries the vendor ships to; empty means everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from typing_extensions import TypedDict

from marketplace.catalog.models import Vendor
from marketplace.db import db, transaction
from marketplace.errors import NotFound, ValidationFailed
from marketplace.money import format_money

FLAT_PER_ORDER, PER_ITEM, WEIGHT_TIERS = "flat_per_order", "per_item", "weight_tiers"
MODES = (FLAT_PER_ORDER, PER_ITEM, WEIGHT_TIERS)
MAX_TIERS = 10
MAX_COUNTRIES = 250
MAX_CENTS = 10_000_000  # as a variant's price: more is a typo
MAX_GRAMS = 100_000_000  # a heaviest tier may reach a whole cart of the heaviest items


@dataclass(frozen=True)
class ShippingTerms:
    mode: str = FLAT_PER_ORDER
    flat_cents: int = 0  # per order; per_item: the first unit
    additional_cents: int = 0  # per_item: each unit after the first
    weight_tiers: tuple[tuple[int, int], ...] = ()  # (up_to_grams, cents), lightest first
    free_over_cents: int | None = None
    ships_to: tuple[str, ...] = ()  # empty: everywhere
    version: int = 1

    def serves(self, country: str) -> bool:
        return not self.ships_to or country.upper() in self.ships_to

    def to_json(self) -> ShippingTermsJson:
        return {
            "mode": self.mode,
            "flat_cents": self.flat_cents,
            "additional_cents": self.additional_cents,
            "weight_tiers": [{"up_to_grams": g, "cents": c} for g, c in self.weight_tiers],
            "free_over_cents": self.free_over_cents,
            "ships_to": list(self.ships_to),
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShippingTerms:
        return cls(
            mode=data["mode"],
            flat_cents=data["flat_cents"],
            additional_cents=data["additional_cents"],
            weight_tiers=tuple((t["up_to_grams"], t["cents"]) for t in data["weight_tiers"]),
            free_over_cents=data["free_over_cents"],
            ships_to=tuple(data["ships_to"]),
            version=data["version"],
        )


class WeightTierJson(TypedDict):
    up_to_grams: int
    cents: int


class ShippingTermsJson(TypedDict):
    mode: str
    flat_cents: int
    additional_cents: int
    weight_tiers: list[WeightTierJson]
    free_over_cents: int | None
    ships_to: list[str]
    version: int


def shipping_cents(
    terms: ShippingTerms, subtotal_cents: int, lines: Iterable[tuple[int, int]]
) -> int:
    """The fee for one vendor's part of an order: `lines` are `(quantity, unit weight_grams)`,
    `subtotal_cents` its items' total before any coupon. Never negative."""
    if terms.free_over_cents is not None and subtotal_cents >= terms.free_over_cents:
        return 0
    lines = list(lines)
    if terms.mode == PER_ITEM:
        units = sum(quantity for quantity, _ in lines)
        return 0 if units <= 0 else terms.flat_cents + (units - 1) * terms.additional_cents
    if terms.mode == WEIGHT_TIERS:
        if not terms.weight_tiers:
            return terms.flat_cents
        grams = sum(quantity * weight for quantity, weight in lines)
        for up_to, cents in terms.weight_tiers:
            if grams <= up_to:
                return cents
        return terms.weight_tiers[-1][1]
    return terms.flat_cents


def terms_of(vendor: Vendor) -> ShippingTerms:
    """The vendor's current terms, from the columns already loaded with it."""
    return ShippingTerms(
        mode=vendor.shipping_mode or FLAT_PER_ORDER,
        flat_cents=vendor.shipping_flat_cents or 0,
        additional_cents=vendor.shipping_additional_cents or 0,
        weight_tiers=tuple((int(g), int(c)) for g, c in (vendor.shipping_weight_tiers or [])),
        free_over_cents=vendor.free_shipping_threshold_cents,
        ships_to=tuple(vendor.ships_to or ()),
        version=vendor.shipping_version or 1,
    )


def summary(terms: ShippingTerms, currency: str) -> str:
    """The terms in a few words, for the cart and the vendor's pages."""

    def money(cents: int) -> str:
        return format_money(cents, currency)

    if terms.mode == PER_ITEM:
        text = f"{money(terms.flat_cents)} for the first item"
        if terms.additional_cents:
            text += f", {money(terms.additional_cents)} each additional"
        else:
            text += ", further items free"
    elif terms.mode == WEIGHT_TIERS and terms.weight_tiers:
        text = "By weight: " + ", ".join(
            f"up to {grams / 1000:g} kg {money(cents)}" for grams, cents in terms.weight_tiers
        )
    elif terms.flat_cents:
        text = f"{money(terms.flat_cents)} per order"
    else:
        text = "Free shipping"
    if terms.free_over_cents is not None and (terms.flat_cents or terms.mode != FLAT_PER_ORDER):
        text += f"; free over {money(terms.free_over_cents)}"
    text += "; ships to " + (", ".join(terms.ships_to) if terms.ships_to else "everywhere")
    return text


def _whole(fields: dict[str, str], name: str, value: Any, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        fields[name] = f"must be a whole number from 0 to {high}"
        return None
    return value


def validated(data: Mapping[str, Any]) -> ShippingTerms:
    """Terms from a request's fields (`mode`, `flat_cents`, `additional_cents`, `weight_tiers`
    as `[{"up_to_grams", "cents"}]`, `free_over_cents` or null, `ships_to`), version 1.

    :raises ValidationFailed: naming each bad field.
    """
    fields: dict[str, str] = {}
    mode = data.get("mode", FLAT_PER_ORDER)
    if mode not in MODES:
        fields["mode"] = "must be one of " + ", ".join(MODES)
    flat = _whole(fields, "flat_cents", data.get("flat_cents", 0), MAX_CENTS)
    additional = _whole(fields, "additional_cents", data.get("additional_cents", 0), MAX_CENTS)
    free_over = data.get("free_over_cents")
    if free_over is not None:
        free_over = _whole(fields, "free_over_cents", free_over, MAX_CENTS)
    tiers: list[tuple[int, int]] = []
    raw_tiers = data.get("weight_tiers", [])
    if not isinstance(raw_tiers, list) or len(raw_tiers) > MAX_TIERS:
        fields["weight_tiers"] = f"must be a list of at most {MAX_TIERS} tiers"
    else:
        for i, tier in enumerate(raw_tiers):
            if not isinstance(tier, Mapping):
                fields[f"weight_tiers[{i}]"] = "must be an object with up_to_grams and cents"
                continue
            grams = _whole(
                fields, f"weight_tiers[{i}].up_to_grams", tier.get("up_to_grams"), MAX_GRAMS
            )
            cents = _whole(fields, f"weight_tiers[{i}].cents", tier.get("cents"), MAX_CENTS)
            if grams is not None and cents is not None:
                if tiers and grams <= tiers[-1][0]:
                    fields[f"weight_tiers[{i}].up_to_grams"] = (
                        "must be heavier than the tier before"
                    )
                tiers.append((grams, cents))
        if mode == WEIGHT_TIERS and not raw_tiers:
            fields["weight_tiers"] = "needs at least one tier in weight_tiers mode"
    countries: list[str] = []
    raw_countries = data.get("ships_to", [])
    if not isinstance(raw_countries, list) or len(raw_countries) > MAX_COUNTRIES:
        fields["ships_to"] = f"must be a list of at most {MAX_COUNTRIES} country codes"
    else:
        for i, country in enumerate(raw_countries):
            if not (
                isinstance(country, str)
                and len(country) == 2
                and country.isascii()
                and country.isalpha()
            ):
                fields[f"ships_to[{i}]"] = "must be an ISO 3166-1 alpha-2 code"
            elif country.upper() not in countries:
                countries.append(country.upper())
    if fields:
        raise ValidationFailed(fields)
    return ShippingTerms(
        mode=mode,
        flat_cents=flat or 0,
        additional_cents=additional or 0,
        weight_tiers=tuple(tiers),
        free_over_cents=free_over,
        ships_to=tuple(sorted(countries)),
    )


class VendorNotFound(NotFound):
    code, message = "vendor_not_found", "Vendor not found."


def set_terms(vendor_id: int, terms: ShippingTerms) -> ShippingTerms:
    """Make `terms` the vendor's; the version goes up when anything changed (carts holding
    the old version get `price_changed` at checkout). Returns the terms now in force."""
    with transaction():
        vendor = db.session.get(Vendor, vendor_id, with_for_update=True)
        if vendor is None:
            raise VendorNotFound()
        current = terms_of(vendor)
        if _same(current, terms):
            return current
        vendor.shipping_mode = terms.mode
        vendor.shipping_flat_cents = terms.flat_cents
        vendor.shipping_additional_cents = terms.additional_cents
        vendor.shipping_weight_tiers = [[g, c] for g, c in terms.weight_tiers]
        vendor.free_shipping_threshold_cents = terms.free_over_cents
        vendor.ships_to = list(terms.ships_to)
        vendor.shipping_version = current.version + 1
        return terms_of(vendor)


def bump_version_if_changed(vendor: Vendor, before: ShippingTerms) -> None:
    """After another writer set the vendor's flat rate or threshold (vendor settings)."""
    if not _same(before, terms_of(vendor)):
        vendor.shipping_version = before.version + 1


def _same(a: ShippingTerms, b: ShippingTerms) -> bool:
    return a.to_json() | {"version": 0} == b.to_json() | {"version": 0}
