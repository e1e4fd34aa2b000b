"""A declined card on the emulator's page leaves the cart and the stock as they were."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from marketplace.cart.models import CartItem
from marketplace.catalog.models import Variant
from marketplace.db import db
from marketplace.orders.models import Order
from tests.helpers import make_buyer, make_product, make_vendor

ADDRESS = {
    "Full name": "Bea Buyer",
    "Address": "1 Main St",
    "City": "Springfield",
    "Postal code": "94000",
    "Country (2 letters, e.g. US)": "US",
}


def test_a_declined_card_gives_the_cart_and_the_stock_back(pages, login_page, webhooks):
    product = make_product(make_vendor("Kites"), title="Box Kite", price_cents=3100, stock=3)
    variant_id = product.variants[0].id
    buyer = make_buyer()
    page = login_page(buyer.user.email)
    page.get_by_role("link", name="Products", exact=True).click()
    page.get_by_role("link", name="Box Kite").click()
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    for label, value in ADDRESS.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Show shipping and tax").click()
    page.get_by_role("button", name="Place order and pay").click()
    db.session.rollback()
    assert db.session.get(Variant, variant_id).reserved == 2
    assert db.session.query(CartItem).count() == 0

    page.get_by_role("link", name="Enter card details").click()
    page.get_by_label(re.compile("declined", re.I)).first.check()
    pages.shot(page, "card-declined")
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(page.get_by_text("Your card was declined.")).to_be_visible()
    assert webhooks.flush_webhooks()
    page.reload()
    expect(page.get_by_text("The payment was declined")).to_be_visible()
    pages.shot(page, "order-declined")

    db.session.rollback()
    assert db.session.query(Order).one().status.value == "payment_failed"
    assert db.session.get(Variant, variant_id).reserved == 0
    assert [(i.variant_id, i.quantity) for i in db.session.query(CartItem)] == [(variant_id, 2)]
    page.get_by_role("link", name="check out again from your cart").click()
    expect(page.locator("[data-variant]").get_by_text("Box Kite")).to_be_visible()
