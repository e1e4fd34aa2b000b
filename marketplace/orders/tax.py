"""Sales tax and VAT by destination, and by the product's tax category.

Rates are data (`tax_rates`, edited by admins, audited): a destination is a country and, where
tax is set by region, a state or region validated against the country's ISO 3166-2 list
(pycountry). A region's row applies if there is one, else the country's, else no tax. Products
are `standard`, `reduced` (the destination's reduced rate, else its standard one) or `exempt`;
shipping is taxed at the standard rate where the destination's row says so. An EU business
buyer with a VAT number of valid format pays no VAT (reverse charge). See docs/tax.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import pycountry
from sqlalchemy import ColumnElement, bindparam, case, func, select
from stdnum.eu import vat as eu_vat
from typing_extensions import TypedDict

from marketplace.audit import services as audit
from marketplace.catalog.models import TaxCategory
from marketplace.db import db, transaction
from marketplace.errors import NotFound, ValidationFailed
from marketplace.money import BPS_DENOMINATOR, round_to_step
from marketplace.orders.models import TaxRate

# Where tax is set by state or province: a state the country's list does not know is refused
# even if no rate names it yet. Elsewhere a region is checked only once the country has a
# region's rate (then it matters).
REGIONAL_TAX_COUNTRIES = frozenset({"US", "CA"})

EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})  # fmt: skip


@dataclass(frozen=True)
class TaxRates:
    """The rates for one destination: standard, reduced (None: the standard one applies) and
    whether shipping is taxed (at the standard rate)."""

    standard_bps: int
    reduced_bps: int | None = None
    shipping_taxed: bool = False

    def bps_for(self, category: TaxCategory | str | None) -> int:
        if category == TaxCategory.EXEMPT:
            return 0
        if category == TaxCategory.REDUCED and self.reduced_bps is not None:
            return self.reduced_bps
        return self.standard_bps

    @property
    def shipping_bps(self) -> int:
        return self.standard_bps if self.shipping_taxed else 0


NO_TAX = TaxRates(0, 0, False)


def tax_on(amount_cents: int, bps: int, currency: str, *, inclusive: bool = False) -> int:
    """The tax on `amount_cents` at `bps`, rounded half up to what the currency can charge; with
    `inclusive`, the tax contained in a tax-inclusive amount (never more than the amount)."""
    if amount_cents <= 0 or bps <= 0:
        return 0
    if not inclusive:
        return round_to_step(
            (amount_cents * bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR, currency
        )
    denominator = BPS_DENOMINATOR + bps
    contained = (amount_cents * bps + denominator // 2) // denominator
    return min(round_to_step(contained, currency), amount_cents)


@cache
def _subdivisions(country: str) -> dict[str, str]:
    """Every way of naming the country's subdivisions (code, full code, name, in capitals) →
    the code without the country prefix ("US-CA", "CA", "CALIFORNIA" → "CA")."""
    names: dict[str, str] = {}
    for sub in pycountry.subdivisions.get(country_code=country) or ():
        code = sub.code.split("-", 1)[1].upper()
        names[sub.code.upper()] = code
        names[code] = code
        names[sub.name.upper()] = code
    return names


def normalise_region(country: str, region: str | None) -> str | None:
    """The region's code in `country`'s ISO 3166-2 list, None if not given; a region the list
    does not know comes back as given (upper-cased), for `check_region` to judge."""
    if region is None or not region.strip():
        return None
    cleaned = " ".join(region.split()).upper()
    return _subdivisions(country.upper()).get(cleaned, cleaned)


def region_known(country: str, region: str | None) -> bool:
    return region is None or region in _subdivisions(country.upper()).values()


def check_region(
    country: str, region: str | None, *, has_region_rates: bool, field: str = "region"
) -> None:
    """:raises ValidationFailed: a region the country's list does not know, where it matters
    (a country taxed by region, or one with a region's rate)."""
    matters = country.upper() in REGIONAL_TAX_COUNTRIES or has_region_rates
    if matters and not region_known(country, region):
        raise ValidationFailed({field: f"is not a state or region of {country.upper()}"})


def check_vat_number(country: str, vat_number: str | None, field: str = "vat_number") -> str | None:
    """The VAT number compacted ("DE 136 695 976" → "DE136695976") if given and of valid format
    (python-stdnum: prefix, length and check digits; no VIES lookup), else None.

    :raises ValidationFailed: not of valid format, or the destination is not in the EU.
    """
    if vat_number is None or not vat_number.strip():
        return None
    if country.upper() not in EU_COUNTRIES:
        raise ValidationFailed({field: "applies only to deliveries within the EU"})
    if len(vat_number) > 40 or not eu_vat.is_valid(vat_number):
        raise ValidationFailed({field: "is not a valid EU VAT number"})
    return str(eu_vat.compact(vat_number))


@cache
def rates_columns(*, with_region: bool) -> tuple[ColumnElement[Any], ...]:
    """The destination's rates as four columns of one statement: standard bps, reduced bps
    (NULL: standard), shipping taxed, and whether the country has any region's rate (for
    `check_region`). The region's row wins over the country's, field by field of one row.

    The destination is a parameter (`rates_params`), so the columns are built once per shape
    and a statement made of them keeps its cache key from one request to the next.
    """
    country = bindparam("tax_country")

    def pick(column: Any, with_region: bool) -> Any:
        where = (
            TaxRate.region == bindparam("tax_region") if with_region else TaxRate.region.is_(None)
        )
        return select(column).where(TaxRate.country == country, where).scalar_subquery()

    has_regions = (
        select(TaxRate.id).where(TaxRate.country == country, TaxRate.region.is_not(None)).exists()
    )
    if not with_region:
        return (
            func.coalesce(pick(TaxRate.rate_bps, False), 0),
            pick(TaxRate.reduced_rate_bps, False),
            func.coalesce(pick(TaxRate.shipping_taxed, False), False),
            has_regions,
        )
    region_rate = pick(TaxRate.rate_bps, True)
    return (
        func.coalesce(region_rate, pick(TaxRate.rate_bps, False), 0),
        case(
            (region_rate.is_not(None), pick(TaxRate.reduced_rate_bps, True)),
            else_=pick(TaxRate.reduced_rate_bps, False),
        ),
        case(
            (region_rate.is_not(None), pick(TaxRate.shipping_taxed, True)),
            else_=func.coalesce(pick(TaxRate.shipping_taxed, False), False),
        ),
        has_regions,
    )


def rates_params(country: str, region: str | None) -> dict[str, str]:
    """The values of `rates_columns(with_region=bool(region))`' parameters."""
    params = {"tax_country": country.upper()}
    if region:
        params["tax_region"] = region.upper()
    return params


RATES_COLUMNS = 4


def rates_from(values: Sequence[Any], country: str, region: str | None) -> TaxRates:
    """`rates_columns`' values read: the destination's rates.

    :raises ValidationFailed: (`shipping_address.state`) a region the country does not have.
    """
    standard, reduced, shipping_taxed, has_regions = values
    check_region(
        country, region, has_region_rates=bool(has_regions), field="shipping_address.state"
    )
    return TaxRates(
        standard_bps=int(standard or 0),
        reduced_bps=None if reduced is None else int(reduced),
        shipping_taxed=bool(shipping_taxed),
    )


def rates_for(country: str, region: str | None) -> TaxRates:
    """The destination's rates, read on their own (admin pages, tests).

    :raises ValidationFailed:
    """
    region = normalise_region(country, region)
    values = db.session.execute(
        select(*rates_columns(with_region=bool(region))), rates_params(country, region)
    ).one()
    return rates_from(values, country, region)


def rate_for(country: str, region: str | None) -> int:
    """The region's rate if set, else the country's, else 0 (basis points)."""
    country = country.upper()
    rates = {
        rate.region: rate.rate_bps
        for rate in db.session.scalars(select(TaxRate).where(TaxRate.country == country))
    }
    if region and region.upper() in rates:
        return rates[region.upper()]
    return rates.get(None, 0)


MAX_RATE_BPS = 5000


class TaxRateNotFound(NotFound):
    code, message = "tax_rate_not_found", "Tax rate not found."


def rates() -> list[TaxRate]:
    """Every rate, by country then region (the country-wide rate first)."""
    return list(
        db.session.scalars(
            select(TaxRate).order_by(TaxRate.country, TaxRate.region.is_not(None), TaxRate.region)
        )
    )


def _check(
    country: str, region: str | None, rate_bps: int, reduced_rate_bps: int | None = None
) -> None:
    fields = {}
    if len(country) != 2 or not country.isalpha() or not country.isascii():
        fields["country"] = "must be an ISO 3166-1 alpha-2 code"
    elif pycountry.countries.get(alpha_2=country.upper()) is None:
        fields["country"] = "is not a country (ISO 3166-1 alpha-2)"
    elif region is not None and not region_known(country, region):
        fields["region"] = f"is not a state or region of {country.upper()} (ISO 3166-2)"
    if not 0 <= rate_bps <= MAX_RATE_BPS:
        fields["rate_bps"] = f"must be between 0 and {MAX_RATE_BPS}"
    if reduced_rate_bps is not None and not 0 <= reduced_rate_bps <= MAX_RATE_BPS:
        fields["reduced_rate_bps"] = f"must be between 0 and {MAX_RATE_BPS}"
    if fields:
        raise ValidationFailed(fields)


def _label(rate: TaxRate) -> str:
    return f"{rate.country}/{rate.region}" if rate.region else rate.country


def _terms(rate: TaxRate) -> dict[str, Any]:
    return {
        "rate_bps": rate.rate_bps,
        "reduced_rate_bps": rate.reduced_rate_bps,
        "shipping_taxed": rate.shipping_taxed,
    }


_KEEP: Any = object()  # change_rate: leave the field as it is


def set_rate(
    country: str,
    region: str | None,
    rate_bps: int,
    *,
    reduced_rate_bps: int | None = None,
    shipping_taxed: bool = False,
    note: str | None = _KEEP,
) -> TaxRate:
    """Add the destination's rates or change them (audited). `region` may be the region's code,
    full code or name ("CA", "US-CA", "California").

    :raises ValidationFailed:
    """
    country = (country or "").strip()
    region = normalise_region(country, region) if len(country) == 2 else region
    _check(country, region, rate_bps, reduced_rate_bps)
    country = country.upper()
    with transaction():
        rate = db.session.scalar(
            select(TaxRate).where(TaxRate.country == country, TaxRate.region.is_(region))
            if region is None
            else select(TaxRate).where(TaxRate.country == country, TaxRate.region == region)
        )
        before = _terms(rate) if rate is not None else None
        if rate is None:
            rate = TaxRate(country=country, region=region, rate_bps=rate_bps)
            db.session.add(rate)
        rate.rate_bps = rate_bps
        rate.reduced_rate_bps = reduced_rate_bps
        rate.shipping_taxed = bool(shipping_taxed)
        if note is not _KEEP:
            rate.note = (note or "").strip() or None
        db.session.flush()
        audit.record("tax.set", "tax_rate", _label(rate), before, _terms(rate))
    return rate


def change_rate(
    rate_id: int,
    rate_bps: int,
    *,
    reduced_rate_bps: int | None = _KEEP,
    shipping_taxed: bool | None = None,
) -> TaxRate:
    """Change one rate's figures; what is not given stays as it is (audited).

    :raises TaxRateNotFound, ValidationFailed:
    """
    with transaction():
        rate = db.session.get(TaxRate, rate_id, with_for_update=True)
        if rate is None:
            raise TaxRateNotFound()
        reduced = rate.reduced_rate_bps if reduced_rate_bps is _KEEP else reduced_rate_bps
        _check(rate.country, rate.region, rate_bps, reduced)
        before = _terms(rate)
        rate.rate_bps = rate_bps
        rate.reduced_rate_bps = reduced
        if shipping_taxed is not None:
            rate.shipping_taxed = shipping_taxed
        audit.record("tax.set", "tax_rate", _label(rate), before, _terms(rate))
    return rate


def remove_rate(rate_id: int) -> TaxRate:
    """Remove a rate: the destination falls back to its country's rate, else 0 (audited).

    :raises TaxRateNotFound:
    """
    with transaction():
        rate = db.session.get(TaxRate, rate_id, with_for_update=True)
        if rate is None:
            raise TaxRateNotFound()
        audit.record("tax.remove", "tax_rate", _label(rate), _terms(rate), None)
        db.session.delete(rate)
    return rate


class TaxRateJson(TypedDict):
    id: int
    country: str
    region: str | None
    rate_bps: int
    reduced_rate_bps: int | None
    shipping_taxed: bool
    note: str | None


def rate_json(rate: TaxRate) -> TaxRateJson:
    return {
        "id": rate.id,
        "country": rate.country,
        "region": rate.region,
        "rate_bps": rate.rate_bps,
        "reduced_rate_bps": rate.reduced_rate_bps,
        "shipping_taxed": rate.shipping_taxed,
        "note": rate.note,
    }
