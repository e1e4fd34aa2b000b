"""The storefront's cart, checkout, offline payment page and order pages."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from flask import Flask

from marketplace.cart.models import CartItem
from marketplace.db import db
from marketplace.orders.models import Order
from tests.conftest import FreshSessionClient
from tests.functional.money import onboarded_vendor
from tests.helpers import (
    PASSWORD,
    Api,
    PageClient,
    forms_in,
    login,
    make_buyer,
    make_product,
    make_vendor,
    submit,
)


class _Browser(FreshSessionClient, PageClient):
    """The test app's browser: posts only forms of pages it fetched (see PageClient)."""


@pytest.fixture
def client(app: Flask) -> Any:
    return _Browser(app, app.response_class, use_cookies=True)


@pytest.fixture
def api(app: Flask) -> Api:
    """The JSON API on a client of its own (the browser posts only forms)."""
    return Api(FreshSessionClient(app, app.response_class, use_cookies=True))


ADDRESS_FORM = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def test_guest_cart_merges_at_login_capped_by_stock(client):
    product = make_product(make_vendor(), stock=3, price_cents=1200)
    variant_id = product.variants[0].id
    buyer = make_buyer()
    # The buyer already holds 2 in the database cart.
    from marketplace.cart.services import add_item

    add_item(buyer.id, variant_id, 2)
    response = submit(client, client.get(f"/products/{product.id}"), "/cart/add", quantity=2)
    assert response.status_code == 302
    page = client.get("/cart").get_data(as_text=True)
    assert product.title in page and "Log in" in page
    again = submit(client, client.get(f"/products/{product.id}"), "/cart/add", quantity=9)
    assert again.status_code == 302
    assert login(client, buyer.user.email).status_code == 302
    db.session.rollback()
    items = db.session.query(CartItem).all()
    assert [(i.variant_id, i.quantity) for i in items] == [(variant_id, 3)]  # 2 + 2 capped at 3
    with client.session_transaction() as session:
        assert "guest_cart" not in session


def test_checkout_pay_offline_and_follow_the_order(client, api, webhooks):
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=2500, stock=4)
    buyer = make_buyer()
    login(client, buyer.user.email, PASSWORD)
    submit(client, client.get(f"/products/{product.id}"), "/cart/add", quantity=2)
    form = client.get("/checkout")
    assert form.status_code == 200

    bad = submit(client, form, "/checkout", **{**ADDRESS_FORM, "country": "USA"})
    assert bad.status_code == 422
    assert db.session.query(Order).count() == 0

    placed = submit(client, bad, "/checkout", **ADDRESS_FORM)
    assert placed.status_code == 302
    pay_page = client.get(placed.headers["Location"])
    assert pay_page.status_code == 200
    pay_html = pay_page.get_data(as_text=True)
    assert "held until" in pay_html
    # The buyer follows the page's link to the emulator's card page.
    target = html_lib.unescape(
        re.search(r'href="([^"]*/_emulator/pay/[^"]*)">Enter card details', pay_html).group(1)
    )
    assert target.startswith(f"{webhooks.url}/_emulator/pay/")
    # The buyer picks the test card on the emulator's page and presses Pay.
    card_page = requests.get(target, timeout=10)
    assert card_page.status_code == 200
    (card_form,) = forms_in(card_page.text)
    submitted = requests.post(
        urljoin(target, card_form.action),
        data=card_form.data(payment_method="pm_card_visa"),
        allow_redirects=False,
        timeout=10,
    )
    assert submitted.status_code in (302, 303)
    assert "redirect_status=succeeded" in submitted.headers["Location"]
    assert webhooks.flush_webhooks()

    db.session.rollback()
    order = db.session.query(Order).one()
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "paid" in page and vendor.vendor.display_name in page
    listing = client.get("/orders").get_data(as_text=True)
    assert f"#{order.id}" in listing

    vo_id = order.vendor_orders[0].id
    api.post(
        f"/vendor/orders/{vo_id}/ship",
        vendor.token,
        json={"carrier": "UPS", "tracking_number": "1Z42"},
    )
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "1Z42" in page and "UPS" in page
    api.post(f"/vendor/orders/{vo_id}/deliver", vendor.token)
    item_id = order.vendor_orders[0].items[0].id
    order_page = client.get(f"/orders/{order.id}")
    review_action = f"/orders/{order.id}/items/{item_id}/review"
    reviewed = submit(client, order_page, review_action, rating=5, body="Great")
    assert reviewed.status_code == 302
    return_action = f"/orders/{order.id}/items/{item_id}/return"
    returned = submit(client, order_page, return_action, quantity=1, reason="Too big")
    assert returned.status_code == 302
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "Reviewed" in page
    notes = client.get("/notifications").get_data(as_text=True)
    assert "on their way" in notes


def test_someone_elses_order_page_is_404(client, api):
    product = make_product(make_vendor(), stock=2)
    owner = make_buyer()
    api.post("/cart/items", owner.token, json={"variant_id": product.variants[0].id})
    order_id = api.post(
        "/checkout",
        owner.token,
        json={"shipping_address": {**ADDRESS_FORM}},
        headers={"Idempotency-Key": "k"},
    ).get_json()["order"]["id"]
    other = make_buyer()
    login(client, other.user.email)
    assert client.get(f"/orders/{order_id}").status_code == 404
    # Deliberate: another buyer's order, which no page of this buyer offers.
    assert client.post_raw(f"/orders/{order_id}/cancel").status_code == 404
    assert client.get(f"/orders/{order_id}/pay").status_code == 404
    db.session.rollback()
    assert db.session.get(Order, order_id).status.value == "pending_payment"


def test_a_cancelled_order_has_nothing_to_pay(client, api, webhooks):
    product = make_product(make_vendor(), price_cents=900, stock=2)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    body = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": ADDRESS_FORM},
        headers={"Idempotency-Key": "cancel-then-pay"},
    ).get_json()
    order_id = body["order"]["id"]
    assert api.post(f"/orders/{order_id}/cancel", buyer.token).status_code == 200

    login(client, buyer.user.email, PASSWORD)
    response = client.get(f"/orders/{order_id}/pay")
    assert response.status_code == 302
    assert urlsplit(response.location).path == f"/orders/{order_id}"
    page = client.get(response.location).get_data(as_text=True)
    assert "This order is cancelled: there is nothing to pay." in page
