"""Each line's picture on the pages that list lines (the buyer's cart, a guest's cart, an
order, the list of orders, the vendor's orders), loaded by the query that already loads the
lines: a page with three lines sends as many statements as a page with one, and no statement
reads the pictures on their own."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from marketplace.cart import services as carts
from marketplace.catalog.models import Product
from marketplace.db import db
from marketplace.images import services as images
from tests.functional.money import checkout
from tests.helpers import (
    Account,
    VendorAccount,
    forms_in,
    login,
    make_buyer,
    make_product,
    make_vendor,
    page_app,
    submit,
)
from tests.image_files import image_bytes

COLOURS = ((200, 0, 0), (0, 150, 0), (0, 0, 200))


@pytest.fixture
def web(app: Flask) -> Iterator[Flask]:
    with page_app() as web_app:
        yield web_app


@pytest.fixture
def seller() -> VendorAccount:
    return make_vendor("Seller")


@pytest.fixture
def products(seller: VendorAccount) -> list[Product]:
    """Three products with a picture each (the alt text names them), one without."""
    made = []
    for n, colour in enumerate(COLOURS):
        product = make_product(seller, title=f"Mug {n}", stock=20)
        images.add_image(
            seller.vendor.id, product.id, image_bytes(colour=colour), alt_text=f"Mug {n} photo"
        )
        made.append(product)
    made.append(make_product(seller, title="Plain box", stock=20))
    return made


def _pictures(html: str) -> dict[str, str]:
    """alt text → src of each line picture on the page."""
    return {
        alt: src
        for src, alt in re.findall(
            r'<img class="line-thumb[^"]*" src="([^"]+)" alt="([^"]*)"', html
        )
    }


def _sent(client: FlaskClient, path: str) -> tuple[str, list[str]]:
    """The page, and every statement (in full) its request sent to the page app's database."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("BEGIN"):
            sent.append(" ".join(statement.split()))

    with client.application.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200, path
    return response.get_data(as_text=True), sent


def _no_picture_query_of_its_own(sql: list[str], lines_table: str) -> None:
    for statement in sql:
        if "product_images" in statement:
            assert lines_table in statement, f"pictures read on their own: {statement}"


def _logged_in(web: Flask, account: Account) -> FlaskClient:
    client = web.test_client()
    assert login(client, account.user.email).status_code == 302
    return client


def _grow(products: list[Product], add: Callable[[Product], Any], counts: Callable[[], Any]):
    """Statements of the page with one line, then with all four (one without a picture)."""
    add(products[0])
    one = counts()
    for product in products[1:]:
        add(product)
    return one, counts()


def test_the_buyers_cart_shows_each_lines_picture_in_the_cart_query(web, products):
    buyer = make_buyer()
    client = _logged_in(web, buyer)
    (_, one), (html, four) = _grow(
        products,
        lambda p: carts.add_item(buyer.id, p.variants[0].id, 1),
        lambda: _sent(client, "/cart"),
    )
    assert len(four) == len(one), (one, four)
    _no_picture_query_of_its_own(four, "cart_items")
    shown = _pictures(html)
    for product in products[:3]:
        assert shown[f"{product.title} photo"] == product.images[0].url("320")
    assert "placeholder.svg" in html


def test_a_guests_cart_shows_each_lines_picture_in_one_query(web, products):
    client = web.test_client()

    def add(product: Product) -> None:
        page = client.get(f"/products/{product.id}")
        added = submit(
            client, page, "/cart/add", variant_id=str(product.variants[0].id), quantity="1"
        )
        assert added.status_code == 302

    (_, one), (html, four) = _grow(products, add, lambda: _sent(client, "/cart"))
    assert len(four) == len(one), (one, four)
    _no_picture_query_of_its_own(four, "variants")
    shown = _pictures(html)
    assert set(shown) == {f"{p.title} photo" for p in products[:3]} | {""}


def _order_of(api: Any, buyer: Account, lines: list[Product], key: str) -> int:
    for product in lines:
        carts.add_item(buyer.id, product.variants[0].id, 1)
    return checkout(api, buyer, key)["order"]["id"]


def test_an_order_and_the_order_list_show_each_items_picture(web, api, products):
    buyer = make_buyer()
    small = _order_of(api, buyer, products[:1], "small")
    large = _order_of(api, buyer, products, "large")
    client = _logged_in(web, buyer)

    _, one = _sent(client, f"/orders/{small}")
    html, four = _sent(client, f"/orders/{large}")
    assert len(four) == len(one), (one, four)
    _no_picture_query_of_its_own(four, "order_items")
    shown = _pictures(html)
    for product in products[:3]:
        assert shown[f"{product.title} photo"] == product.images[0].url("320")

    listed, sql = _sent(client, "/orders")
    _no_picture_query_of_its_own(sql, "order_items")
    row = listed.split(f'href="/orders/{large}"')[1].split("</tr>")[0]
    assert set(_pictures(row)) == {f"{p.title} photo" for p in products[:3]} | {""}


def test_the_vendors_orders_show_each_items_picture(web, api, seller, products):
    buyer = make_buyer()
    _order_of(api, buyer, products[:1], "small")
    client = _logged_in(web, seller)
    _, one = _sent(client, "/vendor/orders?tab=all")
    _order_of(api, buyer, products, "large")
    html, two_orders = _sent(client, "/vendor/orders?tab=all")
    assert len(two_orders) == len(one), (one, two_orders)
    _no_picture_query_of_its_own(two_orders, "order_items")
    assert set(_pictures(html)) == {f"{p.title} photo" for p in products[:3]} | {""}
    assert forms_in(html)  # the search form is still there
