"""Admin: the tax rates (sales tax / VAT by destination), read, set and removed; audited."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from typing_extensions import TypedDict

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import body, require
from marketplace.errors import ValidationFailed
from marketplace.orders import tax
from marketplace.orders.tax import TaxRateJson
from marketplace.validation import Body


class TaxRateBody(Body):
    country: str  # ISO 3166-1 alpha-2
    region: str | None = None  # ISO 3166-2 code, full code or name; none: the whole country
    rate_bps: int
    reduced_rate_bps: int | None = None  # none: reduced-category products pay the standard rate
    shipping_taxed: bool = False
    note: str | None = None


class TaxRateListJson(TypedDict):
    items: list[TaxRateJson]


@bp.get("/admin/tax-rates")
@require(Role.ADMIN)
def admin_list_tax_rates() -> Any:
    return jsonify({"items": [tax.rate_json(rate) for rate in tax.rates()]})


@bp.put("/admin/tax-rates")
@require(Role.ADMIN)
def admin_set_tax_rate() -> Any:
    """Set one destination's rates: added, or changed if the destination has them already."""
    data = body(TaxRateBody)
    if data.note is not None and len(data.note) > 500:
        raise ValidationFailed({"note": "must be at most 500 characters long"})
    rate = tax.set_rate(
        data.country,
        data.region,
        data.rate_bps,
        reduced_rate_bps=data.reduced_rate_bps,
        shipping_taxed=data.shipping_taxed,
        note=data.note,
    )
    return jsonify(tax.rate_json(rate))


@bp.delete("/admin/tax-rates/<int:rate_id>")
@require(Role.ADMIN)
def admin_delete_tax_rate(rate_id: int) -> Any:
    tax.remove_rate(rate_id)
    return "", 204
