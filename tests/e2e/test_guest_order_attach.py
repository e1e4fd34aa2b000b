"""A buyer with an account checks out as a guest with the account's email, then attaches the
order to the account: the receipt email's link is the proof, the login the confirmation."""

from __future__ import annotations

import re

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from marketplace.db import db
from marketplace.orders.models import Order
from tests.e2e.journeys import two_vendor_shop
from tests.e2e.test_buyer_journey import ADDRESS
from tests.e2e.test_guest_checkout import _receipt_link
from tests.helpers import PASSWORD, make_buyer


def test_a_guest_order_joins_the_account_after_the_receipt_link_and_a_login(
    app, pages, api, webhooks
):
    two_vendor_shop(api, webhooks)
    account = make_buyer("Ann")
    email = account.user.email

    # A guest checkout with the account's email, paid with the test card.
    page = pages.new()
    page.goto("/")
    page.get_by_role("searchbox", name="Search products").fill("tea")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Oolong Tea").click()
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Cart", exact=True).click()
    page.get_by_role("link", name="Check out as a guest").click()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Continue as a guest").click()
    for label, value in ADDRESS.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Show shipping and tax").click()
    page.get_by_role("button", name="Place order and pay").click()
    page.get_by_role("link", name="Enter card details").click()
    page.get_by_label(re.compile("Visa 4242")).check()
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    assert webhooks.flush_webhooks()
    db.session.rollback()
    order = db.session.query(Order).one()
    guest_id = order.buyer_id
    assert guest_id != account.id

    # The account's own login shows nothing of the guest order: the email is not proof.
    owner = pages.logged_in(email)
    owner.goto("/orders")
    expect(owner.get_by_text(f"#{order.id}")).to_have_count(0)
    expect(owner.get_by_text("Attach")).to_have_count(0)
    pages.shot(owner, "account-without-the-guest-order")

    # The receipt link, in a browser of its own: the way to attach it to the account.
    reader = pages.new()
    reader.goto(_receipt_link(app.config["MAIL_DIR"], order))
    expect(reader.get_by_role("heading", name=f"Order #{order.id}", exact=False)).to_be_visible()
    pages.shot(reader, "receipt-link-account-exists")
    reader.get_by_role("link", name="Attach this order to that account").click()
    reader.get_by_role("link", name=f"Log in to the account for {email}").click()
    reader.get_by_label("Email").fill(email)
    reader.get_by_label("Password").fill(PASSWORD)
    reader.get_by_role("button", name="Log in").click()
    confirm = reader.get_by_role("button", name=f"Attach order #{order.id} to my account")
    expect(confirm).to_be_visible()
    pages.shot(reader, "attach-confirm")
    violations = Axe().run(reader).response["violations"]
    assert not [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
    confirm.click()
    expect(reader.get_by_text(f"Order #{order.id} is now in your account.")).to_be_visible()
    pages.shot(reader, "attached")
    db.session.rollback()
    assert db.session.get(Order, order.id).buyer_id == account.id

    # The account's other browser sees it too.
    owner.reload()
    expect(owner.get_by_role("link", name=f"#{order.id}")).to_be_visible()
