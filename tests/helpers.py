"""Test helpers: an API client wrapper and builders that go through the real services."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
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
    web.test_client_class = PageClient
    try:
        yield web
    finally:
        with web.app_context():
            db.session.remove()
            db.engine.dispose()
        web.extensions["redis"].close()


def login(client: FlaskClient, email: str, password: str = PASSWORD, **data: str) -> TestResponse:
    """Open the login page and submit its form; returns the response, not following it.

    A client already signed in is sent on from the login page: it re-posts the login form
    of a page it opened earlier, as a second tab would."""
    fields = {"email": email, "password": password, **data}
    page = client.get("/login")
    if page.status_code == 302:
        if isinstance(client, PageClient):
            return client.post_raw("/login", data=fields)
        return client.post("/login", data=fields)
    return submit(client, page, "/login", **fields)


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
    # each select's options: (value, selected)
    options: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)

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
            elif control["tag"] == "select":
                options = self.options.get(name, [])
                chosen = [v for v, selected in options if selected] or [v for v, _ in options[:1]]
                if chosen:  # a browser sends the selected option, else the first
                    sent[name] = chosen[0]
            else:
                sent[name] = control.get("value", "")
        for name, value in choices.items():
            enabled = [c for c in self.control(name) if "disabled" not in c]
            assert enabled, f"no enabled control named {name!r} in the form"
            if enabled[0].get("type") == "radio":
                assert str(value) in {c.get("value") for c in enabled}, (
                    f"{name}={value} is not an option a person can pick"
                )
            if enabled[0]["tag"] == "select":
                assert str(value) in {v for v, _ in self.options.get(name, [])}, (
                    f"{name}={value} is not an option of the select"
                )
            sent[name] = value
        return sent


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HtmlForm] = []
        self._open: HtmlForm | None = None
        self._select: str | None = None
        self._option: dict[str, str] | None = None
        self._option_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._open = HtmlForm(
                attributes.get("action", ""), attributes.get("method", "get").lower(), []
            )
            self.forms.append(self._open)
        elif tag in ("input", "select", "textarea", "button") and self._open is not None:
            self._open.inputs.append({"tag": tag, **attributes})
            if tag == "select":
                self._select = attributes.get("name", "")
                self._open.options.setdefault(self._select, [])
        elif tag == "option" and self._open is not None and self._select is not None:
            self._end_option()
            self._option, self._option_text = attributes, ""

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option_text += data

    def _end_option(self) -> None:
        if self._option is not None and self._open is not None and self._select is not None:
            value = self._option.get("value", self._option_text.strip())
            self._open.options[self._select].append((value, "selected" in self._option))
        self._option = None

    def handle_endtag(self, tag: str) -> None:
        if tag in ("option", "select"):
            self._end_option()
        if tag == "select":
            self._select = None
        if tag == "form":
            self._open = None


def forms_in(response: TestResponse | str, action: str | None = None) -> list[HtmlForm]:
    """The page's forms (those posting to `action` when given); `response` may be HTML text."""
    parser = _FormParser()
    parser.feed(response if isinstance(response, str) else response.get_data(as_text=True))
    return [f for f in parser.forms if action is None or f.action == action]


def submit(
    client: FlaskClient,
    response: TestResponse,
    action: str,
    /,
    *,
    pick: dict[str, str] | None = None,
    **choices: Any,
) -> TestResponse:
    """Submit the page's form posting to `action`, as a person clicking its button would.

    `pick` chooses among several forms with that action: the one whose controls include
    these name=value pairs (e.g. `pick={"action": "default"}` for a hidden input)."""
    found = forms_in(response, action)
    assert found, f"the page has no form posting to {action}"
    if pick:
        found = [
            f
            for f in found
            if all(any(c.get("value") == v for c in f.control(k)) for k, v in pick.items())
        ]
        assert found, f"the page has no form posting to {action} with {pick}"
    form = found[0]
    target = form.action or response.request.path
    return client.open(target, method=form.method.upper(), data=form.data(**choices))


class PageClient(FlaskClient):
    """A browser for page tests: it remembers the forms of every HTML page it fetched, and a
    request other than GET/HEAD must be one of those forms (same action path, method post)
    sending only fields the form has. A page test therefore cannot pass while the page lacks
    the control it posts from.

    Negative tests that deliberately send what no page offers (another role's action, a
    missing id, tampered fields, no CSRF token) say so with `post_raw(...)`/`open_raw(...)`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen_forms: list[tuple[str, HtmlForm]] = []  # (action path, form)
        self._raw = 0

    def post_raw(self, *args: Any, **kwargs: Any) -> TestResponse:
        """POST exactly this, whether or not a page offered it (a deliberate negative test)."""
        return self.open_raw(*args, method="POST", **kwargs)

    def open_raw(self, *args: Any, **kwargs: Any) -> TestResponse:
        self._raw += 1
        try:
            return self.open(*args, **kwargs)
        finally:
            self._raw -= 1

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        # Only the test's own calls (a path string) are checked; redirects that werkzeug
        # follows come back through here with a builder and are the server's doing.
        if args and isinstance(args[0], str) and not self._raw:
            self._check_offered(args[0], kwargs)
        response = super().open(*args, **kwargs)
        self._remember(response)
        return response

    def _check_offered(self, url: str, kwargs: dict[str, Any]) -> None:
        from urllib.parse import urlsplit

        method = str(kwargs.get("method", "GET")).upper()
        if method in ("GET", "HEAD", "OPTIONS"):
            return
        path = urlsplit(url).path
        if path.startswith(("/api/", "/webhooks/")):
            return  # the JSON API and Stripe's webhooks are not pages
        where = f"{method} {path}"
        assert method == "POST", f"{where}: HTML forms only GET or POST; use open_raw()"
        assert "json" not in kwargs, f"{where}: a form does not send JSON; use post_raw()"
        data = kwargs.get("data") or {}
        assert hasattr(data, "keys"), f"{where}: a form sends fields, not a raw body"
        sent = set(data.keys())
        candidates = [f for action, f in self.seen_forms if action == path and f.method == "post"]
        assert candidates, (
            f"{where}: no page this client fetched has a form posting there "
            f"(fetch the page that offers it, or use post_raw() for a deliberate negative test)"
        )
        offered = [_enabled_names(f) for f in candidates]
        if not any(sent <= names for names in offered):
            best = min(offered, key=lambda names: len(sent - names))
            raise AssertionError(
                f"{where}: the page's form has no field(s) {sorted(sent - best)} "
                f"(it has {sorted(best)}); use post_raw() for deliberately tampered fields"
            )

    def _remember(self, response: TestResponse) -> None:
        from urllib.parse import urljoin, urlsplit

        if response.mimetype != "text/html":
            return
        base = response.request.url if response.request is not None else "http://localhost/"
        for form in forms_in(response):
            action = urlsplit(urljoin(base, form.action)).path
            self.seen_forms.append((action, form))


def _enabled_names(form: HtmlForm) -> set[str]:
    """The names of the controls a browser can send from this form."""
    return {c["name"] for c in form.inputs if c.get("name") and "disabled" not in c}


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
