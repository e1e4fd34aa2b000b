"""Admin pages: vendors, users, commission, reconciliation, the outbox's dead letters."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from marketplace.admin import (  # noqa: E402,F401
    audit_pages,
    coupon_pages,
    money_pages,
    order_pages,
    outbox_pages,
    routes,
    tax_pages,
    users_pages,
)
