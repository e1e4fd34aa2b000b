"""The JSON API at /api/v1 (API.md): thin views over the domain services."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from marketplace.api import (  # noqa: E402,F401
    admin,
    admin_audit,
    admin_money,
    admin_outbox,
    admin_tax,
    auth,
    cart,
    catalog,
    coupons,
    engagement,
    openapi,
    orders,
    vendor,
    vendor_orders,
)
