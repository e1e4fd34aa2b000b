"""The public catalog (no auth)."""

from __future__ import annotations

from typing import Annotated, Any

from flask import jsonify, request
from pydantic import Field
from typing_extensions import TypedDict

from marketplace.api import bp
from marketplace.api.common import int_arg, page_of, pagination
from marketplace.catalog import services as catalog
from marketplace.catalog.models import ImageJson, Product, VendorRefJson
from marketplace.db import reads_only
from marketplace.errors import BadRequest, ValidationFailed
from marketplace.http_cache import conditional_json
from marketplace.search import services as search
from marketplace.search.services import Facets

MAX_PRICE = 10**9


class CatalogItemJson(TypedDict):
    id: int
    title: str
    brand: str | None
    category: str | None
    vendor: VendorRefJson
    price_cents: int | None
    currency: str | None
    rating: float | None
    rating_count: int
    in_stock: bool
    images: list[ImageJson]


class CatalogPageJson(TypedDict):
    """A page of the catalog with the facets of everything that matched."""

    items: list[CatalogItemJson]
    total: Annotated[int, Field(ge=0)]
    page: Annotated[int, Field(ge=1)]
    per_page: Annotated[int, Field(ge=0)]
    facets: Facets


class SuggestionsJson(TypedDict):
    suggestions: list[str]


def catalog_item(product: Product) -> CatalogItemJson:
    return {
        "id": product.id,
        "title": product.title,
        "brand": product.brand.name if product.brand else None,
        "category": product.category.path if product.category else None,
        "vendor": {"id": product.vendor_id, "display_name": product.vendor.display_name},
        "price_cents": product.price_cents,
        "currency": product.variants[0].currency if product.variants else None,
        "rating": product.rating,
        "rating_count": product.rating_count,
        "in_stock": product.in_stock,
        "images": [image.to_dict() for image in product.images],
    }


def catalog_filters() -> catalog.CatalogFilters:
    page, per_page = pagination()
    sort = request.args.get("sort") or ("relevance" if request.args.get("q") else "newest")
    if sort not in catalog.SORTS:
        raise ValidationFailed({"sort": f"must be one of {', '.join(catalog.SORTS)}"})
    min_rating_raw = request.args.get("min_rating")
    min_rating = None
    if min_rating_raw:
        try:
            min_rating = float(min_rating_raw)
        except ValueError:
            raise BadRequest(
                "`min_rating` must be a number.", details={"fields": {"min_rating": "not a number"}}
            ) from None
        if not 0 <= min_rating <= 5:  # also rejects nan and inf
            raise ValidationFailed({"min_rating": "must be a number from 0 to 5"})
    in_stock_raw = (request.args.get("in_stock") or "").lower()
    if in_stock_raw not in {"", "1", "0", "true", "false", "yes", "no"}:
        raise ValidationFailed({"in_stock": "must be true or false"})
    in_stock = in_stock_raw in {"1", "true", "yes"}
    min_price = int_arg("min_price", None, high=MAX_PRICE)
    max_price = int_arg("max_price", None, high=MAX_PRICE)
    if min_price is not None and max_price is not None and min_price > max_price:
        raise ValidationFailed({"max_price": "must not be below min_price"})
    return catalog.CatalogFilters(
        brand=request.args.get("brand") or None,
        category=request.args.get("category") or None,
        min_price=min_price,
        max_price=max_price,
        min_rating=min_rating or None,  # at least 0 stars: every product, rated or not
        in_stock=in_stock,
        sort=sort,
        page=page,
        per_page=per_page,
    )


@bp.get("/products")
@reads_only
def list_products() -> Any:
    filters = catalog_filters()
    found = search.catalog_page(request.args.get("q"), filters)
    result = page_of(
        [catalog_item(p) for p in found.products], found.total, filters.page, filters.per_page
    )
    result["facets"] = found.facets.to_dict()
    return conditional_json(jsonify(result))


@bp.get("/search/suggest")
def suggest() -> Any:
    return jsonify({"suggestions": search.suggest(request.args.get("q") or "")})


@bp.get("/products/<int:product_id>")
@reads_only
def get_product(product_id: int) -> Any:
    return conditional_json(jsonify(catalog.public_product(product_id).to_dict()))
