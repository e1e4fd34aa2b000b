"""Storefront and sign-in pages."""

from __future__ import annotations

from typing import Any

from flask import render_template

from marketplace.buyers import bp
from marketplace.catalog import services as catalog


@bp.get("/")
def home() -> Any:
    products, total = catalog.browse(catalog.CatalogFilters(per_page=24))
    return render_template("buyers/home.html", products=products, total=total)
