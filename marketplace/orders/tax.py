"""Sales tax rates by destination country and region (default 0)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select

from marketplace.db import db, transaction
from marketplace.errors import ValidationFailed
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


def set_rate(country: str, region: str | None, rate_bps: int) -> TaxRate:
    """:raises ValidationFailed:"""
    fields = {}
    if len(country) != 2 or not country.isalpha():
        fields["country"] = "must be an ISO 3166-1 alpha-2 code"
    if not 0 <= rate_bps <= 5000:
        fields["rate_bps"] = "must be between 0 and 5000"
    if fields:
        raise ValidationFailed(fields)
    country, region = country.upper(), region.upper() if region else None
    with transaction():
        rate = db.session.scalar(
            select(TaxRate).where(TaxRate.country == country, TaxRate.region.is_(region))
            if region is None
            else select(TaxRate).where(TaxRate.country == country, TaxRate.region == region)
        )
        if rate is None:
            rate = TaxRate(country=country, region=region, rate_bps=rate_bps)
            db.session.add(rate)
        rate.rate_bps = rate_bps
    return rate
