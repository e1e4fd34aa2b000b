"""The storefront pages: home, the filtered catalog with pagination, the product page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from marketplace.cart import services as carts
from marketplace.catalog import services as catalog
from marketplace.catalog.models import ProductStatus, Variant, VendorStatus
from marketplace.db import db
from marketplace.orders import services as orders
from tests.helpers import make_buyer, make_product, make_vendor, page_app


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
    buyer = make_buyer()  # holds both units in an unpaid checkout
    carts.add_item(buyer.id, reserved.variants[0].id, 2)
    address = orders.Address(name="B", line1="1 St", city="C", postal_code="1", country="US")
    orders.checkout(buyer.id, address, "hold-both", "hash")
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


# --- search ----------------------------------------------------------------------------------


def _facet_links(page: str, kind: str) -> dict[str, tuple[str, int]]:
    """Facet label -> (link, count) for one facet group of the catalog page."""
    found = re.findall(
        rf'<a data-facet="{kind}" href="([^"]*)">([^<]*)</a> <span class="count">\((\d+)\)</span>',
        page,
    )
    return {label: (href.replace("&amp;", "&"), int(count)) for href, label, count in found}


def test_search_box_ranks_title_matches_and_forgives_a_typo(web):
    vendor = make_vendor()
    make_product(vendor, title="Trail Sneaker", brand="Adidas", category="Shoes")
    make_product(vendor, title="Canvas Bag", brand="Adidas", description="fits a sneaker")
    make_product(vendor, title="Garden Rake", brand="Acme", category="Garden")

    assert _titles(web.get("/products?q=sneaker")) == ["Trail Sneaker", "Canvas Bag"]
    assert _titles(web.get("/products?q=sneker")) == ["Trail Sneaker", "Canvas Bag"]
    assert sorted(_titles(web.get("/products?q=addidas"))) == ["Canvas Bag", "Trail Sneaker"]
    page = web.get("/products?q=sneaker").text
    assert "Results for “sneaker”" in page and 'value="sneaker"' in page
    # the header's box searches from every page
    assert 'role="search"' in web.get("/").text


def test_facet_links_count_and_narrow_like_the_api(web, api):
    vendor = make_vendor()
    make_product(
        vendor, title="Road Shoe", brand="Adidas", category="Shoes/Running", price_cents=8000
    )
    make_product(
        vendor, title="Trail Shoe", brand="Salomon", category="Shoes/Trail", price_cents=12000
    )
    make_product(
        vendor, title="Court Shoe", brand="Adidas", category="Shoes/Court", price_cents=1500
    )
    make_product(vendor, title="Shoe Horn", brand="Acme", category="Home", price_cents=500)

    page = web.get("/products?q=shoe&brand=Adidas").text
    assert sorted(_titles(web.get("/products?q=shoe&brand=Adidas"))) == ["Court Shoe", "Road Shoe"]
    api_facets = api.get("/products?q=shoe&brand=Adidas").get_json()["facets"]
    brands = _facet_links(page, "brand")
    # a brand's facet ignores the brand filter itself: the other brands still show
    assert {label: count for label, (_, count) in brands.items()} == {
        f["value"]: f["count"] for f in api_facets["brand"]
    }
    assert brands["Salomon"][1] == 1 and brands["Adidas"][1] == 2
    salomon = web.get(brands["Salomon"][0])
    assert _titles(salomon) == ["Trail Shoe"]

    prices = _facet_links(web.get("/products?q=shoe").text, "price")
    for label, (href, count) in prices.items():
        assert len(_titles(web.get(href))) == count, label
    assert sum(count for _, count in prices.values()) == 4


def test_rating_filter_and_odd_queries_never_fail(web):
    vendor = make_vendor()
    make_product(vendor, title="Plain Mug")
    for q in ('"unclosed', "title:mug OR", "*", "AND", "mug~2^3", "ü" * 150, "%00%ff"):
        response = web.get("/products", query_string={"q": q})
        assert response.status_code == 200, q
    assert _titles(web.get("/products?q=mug&min_rating=4")) == []
    assert _titles(web.get("/products?q=mug")) == ["Plain Mug"]
    too_long = web.get("/products", query_string={"q": "x" * 201})
    assert too_long.status_code == 422 and "Please correct the filters" in too_long.text
    assert web.get("/products?min_rating=9").status_code == 422


def test_stray_query_keys_never_break_the_listing(web):
    make_product(make_vendor(), title="Lamp")
    for query in ("endpoint=x", "_method=POST", "_external=1&_scheme=javascript", "values=1"):
        response = web.get(f"/products?{query}&page=1")
        assert response.status_code == 200, query
        assert _titles(response) == ["Lamp"]
        assert "javascript:" not in response.text


def test_buyer_order_list_survives_absurd_page_numbers(web):
    from tests.helpers import login

    buyer = make_buyer()
    assert login(web, buyer.user.email).status_code == 302
    for page in ("9" * 25, "-3", "²", "abc"):
        assert web.get(f"/orders?page={page}").status_code == 200, page


def test_prices_show_the_shops_currency(app):
    make_product(make_vendor(), title="Teapot", price_cents=123456)
    with page_app(CURRENCY="eur") as euro_shop:
        page = euro_shop.test_client().get("/products").text
    assert "€1,234.56" in page and "$1,234.56" not in page
