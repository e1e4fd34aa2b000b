"""The storefront pages: home, the filtered catalog with pagination, the product page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from marketplace.catalog import services as catalog
from marketplace.catalog.models import ProductStatus, Variant, VendorStatus
from marketplace.db import db
from tests.helpers import make_product, make_vendor, page_app


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


def _titles(response) -> list[str]:
    """Product titles of the cards on a page, in order."""
    return re.findall(r'class="title" href="/products/\d+">([^<]*)</a>', response.text)


def test_home_shows_only_visible_products(web):
    approved = make_vendor()
    pending = make_vendor(approved=False)
    make_product(approved, title="Visible Lamp", price_cents=1999)
    make_product(approved, title="Draft Lamp", status=ProductStatus.DRAFT)
    make_product(pending, title="Pending Lamp")
    response = web.get("/")
    assert response.status_code == 200
    assert _titles(response) == ["Visible Lamp"]
    assert "$19.99" in response.text and approved.vendor.display_name in response.text


def test_catalog_lists_and_links_products(web):
    vendor = make_vendor()
    product = make_product(vendor, title="Trail Runner", price_cents=12345, stock=0)
    response = web.get("/products")
    assert response.status_code == 200
    assert f'href="/products/{product.id}"' in response.text
    assert "$123.45" in response.text and "Out of stock" in response.text
    assert "1 product" in response.text


def test_filter_form_offers_categories_with_subcategories_and_brands(web):
    vendor = make_vendor()
    make_product(vendor, category="Clothing/Tops", brand="Northwind")
    make_product(vendor, category="Garden", brand="Acme")
    page = web.get("/products").text
    for value in ("Clothing", "Clothing/Tops", "Garden"):
        assert f'<option value="{value}">' in page
    assert '<option value="Acme">' in page and '<option value="Northwind">' in page
    for name in ("min_price", "max_price", "in_stock", "sort"):
        assert f'name="{name}"' in page


def test_filter_by_category_includes_subcategories(web):
    vendor = make_vendor()
    make_product(vendor, title="Tee", category="Clothing/Tops")
    make_product(vendor, title="Jeans", category="Clothing/Bottoms")
    make_product(vendor, title="Rake", category="Garden")
    assert sorted(_titles(web.get("/products?category=Clothing"))) == ["Jeans", "Tee"]
    assert _titles(web.get("/products?category=Clothing/Tops")) == ["Tee"]


def test_filter_by_brand(web):
    vendor = make_vendor()
    make_product(vendor, title="A", brand="Acme")
    make_product(vendor, title="N", brand="Northwind")
    assert _titles(web.get("/products?brand=Northwind")) == ["N"]


def test_filter_by_price_in_dollars(web):
    vendor = make_vendor()
    make_product(vendor, title="Cheap", price_cents=999)
    make_product(vendor, title="Exact", price_cents=1000)
    make_product(vendor, title="Mid", price_cents=1550)
    make_product(vendor, title="Dear", price_cents=2001)
    response = web.get("/products?min_price=10&max_price=20.00&sort=price_asc")
    assert _titles(response) == ["Exact", "Mid"]
    assert _titles(web.get("/products?max_price=9.99")) == ["Cheap"]


def test_filter_in_stock(web):
    vendor = make_vendor()
    make_product(vendor, title="Plenty", stock=3)
    make_product(vendor, title="None left", stock=0)
    reserved = make_product(vendor, title="All reserved", stock=2)
    db.session.execute(update(Variant).where(Variant.product_id == reserved.id).values(reserved=2))
    db.session.commit()
    assert _titles(web.get("/products?in_stock=y")) == ["Plenty"]


def test_sort_by_price(web):
    vendor = make_vendor()
    for title, price in [("B", 2000), ("A", 1000), ("C", 3000)]:
        make_product(vendor, title=title, price_cents=price)
    assert _titles(web.get("/products?sort=price_asc")) == ["A", "B", "C"]
    assert _titles(web.get("/products?sort=price_desc")) == ["C", "B", "A"]
    assert _titles(web.get("/products")) == ["C", "A", "B"]  # newest first


def test_pagination_links_keep_the_filters(web):
    vendor = make_vendor()
    for i in range(30):
        make_product(vendor, title=f"Item {i:02d}", brand="Acme", price_cents=1000 + i)
    first = web.get("/products?brand=Acme&sort=price_asc")
    assert len(_titles(first)) == 24 and "Page 1 of 2" in first.text
    links = re.findall(r'<a rel="next" href="([^"]+)"', first.text)
    assert len(links) == 1
    second = web.get(links[0].replace("&amp;", "&"))
    assert second.status_code == 200
    assert _titles(second) == [f"Item {i:02d}" for i in range(24, 30)]
    assert "Page 2 of 2" in second.text and 'rel="prev"' in second.text
    assert 'rel="next"' not in second.text


@pytest.mark.parametrize(
    "query",
    [
        "min_price=abc",
        "max_price=-5",
        "min_price=1.999",
        "min_price=1e3",
        "category=Nowhere",
        "brand=Unknown",
        "sort=bogus",
        "page=0",
        "page=x",
    ],
)
def test_bad_filters_are_422(web, query):
    make_product(make_vendor(), title="Anything")
    response = web.get(f"/products?{query}")
    assert response.status_code == 422
    assert "Please correct the filters." in response.text
    assert _titles(response) == []


def test_huge_but_well_formed_filters_just_find_nothing(web):
    make_product(make_vendor(), title="Only", price_cents=500)
    response = web.get("/products?min_price=999999999.99&page=1000000")
    assert response.status_code == 200 and _titles(response) == []
    assert _titles(web.get("/products?max_price=999999999.99")) == ["Only"]


def test_page_past_the_end_is_empty(web):
    make_product(make_vendor(), title="Only")
    response = web.get("/products?page=5")
    assert response.status_code == 200 and _titles(response) == []


# --- product page ----------------------------------------------------------------------------


def test_product_page_shows_variants(web):
    vendor = make_vendor()
    product = catalog.create_product(
        vendor.vendor.id,
        catalog.ProductInput(
            title="Merino Tee",
            description="Soft.\nWarm.",
            brand="Northwind",
            category="Clothing/Tops",
            status=ProductStatus.ACTIVE,
            variants=[
                catalog.VariantInput("TEE-BLK-M", 2499, 7, {"colour": "Black", "size": "M"}),
                catalog.VariantInput("TEE-WHT-L", 100050, 0, {"colour": "White", "size": "L"}),
            ],
        ),
    )
    db.session.execute(update(Variant).where(Variant.sku == "TEE-BLK-M").values(reserved=2))
    db.session.commit()
    response = web.get(f"/products/{product.id}")
    assert response.status_code == 200
    page = response.text
    assert "<h1>Merino Tee</h1>" in page and "Northwind" in page and "Clothing/Tops" in page
    assert "TEE-BLK-M" in page and "colour: Black" in page and "size: M" in page
    assert "$24.99" in page and "$1,000.50" in page
    assert "5 in stock" in page  # 7 on hand − 2 reserved
    assert "Out of stock" in page
    assert vendor.vendor.display_name in page


def test_product_page_escapes_user_text(web):
    vendor = make_vendor()
    product = make_product(
        vendor, title="<script>alert('t')</script>", description="<img src=x onerror=alert(1)>"
    )
    page = web.get(f"/products/{product.id}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page


@pytest.mark.parametrize("case", ["unknown", "draft", "archived", "pending", "suspended"])
def test_hidden_products_are_404(web, case):
    vendor = make_vendor(approved=case != "pending")
    status = ProductStatus.DRAFT if case == "draft" else ProductStatus.ACTIVE
    product = make_product(vendor, title="Hidden Thing", status=status)
    if case == "archived":
        catalog.update_product(vendor.vendor.id, product.id, status=ProductStatus.ARCHIVED)
    if case == "suspended":
        catalog.set_vendor_status(vendor.vendor.id, VendorStatus.SUSPENDED)
    product_id = product.id + 1000 if case == "unknown" else product.id
    response = web.get(f"/products/{product_id}")
    assert response.status_code == 404
    assert "Product not found." in response.text and "Hidden Thing" not in response.text
    if case != "unknown":
        assert "Hidden Thing" not in web.get("/products").text


def test_non_numeric_product_id_is_404(web):
    assert web.get("/products/abc").status_code == 404
