"""Each rate limit answers 429 in API.md's error shape with Retry-After (issue 13). The limits
are settings: these tests set them low on an app of their own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from marketplace.accounts.models import User
from marketplace.db import db
from marketplace.extensions import limiter
from tests.functional.money import ADDRESS
from tests.helpers import (
    PASSWORD,
    Api,
    assert_error,
    make_buyer,
    make_product,
    make_vendor,
    page_app,
)

HIGH = "1000 per minute"


@pytest.fixture
def limited(app: Flask) -> Iterator[Any]:
    """`limited(LOGIN_RATE_LIMIT="2 per minute")` → a test client of an app with those limits."""
    opened: list[Any] = []

    def build(**limits: str) -> Any:
        context = page_app(RATELIMIT_ENABLED=True, **limits)
        web = context.__enter__()
        opened.append(context)
        limiter.reset()
        return web.test_client()

    yield build
    for context in opened:
        context.__exit__(None, None, None)


def assert_limited(response: Any) -> None:
    error = assert_error(response, 429, "rate_limited")
    assert error["message"]
    assert int(response.headers["Retry-After"]) > 0


def _token(client: Any, email: str, password: str, address: str = "198.51.100.1") -> Any:
    return client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_failed_logins_per_address(limited: Any) -> None:
    buyer = make_buyer()
    client = limited(LOGIN_RATE_LIMIT="2 per minute", LOGIN_ACCOUNT_RATE_LIMIT=HIGH)
    assert _token(client, buyer.user.email, PASSWORD).status_code == 200  # success: not counted
    assert _token(client, buyer.user.email, "wrong").status_code == 401
    assert _token(client, "other@example.com", "wrong").status_code == 401
    assert_limited(_token(client, buyer.user.email, PASSWORD))
    # Another address is not held back.
    assert _token(client, buyer.user.email, PASSWORD, address="198.51.100.2").status_code == 200


def test_failed_logins_per_account_from_any_address(limited: Any) -> None:
    buyer, other = make_buyer(), make_buyer()
    client = limited(LOGIN_RATE_LIMIT=HIGH, LOGIN_ACCOUNT_RATE_LIMIT="2 per minute")
    assert _token(client, buyer.user.email, "wrong", "203.0.113.1").status_code == 401
    assert _token(client, buyer.user.email.upper(), "wrong", "203.0.113.2").status_code == 401
    assert_limited(_token(client, buyer.user.email, PASSWORD, "203.0.113.3"))
    assert _token(client, other.user.email, PASSWORD, "203.0.113.3").status_code == 200


def test_html_login_is_limited_too(limited: Any) -> None:
    buyer = make_buyer()
    client = limited(LOGIN_RATE_LIMIT="1 per minute", LOGIN_ACCOUNT_RATE_LIMIT=HIGH)
    form = {"email": buyer.user.email, "password": "wrong"}
    assert client.get("/login").status_code == 200  # the page with the form
    assert client.post("/login", data=form).status_code == 401
    response = client.post("/login", data={**form, "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/login").status_code == 200  # only POSTs count


def test_registrations_per_address(limited: Any) -> None:
    client = limited(REGISTER_RATE_LIMIT="2 per minute")

    def register(n: int) -> Any:
        return client.post(
            "/api/v1/auth/register",
            json={"email": f"new{n}@example.com", "password": PASSWORD, "name": "N"},
        )

    assert register(1).status_code == 201
    assert register(2).status_code == 201
    assert_limited(register(3))
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(User)) == 2


def test_checkouts_per_buyer(limited: Any) -> None:
    vendor = make_vendor()
    variant = make_product(vendor, stock=10).variants[0]
    first, second = make_buyer(), make_buyer()
    client = limited(CHECKOUT_RATE_LIMIT="1 per minute", CART_RATE_LIMIT=HIGH)
    api = Api(client)

    def checkout(buyer: Any, key: str) -> Any:
        api.post("/cart/items", buyer.token, json={"variant_id": variant.id, "quantity": 1})
        return api.post(
            "/checkout",
            buyer.token,
            json={"shipping_address": ADDRESS},
            headers={"Idempotency-Key": key},
        )

    assert checkout(first, "a").status_code == 201
    assert_limited(checkout(first, "b"))
    assert checkout(second, "c").status_code == 201  # per buyer, though from one address


def test_cart_writes_per_buyer(limited: Any) -> None:
    vendor = make_vendor()
    variant = make_product(vendor, stock=10).variants[0]
    first, second = make_buyer(), make_buyer()
    api = Api(limited(CART_RATE_LIMIT="2 per minute"))
    add = {"variant_id": variant.id, "quantity": 1}
    assert api.post("/cart/items", first.token, json=add).status_code == 201
    item_id = api.get("/cart", first.token).get_json()["items"][0]["id"]
    patched = api.patch(f"/cart/items/{item_id}", first.token, json={"quantity": 3})
    assert patched.status_code == 200
    assert_limited(api.delete(f"/cart/items/{item_id}", first.token))
    assert api.get("/cart", first.token).status_code == 200  # reading is not a write
    assert api.post("/cart/items", second.token, json=add).status_code == 201


def test_the_webhook_and_probes_are_exempt(app: Flask) -> None:
    from flask_limiter import ExemptionScope

    manager = limiter.limit_manager
    assert manager.exemption_scope(app, "webhooks.stripe_webhook", "webhooks") != (
        ExemptionScope.NONE
    )
    assert manager.exemption_scope(app, "health.readyz", "health") != ExemptionScope.NONE
    assert manager.exemption_scope(app, "api.create_token", "api") == ExemptionScope.NONE
