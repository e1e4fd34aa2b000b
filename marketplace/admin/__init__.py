"""Admin pages: vendors, commission, reconciliation."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from marketplace.admin import money_pages, routes  # noqa: E402,F401
