"""A guest order joins the account with the same email only after the reader proves it is
theirs with the receipt email's signed link, through the pages' forms (docs/checkout.md): an
email that matches is never enough."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace.accounts import guests
from marketplace.accounts.models import Role, User
from marketplace.accounts.services import register
from marketplace.db import db
from marketplace.orders import guest_orders
from marketplace.orders.models import Order
from tests.functional.test_pages_guest_checkout import _paid_guest_order, _receipt_link
from tests.helpers import PASSWORD, forms_in, login, make_buyer, page_app, submit

EMAIL = "ann@example.com"


@pytest.fixture
def browser(app: Flask) -> Iterator[Callable[[], FlaskClient]]:
    """A new browser each call (its own cookies, a fresh app context per request)."""
    with page_app() as web:
        yield web.test_client


def _account(email: str = EMAIL) -> User:
    return register(email, PASSWORD, "Ann", Role.BUYER, email_verified=True)


def _buyer_of(order_id: int) -> int:
    db.session.rollback()
    return db.session.get(Order, order_id).buyer_id


def _follow(client: FlaskClient, response):
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get(response.headers["Location"])


def test_a_guest_who_has_an_account_logs_in_from_the_receipt_and_attaches_the_order(
    app, client, api, webhooks, browser
):
    account = _account()
    order = _paid_guest_order(client, api, webhooks, EMAIL)
    guest_id = order.buyer_id
    link = _receipt_link(app, order)

    # The receipt link, in another browser: the guest's order, with the way to the account.
    reader = browser()
    page = _follow(reader, reader.get(link))
    html = page.get_data(as_text=True)
    assert "exists already" in html and "Attach this order to that account" in html
    attach = f"/orders/{order.id}/attach/{link.rsplit('/', 1)[1]}"
    assert f'href="{attach}"' in html

    # Logged in as the guest, the attach page asks for the account's login first.
    offer = reader.get(attach).get_data(as_text=True)
    assert "Log in to the account for ann@example.com" in offer
    assert not forms_in(offer, attach)
    login_page = reader.get(f"/login?next={attach}")
    assert login_page.status_code == 200  # a guest may log in to an account
    logged_in = submit(reader, login_page, "/login", email=EMAIL, password=PASSWORD)
    assert logged_in.headers["Location"].endswith(attach)
    confirm = reader.get(attach)
    assert f"Attach order #{order.id} to my account" in confirm.get_data(as_text=True)
    assert _buyer_of(order.id) == guest_id  # nothing moves before the buyer confirms

    done = _follow(reader, submit(reader, confirm, attach))
    assert f"Order #{order.id} is now in your account." in done.get_data(as_text=True)
    assert _buyer_of(order.id) == account.id
    assert f"#{order.id}" in reader.get("/orders").get_data(as_text=True)
    assert not db.session.get(User, guest_id).active
    # The receipt link is spent, and the guest's old session is over.
    assert browser().get(link).status_code == 400
    assert client.get(f"/orders/{order.id}").status_code == 302


def test_an_account_opening_the_receipt_link_is_offered_the_attach(
    app, client, api, webhooks, browser
):
    """Signed up after the guest checkout, logged in when the receipt link is opened."""
    order = _paid_guest_order(client, api, webhooks, EMAIL)
    account = _account()
    link = _receipt_link(app, order)
    reader = browser()
    assert login(reader, EMAIL).status_code == 302
    opened = reader.get(link)
    assert opened.headers["Location"].endswith(f"/orders/{order.id}/attach/{link.split('/')[-1]}")
    confirm = reader.get(opened.headers["Location"])
    attach = opened.headers["Location"].split("localhost", 1)[-1]
    assert forms_in(confirm, attach)
    done = submit(reader, confirm, attach)
    assert done.status_code == 302
    assert _buyer_of(order.id) == account.id


def test_logging_in_after_opening_the_receipt_offers_the_order_on_your_orders(
    app, client, api, webhooks, browser
):
    order = _paid_guest_order(client, api, webhooks, EMAIL)
    account = _account()
    reader = browser()
    reader.get(_receipt_link(app, order))  # the guest's order, in this browser
    # Logging in by the header's link (not the attach page's): the receipt is remembered.
    assert submit(reader, reader.get("/login"), "/login", email=EMAIL, password=PASSWORD)
    orders_page = reader.get("/orders")
    html = orders_page.get_data(as_text=True)
    assert f"Guest order #{order.id}" in html and "Attach it to this account" in html
    attach = f"/orders/{order.id}/attach/{_receipt_link(app, order).split('/')[-1]}"
    submit(reader, reader.get(attach), attach)
    assert _buyer_of(order.id) == account.id
    assert "Attach it to this account" not in reader.get("/orders").get_data(as_text=True)


def test_the_same_email_without_the_receipt_link_attaches_nothing(
    app, client, api, webhooks, browser
):
    order = _paid_guest_order(client, api, webhooks, EMAIL)
    guest_id = order.buyer_id
    _account()
    owner = browser()
    assert login(owner, EMAIL).status_code == 302
    html = owner.get("/orders").get_data(as_text=True)
    assert "Attach" not in html and f"#{order.id}" not in html
    assert owner.get(f"/orders/{order.id}").status_code == 404

    # A link for another order, or a forged one, is refused before anything is shown.
    token = _receipt_link(app, order).split("/")[-1]
    assert owner.get(f"/orders/{order.id + 1}/attach/{token}").status_code == 400
    forged = guests.URLSafeTimedSerializer("not the key", salt=guests.SALT).dumps(
        {"user": guest_id, "order": order.id}
    )
    refused = owner.post_raw(f"/orders/{order.id}/attach/{forged}", data={})
    assert refused.status_code == 400
    assert _buyer_of(order.id) == guest_id


def test_another_accounts_login_cannot_attach_even_with_the_link(
    app, client, api, webhooks, browser
):
    order = _paid_guest_order(client, api, webhooks, EMAIL)
    guest_id = order.buyer_id
    other = make_buyer("Mallory")
    attach = f"/orders/{order.id}/attach/{_receipt_link(app, order).split('/')[-1]}"
    reader = browser()
    assert login(reader, other.user.email).status_code == 302
    page = reader.get(attach)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and not forms_in(html, attach)
    assert f"You are logged in as {other.user.email}" in html
    refused = reader.post_raw(attach, data={})  # deliberate: the page offers no form
    assert refused.status_code == 403
    assert _buyer_of(order.id) == guest_id
    with pytest.raises(guests.GuestOrderNotYours):
        guest_orders.attach_orders(other.id, attach.split("/")[-1], order.id)
    assert _buyer_of(order.id) == guest_id
