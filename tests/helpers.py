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
    # Verified, as a real buyer would be by the time they shop: no confirmation email.
    user = accounts.register(
        f"buyer{n}@example.com", PASSWORD, f"{name} {n}", Role.BUYER, email_verified=True
    )
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
    user = accounts.register(
        f"vendor{n}@example.com", PASSWORD, f"{name} {n}", Role.VENDOR, email_verified=True
    )
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
        shared = {
            name: current_app.config[name]
            for name in ("SEARCH_INDEX_DIR", "MAIL_DIR", "IMAGE_UPLOAD_DIR")
        }
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


# --- forms as the browser sees them ----------------------------------------------------------

from html.parser import HTMLParser  # noqa: E402


@dataclass
class HtmlForm:
    """One <form> of a page: where it posts, and its controls as a browser would send them."""

    action: str
    method: str
    inputs: list[dict[str, str]]  # every input/select/textarea/button with its attributes

    def control(self, name: str) -> list[dict[str, str]]:
        return [i for i in self.inputs if i.get("name") == name]

    def data(self, **choices: Any) -> dict[str, Any]:
        """The fields a browser would submit: hidden and text values as rendered, the checked
        radio (or the one given in `choices`, which must exist and be enabled), plus `choices`."""
        sent: dict[str, Any] = {}
        for control in self.inputs:
            name, kind = control.get("name"), control.get("type", "text")
            if not name or "disabled" in control or kind in ("submit", "button"):
                continue
            if kind in ("radio", "checkbox"):
                if "checked" in control:
                    sent[name] = control.get("value", "on")
            else:
                sent[name] = control.get("value", "")
        for name, value in choices.items():
            enabled = [c for c in self.control(name) if "disabled" not in c]
            assert enabled, f"no enabled control named {name!r} in the form"
            if enabled[0].get("type") == "radio":
                assert str(value) in {c.get("value") for c in enabled}, (
                    f"{name}={value} is not an option a person can pick"
                )
            sent[name] = value
        return sent


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HtmlForm] = []
        self._open: HtmlForm | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._open = HtmlForm(
                attributes.get("action", ""), attributes.get("method", "get").lower(), []
            )
            self.forms.append(self._open)
        elif tag in ("input", "select", "textarea", "button") and self._open is not None:
            self._open.inputs.append({"tag": tag, **attributes})

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def forms_in(response: TestResponse, action: str | None = None) -> list[HtmlForm]:
    """The page's forms (those posting to `action` when given)."""
    parser = _FormParser()
    parser.feed(response.get_data(as_text=True))
    return [f for f in parser.forms if action is None or f.action == action]


def submit(
    client: FlaskClient, response: TestResponse, action: str, **choices: Any
) -> TestResponse:
    """Submit the page's form posting to `action`, as a person clicking its button would."""
    found = forms_in(response, action)
    assert found, f"the page has no form posting to {action}"
    form = found[0]
    return client.open(form.action, method=form.method.upper(), data=form.data(**choices))


# --- statement budgets ---------------------------------------------------------------------

import threading  # noqa: E402

from sqlalchemy import event  # noqa: E402


@dataclass
class Statements:
    """SQL statements one block sent to the database (from this thread only)."""

    sql: list[str]

    def __len__(self) -> int:
        return len(self.sql)

    def __str__(self) -> str:
        return "\n".join(f"  {i + 1:2}. {s}" for i, s in enumerate(self.sql))


@contextmanager
def statements_sent() -> Iterator[Statements]:
    """Count the statements the block sends: `with statements_sent() as sent: ...; len(sent)`.

    Other threads (the emulator's webhooks into the live test app) are not counted.
    """
    from marketplace.db import db

    seen = Statements([])
    thread = threading.get_ident()

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool):
        # BEGIN is SQLite's own (psycopg begins implicitly, with the first statement).
        if threading.get_ident() != thread or statement.startswith("BEGIN"):
            return
        sql = " ".join(statement.split())[:160] + (" [executemany]" if many else "")
        # One batch: SQLite cannot return the new ids of a multi-row INSERT, so SQLAlchemy
        # sends the batch's rows one by one to the in-process driver (PostgreSQL gets one).
        if many and seen.sql and seen.sql[-1] == sql:
            return
        seen.sql.append(sql)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
