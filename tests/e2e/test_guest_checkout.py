"""A visitor buys from two vendors without an account: through the product pages, the
checkout's quote, an email instead of a login, the test card; then opens the receipt email's
link in another browser and keeps the order by setting a password."""

from __future__ import annotations

import email
import re
from pathlib import Path

from playwright.sync_api import expect

from marketplace.accounts.models import User
from marketplace.db import db
from marketplace.orders.models import Order
from tests.e2e.journeys import two_vendor_shop
from tests.e2e.test_buyer_journey import ADDRESS, cents

GUEST_EMAIL = "gus.guest@example.com"
GUEST_PASSWORD = "a guest who stays"


def _receipt_link(mail_dir: str, order: Order) -> str:
    path = Path(mail_dir) / f"order_paid_{order.id}_user_{order.buyer_id}.eml"
    message = email.message_from_bytes(path.read_bytes())
    text = next(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )
    match = re.search(r"https?://\S+/orders/\d+/receipt/\S+", text)
    assert match, text
    return match.group(0)


def test_a_guest_buys_opens_the_receipt_link_and_creates_the_account(
    app, pages, login_page, api, webhooks, site
):
    shop = two_vendor_shop(api, webhooks)
    page = pages.new()
    page.goto("/")

    # Both vendors' products, added through their product pages.
    page.get_by_role("searchbox", name="Search products").fill("lantern")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Storm Lantern").click()
    page.get_by_label(re.compile(r"size: S")).check()
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("Added to your cart.")).to_be_visible()
    page.get_by_role("link", name="Products", exact=True).first.click()
    page.get_by_role("link", name="Oolong Tea").click()
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("Added to your cart.")).to_be_visible()
    expect(page.locator(f"[data-vendor='{shop.lanterns.vendor.id}']")).to_be_visible()
    expect(page.locator(f"[data-vendor='{shop.teas.vendor.id}']")).to_be_visible()
    pages.shot(page, "guest-cart")

    # An email instead of an account.
    page.get_by_role("link", name="Check out as a guest").click()
    page.get_by_label("Email").fill("not an email")
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.locator("ul.errors")).to_be_visible()
    pages.shot(page, "guest-email-refused")
    page.get_by_label("Email").fill(GUEST_EMAIL)
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.get_by_text(f"the receipt goes to {GUEST_EMAIL}")).to_be_visible()

    # Shipping and tax before the order is placed.
    for label, value in ADDRESS.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Show shipping and tax").click()
    quote = page.locator("[data-quote]")
    expect(quote).to_be_visible()
    pages.shot(page, "guest-checkout-quote")
    quoted = {
        "shipping": cents(quote.locator("[data-field=shipping_total]")),
        "tax": cents(quote.locator("[data-field=tax_total]")),
        "total": cents(quote.locator("[data-field=grand_total]")),
    }
    assert quoted == {"shipping": 800, "tax": 348 + 91, "total": 4800 + 500 + 348 + 1250 + 300 + 91}
    assert db.session.query(Order).count() == 0

    page.get_by_role("button", name="Place order and pay").click()
    expect(page.get_by_role("heading", name=re.compile(r"Pay for order"))).to_be_visible()
    pages.shot(page, "guest-pay")
    db.session.rollback()
    order = db.session.query(Order).one()
    assert order.total_cents == quoted["total"]
    assert db.session.get(User, order.buyer_id).is_guest

    page.get_by_role("link", name="Enter card details").click()
    page.get_by_label(re.compile("Visa 4242")).check()
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(page.get_by_role("heading", name=f"Order #{order.id}", exact=False)).to_be_visible()
    assert webhooks.flush_webhooks()
    page.reload()
    parts = page.locator("section.vendor-order")
    expect(parts).to_have_count(2)
    for part in parts.all():
        expect(part.locator(".badge").first).to_have_text("paid")
    expect(page.get_by_role("heading", name="Keep track of this order")).to_be_visible()
    pages.shot(page, "guest-order-paid")

    # The receipt's link opens the order in a browser that never logged in.
    link = _receipt_link(app.config["MAIL_DIR"], order)
    assert link.startswith(f"{site}/orders/{order.id}/receipt/")
    elsewhere = pages.new()
    elsewhere.goto(link)
    expect(elsewhere.get_by_role("heading", name=f"Order #{order.id}", exact=False)).to_be_visible()
    expect(elsewhere.locator("section.vendor-order")).to_have_count(2)
    pages.shot(elsewhere, "receipt-link")
    tampered = pages.new()
    tampered.goto(link[:-3] + "xyz")
    expect(tampered.get_by_text("This order link is not valid.")).to_be_visible()

    # Set a password: a normal account with the order in it.
    elsewhere.get_by_label("Password", exact=True).fill(GUEST_PASSWORD)
    elsewhere.get_by_label("Repeat the password").fill(GUEST_PASSWORD)
    elsewhere.get_by_role("button", name="Create my account").click()
    expect(elsewhere.get_by_text("Your account is ready")).to_be_visible()
    expect(elsewhere.get_by_text(f"#{order.id}")).to_be_visible()
    pages.shot(elsewhere, "account-created")
    db.session.rollback()
    assert not db.session.get(User, order.buyer_id).is_guest

    later = login_page(GUEST_EMAIL, GUEST_PASSWORD)
    later.goto("/orders")
    expect(later.get_by_text(f"#{order.id}")).to_be_visible()
    pages.shot(later, "logged-in-orders")
