"""Guest checkout through the pages' forms: an email instead of an account, the receipt's
signed link, and the account set up after paying (docs/checkout.md)."""

from __future__ import annotations

import email
import html as html_lib
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from marketplace.accounts import guests
from marketplace.accounts.models import User
from marketplace.cart.models import Cart
from marketplace.catalog.services import update_vendor_settings
from marketplace.db import db
from marketplace.extensions import limiter
from marketplace.orders.models import Order
from marketplace.orders.tax import set_rate
from tests.functional.money import onboarded_vendor
from tests.helpers import forms_in, login, make_buyer, make_product, make_vendor, page_app, submit

ADDRESS_FORM = {
    "name": "Gus Guest",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}
GUEST_PASSWORD = "a guest who stays"


@pytest.fixture
def browser(app: Flask) -> Iterator[Callable[[], FlaskClient]]:
    """Another browser: a client of an app of its own (the `client` fixture's requests share
    the test's app context, and so Flask-Login's cached user)."""
    with page_app() as web:
        yield web.test_client


def _receipt(app: Flask, order: Order) -> str:
    """The text of the order's receipt email (the file the mail store wrote)."""
    path = Path(app.config["MAIL_DIR"]) / f"order_paid_{order.id}_user_{order.buyer_id}.eml"
    assert path.exists(), "no receipt email"
    message = email.message_from_bytes(path.read_bytes())
    return next(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )


def _receipt_link(app: Flask, order: Order) -> str:
    match = re.search(r"https?://\S+/receipt/\S+", _receipt(app, order))
    assert match, "no order link in the receipt"
    return urlsplit(match.group(0)).path


def _guest_places_order(client: FlaskClient, product: Any, email_address: str) -> Any:
    """A visitor fills the cart, checks out as a guest and places the order: the pay page."""
    submit(client, client.get(f"/products/{product.id}"), "/cart/add", quantity=2)
    cart = client.get("/cart").get_data(as_text=True)
    assert 'href="/checkout/guest"' in cart
    started = submit(client, client.get("/checkout/guest"), "/checkout/guest", email=email_address)
    assert started.status_code == 302 and started.headers["Location"].endswith("/checkout")
    form = client.get("/checkout")
    quoted = submit(client, form, "/checkout", step="quote", **ADDRESS_FORM)
    assert quoted.status_code == 200 and 'data-field="tax_total"' in quoted.get_data(as_text=True)
    placed = submit(client, quoted, "/checkout", step="place")
    assert placed.status_code == 302, placed.get_data(as_text=True)
    return client.get(placed.headers["Location"])


def _pay(pay_page: Any, webhooks: Any) -> None:
    """Pay on the emulator's card page with the test card, then deliver its webhooks."""
    pay_html = pay_page.get_data(as_text=True)
    target = html_lib.unescape(
        re.search(r'href="([^"]*/_emulator/pay/[^"]*)">Enter card details', pay_html).group(1)
    )
    query = parse_qs(urlsplit(target).query)
    submitted = requests.post(
        target.split("?")[0],
        data={
            "payment_method": "pm_card_visa",
            "client_secret": query["client_secret"][0],
            "return_url": query["return_url"][0],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert "redirect_status=succeeded" in submitted.headers["Location"]
    assert webhooks.flush_webhooks()


def _paid_guest_order(client: FlaskClient, api: Any, webhooks: Any, email_address: str) -> Order:
    vendor = onboarded_vendor(api, webhooks)
    update_vendor_settings(vendor.vendor.id, shipping_flat_cents=450)
    set_rate("US", "CA", 1000)
    product = make_product(vendor, price_cents=2500, stock=4)
    _pay(_guest_places_order(client, product, email_address), webhooks)
    db.session.rollback()
    return db.session.query(Order).one()


def test_a_guest_checks_out_pays_opens_the_receipt_link_and_keeps_an_account(
    app, client, api, webhooks, browser
):
    order = _paid_guest_order(client, api, webhooks, "Gus@Example.com")
    guest = db.session.get(User, order.buyer_id)
    assert guest.is_guest and guest.email == "gus@example.com"
    # The same pricing as any buyer's: items, the vendor's shipping and the tax.
    assert (order.subtotal_cents, order.shipping_cents) == (5000, 450)
    assert order.tax_cents > 0 and order.total_cents == 5450 + order.tax_cents
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "paid" in page and "Keep track of this order" in page

    receipt = _receipt(app, order)
    assert "checked out as a guest" in receipt
    link = _receipt_link(app, order)
    other_browser = browser()
    assert other_browser.get(f"/orders/{order.id}").status_code == 302  # to the login page
    opened = other_browser.get(link)
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/orders/{order.id}")
    assert "Keep track of this order" in other_browser.get(f"/orders/{order.id}").get_data(
        as_text=True
    )

    # The account page of a guest is the offer to set a password.
    assert client.get("/account").headers["Location"].endswith("/account/keep")
    assert forms_in(client.get("/account/keep"), "/account/keep")
    order_page = client.get(f"/orders/{order.id}")
    short = submit(client, order_page, "/account/keep", password="short", confirm="short")
    assert short.status_code == 422
    kept = submit(
        client, order_page, "/account/keep", password=GUEST_PASSWORD, confirm=GUEST_PASSWORD
    )
    assert kept.status_code == 302 and kept.headers["Location"].endswith("/orders")
    assert f"#{order.id}" in client.get("/orders").get_data(as_text=True)
    db.session.rollback()
    account = db.session.get(User, order.buyer_id)
    assert not account.is_guest and account.email_verified_at is None
    assert list(Path(app.config["MAIL_DIR"]).glob(f"verify_email_*_user_{account.id}.eml"))
    # A normal account now: it logs in with the password, and the guest link is spent.
    fresh = browser()
    assert login(fresh, "gus@example.com", GUEST_PASSWORD).status_code == 302
    assert f"#{order.id}" in fresh.get("/orders").get_data(as_text=True)
    assert browser().get(link).status_code == 400
    assert "Keep track of this order" not in client.get(f"/orders/{order.id}").get_data(
        as_text=True
    )


def test_a_bad_email_is_refused_and_changes_nothing(client):
    product = make_product(make_vendor(), stock=3)
    submit(client, client.get(f"/products/{product.id}"), "/cart/add", quantity=1)
    users = db.session.query(User).count()
    for bad in ("not-an-email", "a@b"):
        page = submit(client, client.get("/checkout/guest"), "/checkout/guest", email=bad)
        assert page.status_code == 422
        assert forms_in(page, "/checkout/guest")  # the form again, with the message
        assert '<ul class="errors"><li>' in page.get_data(as_text=True)  # under the email
    db.session.rollback()
    assert db.session.query(User).count() == users
    assert client.get("/checkout").status_code == 302  # still not checked in as anyone
    assert product.title in client.get("/cart").get_data(as_text=True)


def test_the_email_of_an_account_never_opens_that_account(app, client, api, webhooks, browser):
    owner = make_buyer()
    vendor = onboarded_vendor(api, webhooks)
    theirs = make_product(vendor, title="Their lamp", price_cents=1000, stock=5)
    api.post("/cart/items", owner.token, json={"variant_id": theirs.variants[0].id})
    owner_order = api.post(
        "/checkout",
        owner.token,
        json={"shipping_address": {**ADDRESS_FORM}},
        headers={"Idempotency-Key": "owner"},
    ).get_json()["order"]["id"]
    api.post("/cart/items", owner.token, json={"variant_id": theirs.variants[0].id})

    product = make_product(vendor, title="Guest tea", price_cents=2500, stock=4)
    _pay(_guest_places_order(client, product, owner.user.email), webhooks)
    db.session.rollback()
    order = db.session.query(Order).filter(Order.id != owner_order).one()
    assert order.buyer_id != owner.id
    # The guest session sees its own order only: not the account's orders nor its cart.
    assert client.get(f"/orders/{owner_order}").status_code == 404
    assert f"#{owner_order}" not in client.get("/orders").get_data(as_text=True)
    assert "Their lamp" not in client.get("/cart").get_data(as_text=True)
    owner_cart = db.session.query(Cart).filter_by(buyer_id=owner.id).one()
    assert [i.variant_id for i in owner_cart.items] == [theirs.variants[0].id]
    # No account is made over the real one: the page says to log in instead.
    page = client.get(f"/orders/{order.id}")
    assert not forms_in(page, "/account/keep")
    assert "exists already" in page.get_data(as_text=True)
    assert "This email has an account with us" in _receipt(app, order)
    # The owner's login still finds the owner.
    assert login(browser(), owner.user.email).status_code == 302


def test_the_receipt_link_expired_tampered_or_for_another_order(
    app, client, api, webhooks, monkeypatch, browser
):
    order = _paid_guest_order(client, api, webhooks, "link@example.com")
    link = _receipt_link(app, order)
    token = link.rsplit("/", 1)[1]
    stranger = browser()
    tampered = stranger.get(link[:-2] + ("AA" if not link.endswith("AA") else "BB"))
    assert tampered.status_code == 400
    other = stranger.get(f"/orders/{order.id + 1}/receipt/{token}")
    assert other.status_code == 400
    forged = guests.URLSafeTimedSerializer("not the key", salt=guests.SALT).dumps(
        {"user": order.buyer_id, "order": order.id}
    )
    assert stranger.get(f"/orders/{order.id}/receipt/{forged}").status_code == 400
    assert stranger.get(f"/orders/{order.id}").status_code == 302  # none of them logged in
    monkeypatch.setattr(guests, "LINK_MAX_AGE", timedelta(seconds=-1))
    expired = stranger.get(link)
    assert expired.status_code == 400 and "expired" in expired.get_data(as_text=True)
    monkeypatch.undo()
    assert stranger.get(link).status_code == 302


def test_guest_checkouts_are_rate_limited_per_address(app: Flask) -> None:
    with page_app(RATELIMIT_ENABLED=True, GUEST_CHECKOUT_RATE_LIMIT="2 per hour") as web:
        limiter.reset()
        browser = web.test_client()
        codes = [
            submit(
                browser,
                browser.get("/checkout/guest"),
                "/checkout/guest",
                email=f"g{i}@example.com",
            ).status_code
            for i in range(3)
        ]
        limiter.reset()
    assert codes == [302, 302, 429]
    db.session.rollback()
    assert db.session.query(User).filter(User.is_guest).count() == 2


def test_a_guest_checks_out_when_verification_is_required_but_its_account_then_waits(
    app, client, api, webhooks
):
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=1500, stock=4)
    with page_app(REQUIRE_EMAIL_VERIFICATION=True) as web:
        visitor = web.test_client()
        pay_page = _guest_places_order(visitor, product, "strict@example.com")
        assert "Pay for order" in pay_page.get_data(as_text=True)
        db.session.rollback()  # end the read snapshot: see what the requests committed
        order = db.session.query(Order).one()
        order_page = visitor.get(f"/orders/{order.id}")
        kept = submit(
            visitor, order_page, "/account/keep", password=GUEST_PASSWORD, confirm=GUEST_PASSWORD
        )
        assert kept.status_code == 302
        # Now an account like any other: unconfirmed, so its checkout waits for the email.
        submit(visitor, visitor.get(f"/products/{product.id}"), "/cart/add", quantity=1)
        form = visitor.get("/checkout")
        refused = submit(visitor, form, "/checkout", step="place", **ADDRESS_FORM)
        db.session.rollback()  # end the read snapshot: see what the requests committed
        assert db.session.query(Order).count() == 1
        assert refused.status_code == 302 and refused.headers["Location"].endswith("/cart")
        assert "confirm" in visitor.get("/cart").get_data(as_text=True).lower()
