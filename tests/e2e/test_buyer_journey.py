"""A buyer finds products, adds them through the product pages, sees the checkout's quote,
pays on the emulator's card page and follows the order per vendor part."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from marketplace.db import db
from marketplace.inventory.models import Reservation
from marketplace.orders.models import Order
from tests.e2e.journeys import two_vendor_shop
from tests.helpers import make_buyer

ADDRESS = {
    "Full name": "Bea Buyer",
    "Address": "1 Main St",
    "City": "Springfield",
    "State / region": "CA",
    "Postal code": "94000",
    "Country (2 letters, e.g. US)": "US",
}


def cents(locator) -> int:
    return int(locator.get_attribute("data-cents"))


def test_buyer_buys_from_two_vendors_through_the_pages(pages, login_page, api, webhooks):
    shop = two_vendor_shop(api, webhooks)
    buyer = make_buyer("Bea")
    page = login_page(buyer.user.email)

    # Search with the box on every page, open the product.
    page.get_by_role("searchbox", name="Search products").fill("lantern")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Storm Lantern").click()
    expect(page.get_by_role("heading", name="Storm Lantern")).to_be_visible()
    pages.shot(page, "product")

    # The sold-out option cannot be picked; the other one can.
    expect(page.get_by_label(re.compile(r"size: L"))).to_be_disabled()
    page.get_by_label(re.compile(r"size: S")).check()
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("Added to your cart.")).to_be_visible()

    # The vendor's public page, then the other vendor's product through the catalog.
    page.get_by_role("link", name="Products", exact=True).first.click()
    page.get_by_role("link", name="Oolong Tea").click()
    page.get_by_role("link", name="Tea Garden").click()
    expect(page.get_by_role("heading", name="Tea Garden")).to_be_visible()
    pages.shot(page, "vendor")
    page.get_by_role("link", name="Oolong Tea").click()
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("Added to your cart.")).to_be_visible()

    # The cart, grouped by vendor, with each vendor's shipping.
    lanterns = page.locator(f"[data-vendor='{shop.lanterns.vendor.id}']")
    teas = page.locator(f"[data-vendor='{shop.teas.vendor.id}']")
    expect(lanterns.get_by_text("Storm Lantern")).to_be_visible()
    expect(teas.get_by_text("Oolong Tea")).to_be_visible()
    assert cents(lanterns.locator("[data-field=shipping]")) == 500
    expect(lanterns.get_by_text("Spend $52.00 more for free shipping")).to_be_visible()
    assert cents(teas.locator("[data-field=shipping]")) == 300
    pages.shot(page, "cart")

    # Checkout: the address, then every number before the order is placed.
    page.get_by_role("link", name="Check out").click()
    for label, value in ADDRESS.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Show shipping and tax").click()
    quote = page.locator("[data-quote]")
    expect(quote).to_be_visible()
    pages.shot(page, "checkout-quote")
    quoted = {
        "shipping": cents(quote.locator("[data-field=shipping_total]")),
        "tax": cents(quote.locator("[data-field=tax_total]")),
        "total": cents(quote.locator("[data-field=grand_total]")),
    }
    assert quoted == {"shipping": 800, "tax": 348 + 91, "total": 4800 + 500 + 348 + 1250 + 300 + 91}
    assert db.session.query(Order).count() == 0 and db.session.query(Reservation).count() == 0

    page.get_by_role("button", name="Place order and pay").click()
    expect(page.get_by_role("heading", name=re.compile(r"Pay for order"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"held until \d\d:\d\d UTC"))).to_be_visible()
    pages.shot(page, "pay")
    db.session.rollback()
    order = db.session.query(Order).one()
    assert (order.shipping_cents, order.tax_cents, order.total_cents) == (
        quoted["shipping"],
        quoted["tax"],
        quoted["total"],
    )

    # The emulator's card page, as Stripe's would be.
    page.get_by_role("link", name="Enter card details").click()
    page.get_by_label(re.compile("Visa 4242")).check()
    pages.shot(page, "card")
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(page.get_by_role("heading", name=f"Order #{order.id}", exact=False)).to_be_visible()
    assert webhooks.flush_webhooks()
    page.reload()
    parts = page.locator("section.vendor-order")
    expect(parts).to_have_count(2)
    for part in parts.all():
        expect(part.locator(".badge").first).to_have_text("paid")
    pages.shot(page, "order-paid")
    db.session.rollback()
    assert db.session.get(Order, order.id).status.value == "paid"
