"""The public catalog: what is visible, each filter and sort, pagination and bad parameters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from marketplace.catalog import services as catalog
from marketplace.catalog.models import Product, ProductStatus, Variant, VendorStatus
from marketplace.db import db
from marketplace.search.jobs import index_product
from tests.helpers import assert_error, make_product, make_vendor

ITEM_FIELDS = {"id", "title", "brand", "category", "vendor", "price_cents", "rating", "in_stock"}


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.get_json()["items"]]


def _reindex(*products: Product) -> None:
    """Direct SQL below bypasses the services' search hooks: refresh those documents."""
    for product in products:
        index_product(product.id)
    db.session.rollback()


def _set(product: Product, **values) -> None:
    db.session.execute(update(Product).where(Product.id == product.id).values(**values))
    db.session.commit()
    _reindex(product)


def _set_variant(variant_id: int, product: Product, **values) -> None:
    db.session.execute(update(Variant).where(Variant.id == variant_id).values(**values))
    db.session.commit()
    _reindex(product)


def _rate(product: Product, rating_sum: int, rating_count: int) -> None:
    _set(product, rating_sum=rating_sum, rating_count=rating_count)


def test_list_shape(api):
    vendor = make_vendor("Shop")
    product = make_product(vendor, title="Trail Runner", price_cents=4200, stock=3, variants=2)
    response = api.get("/products")
    assert response.status_code == 200
    data = response.get_json()
    assert set(data) >= {"items", "total", "page", "per_page", "facets"}
    assert data["total"] == 1 and data["page"] == 1 and data["per_page"] == 20
    assert set(data["facets"]) >= {"brand", "category", "price", "rating"}
    for facet in data["facets"].values():
        assert isinstance(facet, list)
    [item] = data["items"]
    assert set(item) >= ITEM_FIELDS
    assert item["id"] == product.id
    assert item["title"] == "Trail Runner"
    assert item["brand"] == "Acme" and item["category"] == "Gear"
    assert item["vendor"] == {"id": vendor.vendor.id, "display_name": vendor.vendor.display_name}
    assert item["price_cents"] == 4200
    assert item["rating"] is None
    assert item["in_stock"] is True


def test_only_active_products_of_approved_vendors(api):
    approved = make_vendor()
    visible = make_product(approved)
    make_product(approved, status=ProductStatus.DRAFT)
    archived = make_product(approved)
    catalog.update_product(approved.vendor.id, archived.id, status=ProductStatus.ARCHIVED)
    pending = make_vendor(approved=False)
    pending_product = make_product(pending)
    suspended = make_vendor()
    suspended_product = make_product(suspended)
    catalog.set_vendor_status(suspended.vendor.id, VendorStatus.SUSPENDED)

    response = api.get("/products")
    assert _ids(response) == [visible.id]
    assert response.get_json()["total"] == 1
    for hidden in (archived, pending_product, suspended_product):
        assert_error(api.get(f"/products/{hidden.id}"), 404, "product_not_found")

    catalog.set_vendor_status(suspended.vendor.id, VendorStatus.APPROVED)
    assert set(_ids(api.get("/products"))) == {visible.id, suspended_product.id}


def test_get_product(api):
    vendor = make_vendor()
    product = make_product(vendor, price_cents=1500, stock=4, variants=2)
    draft = make_product(vendor, status=ProductStatus.DRAFT)
    response = api.get(f"/products/{product.id}")
    assert response.status_code == 200
    data = response.get_json()
    assert set(data) >= {
        "id",
        "vendor_id",
        "title",
        "description",
        "brand",
        "category",
        "status",
        "rating",
        "rating_count",
        "variants",
    }
    assert data["id"] == product.id and data["vendor_id"] == vendor.vendor.id
    assert data["status"] == "active" and data["rating_count"] == 0
    assert len(data["variants"]) == 2
    for variant in data["variants"]:
        assert set(variant) >= {"id", "sku", "price_cents", "available", "attributes"}
        assert variant["available"] == 4
        assert "on_hand" not in variant and "reserved" not in variant
    assert_error(api.get(f"/products/{draft.id}"), 404, "product_not_found")
    assert_error(api.get("/products/999999"), 404, "product_not_found")
    assert_error(api.get("/products/abc"), 404, "not_found")


def test_available_is_on_hand_minus_reserved(api):
    product = make_product(make_vendor(), stock=5)
    _set_variant(product.variants[0].id, product, reserved=5)
    assert api.get(f"/products/{product.id}").get_json()["variants"][0]["available"] == 0
    [item] = api.get("/products").get_json()["items"]
    assert item["in_stock"] is False


def test_brand_filter_is_case_insensitive(api):
    vendor = make_vendor()
    acme = make_product(vendor, brand="Acme Co")
    make_product(vendor, brand="Zeta")
    make_product(vendor, brand=None)
    assert _ids(api.get("/products?brand=Acme Co")) == [acme.id]
    assert _ids(api.get("/products?brand=acme co")) == [acme.id]
    assert _ids(api.get("/products?brand=ACME%20%20CO")) == [acme.id]
    assert _ids(api.get("/products?brand=nobody")) == []


def test_category_filter_includes_sub_categories(api):
    vendor = make_vendor()
    tops = make_product(vendor, category="Clothing/Tops")
    clothing = make_product(vendor, category="Clothing")
    make_product(vendor, category="Clothing Accessories")
    make_product(vendor, category="Shoes")
    make_product(vendor, category=None)
    assert set(_ids(api.get("/products?category=Clothing"))) == {tops.id, clothing.id}
    assert set(_ids(api.get("/products?category=clothing"))) == {tops.id, clothing.id}
    assert _ids(api.get("/products?category=Clothing/Tops")) == [tops.id]
    assert _ids(api.get("/products?category=Clothing%20%3E%20Tops")) == [tops.id]
    assert _ids(api.get("/products?category=Tops")) == []
    # LIKE wildcards in the filter are plain characters.
    assert _ids(api.get("/products?category=Cl_thing")) == []
    assert _ids(api.get("/products?category=%25")) == []


def test_price_filters_are_in_cents(api):
    vendor = make_vendor()
    cheap = make_product(vendor, price_cents=500)
    middle = make_product(vendor, price_cents=1500)
    dear = make_product(vendor, price_cents=5000)
    assert set(_ids(api.get("/products?min_price=1000"))) == {middle.id, dear.id}
    assert set(_ids(api.get("/products?max_price=1500"))) == {cheap.id, middle.id}
    assert _ids(api.get("/products?min_price=1500&max_price=1500")) == [middle.id]
    assert _ids(api.get("/products?min_price=1501&max_price=4999")) == []
    assert_error(api.get("/products?min_price=-1"), 422)
    assert_error(api.get("/products?max_price=12.50"), 400)
    assert_error(api.get("/products?min_price=2000&max_price=1000"), 422)


def test_price_is_the_cheapest_variant(api):
    vendor = make_vendor()
    product = make_product(vendor, price_cents=3000, variants=2)
    _set_variant(product.variants[1].id, product, price_cents=900)
    [item] = api.get("/products").get_json()["items"]
    assert item["price_cents"] == 900
    assert _ids(api.get("/products?max_price=1000")) == [product.id]


def test_in_stock_filter(api):
    vendor = make_vendor()
    stocked = make_product(vendor, stock=2)
    empty = make_product(vendor, stock=0)
    held = make_product(vendor, stock=2)
    _set_variant(held.variants[0].id, held, reserved=2)
    assert _ids(api.get("/products?in_stock=true")) == [stocked.id]
    assert set(_ids(api.get("/products?in_stock=false"))) == {stocked.id, empty.id, held.id}
    assert set(_ids(api.get("/products"))) == {stocked.id, empty.id, held.id}
    assert_error(api.get("/products?in_stock=maybe"), 422)


def test_min_rating_filter(api):
    vendor = make_vendor()
    great = make_product(vendor)
    _rate(great, 9, 2)  # 4.5
    good = make_product(vendor)
    _rate(good, 4, 1)  # 4.0
    poor = make_product(vendor)
    _rate(poor, 5, 2)  # 2.5
    make_product(vendor)  # unrated
    assert set(_ids(api.get("/products?min_rating=4"))) == {great.id, good.id}
    assert _ids(api.get("/products?min_rating=4.5")) == [great.id]
    assert len(_ids(api.get("/products?min_rating=0"))) == 4
    ratings = {i["id"]: i["rating"] for i in api.get("/products").get_json()["items"]}
    assert ratings[great.id] == 4.5 and ratings[poor.id] == 2.5
    assert_error(api.get("/products?min_rating=6"), 422)
    assert_error(api.get("/products?min_rating=abc"), 400)


def test_sorts(api):
    vendor = make_vendor()
    now = datetime.now(UTC)
    a = make_product(vendor, price_cents=3000)
    b = make_product(vendor, price_cents=1000)
    c = make_product(vendor, price_cents=2000)
    _set(a, created_at=now - timedelta(days=1))
    _set(b, created_at=now - timedelta(days=3))
    _set(c, created_at=now - timedelta(days=2))
    _rate(a, 3, 1)
    _rate(b, 5, 1)
    assert _ids(api.get("/products?sort=price_asc")) == [b.id, c.id, a.id]
    assert _ids(api.get("/products?sort=price_desc")) == [a.id, c.id, b.id]
    assert _ids(api.get("/products?sort=newest")) == [a.id, c.id, b.id]
    assert _ids(api.get("/products")) == [a.id, c.id, b.id]  # newest by default
    assert _ids(api.get("/products?sort=rating")) == [b.id, a.id, c.id]
    assert sorted(_ids(api.get("/products?sort=relevance"))) == sorted([a.id, b.id, c.id])
    assert_error(api.get("/products?sort=bogus"), 422, "validation_error")


def test_pagination(api):
    vendor = make_vendor()
    products = [make_product(vendor, price_cents=100 * (i + 1)) for i in range(5)]
    first = api.get("/products?sort=price_asc&per_page=2").get_json()
    assert first["total"] == 5 and first["page"] == 1 and first["per_page"] == 2
    assert [i["id"] for i in first["items"]] == [products[0].id, products[1].id]
    third = api.get("/products?sort=price_asc&per_page=2&page=3").get_json()
    assert [i["id"] for i in third["items"]] == [products[4].id]
    beyond = api.get("/products?per_page=2&page=9").get_json()
    assert beyond["items"] == [] and beyond["total"] == 5
    full = api.get("/products?per_page=100").get_json()
    assert full["per_page"] == 100 and len(full["items"]) == 5


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("page=abc", 400),
        ("per_page=abc", 400),
        ("page=1.5", 400),
        ("per_page=101", 422),
        ("per_page=0", 422),
        ("page=0", 422),
        ("page=-1", 422),
        ("sort=bogus", 422),
        ("min_price=abc", 400),
        ("min_rating=-1", 422),
    ],
)
def test_bad_params(api, query, status):
    error = assert_error(api.get(f"/products?{query}"), status)
    assert query.split("=")[0] in error["details"]["fields"]


def test_sql_listing_filters_match_the_index(app):
    """`catalog.browse` answers while no search index exists yet: same filter semantics."""
    vendor = make_vendor()
    tops = make_product(vendor, brand="Acme  Co", category="Clothing/Tops", price_cents=900)
    clothing = make_product(vendor, brand="Zeta", category="Clothing", price_cents=2000)
    make_product(vendor, brand="Zeta", category="Clothing Accessories", stock=0)
    odd = make_product(vendor, brand="Zeta", category="100%/Odd_one")

    def ids(**filters) -> set[int]:
        products, total = catalog.browse(catalog.CatalogFilters(**filters))
        assert total == len(products)
        return {p.id for p in products}

    assert ids(brand="ACME co") == {tops.id}
    assert ids(category="clothing") == {tops.id, clothing.id}
    assert ids(category="Cl_thing") == set()
    assert ids(category="%") == set()
    assert ids(category="100%") == {odd.id}
    assert ids(min_price=900, max_price=2000, category="Clothing") == {tops.id, clothing.id}
    assert ids(max_price=999) == {tops.id}
    assert len(ids(in_stock=True)) == 3


def test_openapi_document_lists_every_api_route(app, api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] and document["info"]["version"]
    paths = document["paths"]
    expected: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            expected.add((path, method.lower()))
    documented = {(path, method) for path, ops in paths.items() for method in ops}
    assert expected == documented
    # The contract's routes, spelled as API.md spells them.
    for path, method in [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/token", "post"),
        ("/api/v1/auth/token", "delete"),
        ("/api/v1/me", "get"),
        ("/api/v1/vendor/products/{product_id}", "patch"),
        ("/api/v1/vendor/variants/{variant_id}", "patch"),
        ("/api/v1/products", "get"),
        ("/api/v1/openapi.json", "get"),
    ]:
        assert method in paths[path], (path, method)
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for ops in paths.values():
        for op in ops.values():
            assert op["summary"] and op["responses"]
            for parameter in op["parameters"]:
                if parameter["in"] == "path":
                    assert parameter["required"] is True


def test_openapi_document_is_self_consistent(api):
    document = api.get("/openapi.json").get_json()
    paths = document["paths"]
    register = paths["/api/v1/auth/register"]["post"]
    assert register["security"] == []
    assert "201" in register["responses"]
    product = paths["/api/v1/vendor/products/{product_id}"]["get"]
    assert product["security"] == [{"bearer": []}]
    assert {"401", "403", "404"} <= set(product["responses"])
    assert product["parameters"][0]["name"] == "product_id"
    assert product["parameters"][0]["schema"]["type"] == "integer"
    listing = paths["/api/v1/products"]["get"]
    assert {"q", "brand", "min_price", "page", "per_page"} <= {
        p["name"] for p in listing["parameters"]
    }
    assert paths["/api/v1/auth/token"]["delete"]["responses"].keys() >= {"204", "401"}
    # Every $ref resolves inside the document.
    refs: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        target = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
    created = paths["/api/v1/vendor/products"]["post"]["requestBody"]
    schema_name = created["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    schema = document["components"]["schemas"][schema_name]
    assert {"title", "variants"} <= set(schema["required"])
