"""Buyer-facing pages: storefront, sign-in, cart, checkout, orders."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("buyers", __name__)

from marketplace.buyers import account, guest, routes, shop  # noqa: E402,F401
