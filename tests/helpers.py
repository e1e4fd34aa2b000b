"""Test helpers: an API client wrapper and builders that go through the real services."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from marketplace.accounts import services as accounts
from marketplace.accounts.models import Role, User
from marketplace.catalog import services as catalog
from marketplace.catalog.models import Product, ProductStatus, Vendor, VendorStatus

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


class Api:
    """`api.post("/vendor/products", token, json={...})` → response, under /api/v1."""

    def __init__(self, client: FlaskClient):
        self.client = client

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> TestResponse:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, token: str | None = None, **kw: Any) -> TestResponse:
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> TestResponse:
        return self.call("POST", path, token, **kw)

    def patch(self, path: str, token: str | None = None, **kw: Any) -> TestResponse:
        return self.call("PATCH", path, token, **kw)

    def put(self, path: str, token: str | None = None, **kw: Any) -> TestResponse:
        return self.call("PUT", path, token, **kw)

    def delete(self, path: str, token: str | None = None, **kw: Any) -> TestResponse:
        return self.call("DELETE", path, token, **kw)


def assert_error(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is API.md's error shape with this status (and code)."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if code is not None:
        assert error["code"] == code, error
    return error


@dataclass
class Account:
    user: User
    token: str

    @property
    def id(self) -> int:
        return self.user.id


@dataclass
class VendorAccount(Account):
    vendor: Vendor


def make_buyer(name: str = "Buyer") -> Account:
    n = next(_counter)
    user = accounts.register(f"buyer{n}@example.com", PASSWORD, f"{name} {n}", Role.BUYER)
    return Account(user, accounts.issue_token(user))


def make_admin() -> Account:
    n = next(_counter)
    user = accounts.create_admin(f"admin{n}@example.com", PASSWORD)
    return Account(user, accounts.issue_token(user))


def make_vendor(
    name: str = "Vendor", *, approved: bool = True, payable: bool = True
) -> VendorAccount:
    """A vendor account; `payable` marks Connect onboarding done without a Stripe account
    (enough to sell; tests of money movement onboard through the emulator instead)."""
    n = next(_counter)
    user = accounts.register(f"vendor{n}@example.com", PASSWORD, f"{name} {n}", Role.VENDOR)
    vendor = catalog.vendor_for_user(user.id)
    if approved:
        catalog.set_vendor_status(vendor.id, VendorStatus.APPROVED)
    if payable:
        vendor = catalog.set_payouts_enabled(vendor.id, True)
    return VendorAccount(user, accounts.issue_token(user), vendor)


def make_product(
    vendor: Vendor | VendorAccount,
    *,
    title: str | None = None,
    price_cents: int = 1000,
    stock: int = 10,
    brand: str | None = "Acme",
    category: str | None = "Gear",
    status: ProductStatus = ProductStatus.ACTIVE,
    variants: int = 1,
    description: str = "",
) -> Product:
    vendor_id = vendor.vendor.id if isinstance(vendor, VendorAccount) else vendor.id
    n = next(_counter)
    return catalog.create_product(
        vendor_id,
        catalog.ProductInput(
            title=title or f"Product {n}",
            description=description,
            brand=brand,
            category=category,
            status=status,
            variants=[
                catalog.VariantInput(sku=f"SKU-{n}-{i}", price_cents=price_cents, stock=stock)
                for i in range(variants)
            ],
        ),
    )


# --- HTML pages: a client whose requests each get their own app context --------------------

import re  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from flask import Flask  # noqa: E402


@contextmanager
def page_app(**overrides: Any) -> Iterator[Flask]:
    """A second app on the test database (config from `base_config()` plus `overrides`).

    The `client` fixture's requests reuse the test's app context, so `g` (Flask-Login's cached
    user, Flask-WTF's CSRF state) and the DB session leak from one request to the next. A
    client of this app gets a fresh app context per request, as in production. Use the test's
    own `db.session` (after `db.session.expire_all()`) to look at what the requests committed.
    """
    from flask import current_app

    from marketplace import create_app
    from marketplace.db import db
    from tests.conftest import base_config

    shared = {}
    if current_app:  # the test's app: share its search index and mail folder too
        shared = {name: current_app.config[name] for name in ("SEARCH_INDEX_DIR", "MAIL_DIR")}
    web = create_app({**base_config(), **shared, **overrides})
    try:
        yield web
    finally:
        with web.app_context():
            db.session.remove()
            db.engine.dispose()
        web.extensions["redis"].close()


def login(client: FlaskClient, email: str, password: str = PASSWORD, **data: str) -> TestResponse:
    """POST the login form (CSRF disabled in tests); returns the response, not following it."""
    return client.post("/login", data={"email": email, "password": password, **data})


_CSRF_INPUT = re.compile(
    r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"'
)


def csrf_token_in(response: TestResponse) -> str:
    """The CSRF token of the first form on an HTML page."""
    match = _CSRF_INPUT.search(response.get_data(as_text=True))
    assert match, "no csrf_token input on the page"
    return match.group(1) or match.group(2)
