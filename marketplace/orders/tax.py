"""Sales tax rates by destination country and region (default 0)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select

from marketplace.audit import services as audit
from marketplace.db import db, transaction
from marketplace.errors import NotFound, ValidationFailed
from marketplace.orders.models import TaxRate


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


def rate_column(country: str, region: str | None) -> ColumnElement[int]:
    """`rate_for()` as a column, for reading it in the same statement as other figures."""
    country = country.upper()
    country_rate = (
        select(TaxRate.rate_bps)
        .where(TaxRate.country == country, TaxRate.region.is_(None))
        .scalar_subquery()
    )
    if not region:
        return func.coalesce(country_rate, 0)
    region_rate = (
        select(TaxRate.rate_bps)
        .where(TaxRate.country == country, TaxRate.region == region.upper())
        .scalar_subquery()
    )
    return func.coalesce(region_rate, country_rate, 0)


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


def _check(country: str, region: str | None, rate_bps: int) -> None:
    fields = {}
    if len(country) != 2 or not country.isalpha() or not country.isascii():
        fields["country"] = "must be an ISO 3166-1 alpha-2 code"
    if region is not None and (
        not 1 <= len(region) <= 40 or not region.replace("-", "").isalnum() or not region.isascii()
    ):
        fields["region"] = "must be 1 to 40 letters, digits or dashes"
    if not 0 <= rate_bps <= MAX_RATE_BPS:
        fields["rate_bps"] = f"must be between 0 and {MAX_RATE_BPS}"
    if fields:
        raise ValidationFailed(fields)


def _label(rate: TaxRate) -> str:
    return f"{rate.country}/{rate.region}" if rate.region else rate.country


def set_rate(country: str, region: str | None, rate_bps: int) -> TaxRate:
    """Add the destination's rate or change it (audited).

    :raises ValidationFailed:
    """
    region = region.strip() or None if region else None
    _check(country, region, rate_bps)
    country, region = country.upper(), region.upper() if region else None
    with transaction():
        rate = db.session.scalar(
            select(TaxRate).where(TaxRate.country == country, TaxRate.region.is_(region))
            if region is None
            else select(TaxRate).where(TaxRate.country == country, TaxRate.region == region)
        )
        before = {"rate_bps": rate.rate_bps} if rate is not None else None
        if rate is None:
            rate = TaxRate(country=country, region=region, rate_bps=rate_bps)
            db.session.add(rate)
        rate.rate_bps = rate_bps
        db.session.flush()
        audit.record("tax.set", "tax_rate", _label(rate), before, {"rate_bps": rate_bps})
    return rate


def change_rate(rate_id: int, rate_bps: int) -> TaxRate:
    """:raises TaxRateNotFound, ValidationFailed:"""
    with transaction():
        rate = db.session.get(TaxRate, rate_id, with_for_update=True)
        if rate is None:
            raise TaxRateNotFound()
        _check(rate.country, rate.region, rate_bps)
        before = {"rate_bps": rate.rate_bps}
        rate.rate_bps = rate_bps
        audit.record("tax.set", "tax_rate", _label(rate), before, {"rate_bps": rate_bps})
    return rate


def remove_rate(rate_id: int) -> TaxRate:
    """Remove a rate: the destination falls back to its country's rate, else 0 (audited).

    :raises TaxRateNotFound:
    """
    with transaction():
        rate = db.session.get(TaxRate, rate_id, with_for_update=True)
        if rate is None:
            raise TaxRateNotFound()
        audit.record("tax.remove", "tax_rate", _label(rate), {"rate_bps": rate.rate_bps}, None)
        db.session.delete(rate)
    return rate
