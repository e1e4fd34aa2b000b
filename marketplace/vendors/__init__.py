"""Vendor-facing pages: onboarding, products, fulfilment, earnings."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("vendors", __name__, url_prefix="/vendor")

from marketplace.vendors import fulfilment_pages, onboarding, routes  # noqa: E402,F401
