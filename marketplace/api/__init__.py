"""The JSON API at /api/v1 (API.md): thin views over the domain services."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from marketplace.api import admin, admin_money, auth, cart, catalog, orders, vendor, vendor_orders  # noqa: E402,F401
