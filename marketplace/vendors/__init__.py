"""Vendor-facing pages: onboarding, products, fulfilment, earnings."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("vendors", __name__, url_prefix="/vendor")

from marketplace.vendors import (  # noqa: E402,F401
    coupon_pages,
    csv_pages,
    fulfilment_pages,
    image_pages,
    onboarding,
    routes,
)
