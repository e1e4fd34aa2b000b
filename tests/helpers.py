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
from marketplace.db import db

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


class Api:
    """`api.post("/vendor/products", token, json={...})` → response, under /api/v1."""

    def __init__(self, client: FlaskClient):
        self.client = client

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> TestResponse:
        # Requests share the test's session (one app context): end its read snapshot first,
        # as a fresh request in production would, so commits made by other threads show.
        db.session.rollback()
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
