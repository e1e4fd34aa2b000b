"""Register, log in and out through the HTML pages: sessions, `next`, CSRF, rate limiting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from marketplace.accounts.models import Role, User
from marketplace.catalog.models import Vendor, VendorStatus
from marketplace.db import db
from tests.helpers import (
    PASSWORD,
    csrf_token_in,
    login,
    make_admin,
    make_buyer,
    make_vendor,
    page_app,
    submit,
)


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


def _fresh() -> Any:
    """The test's session, its read snapshot ended so it sees what the requests committed."""
    db.session.rollback()
    return db.session


def _users() -> int:
    db.session.rollback()  # end the read snapshot: see what requests committed
    return db.session.scalar(select(func.count()).select_from(User)) or 0


def _register(web: FlaskClient, *, raw: bool = False, **overrides: str) -> TestResponse:
    """Submit the registration page's form (`raw`: post the fields without opening it)."""
    data = {
        "email": "new@example.com",
        "name": "New Person",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "role": "buyer",
        **overrides,
    }
    if raw:
        return web.post_raw("/register", data=data)
    return submit(web, web.get("/register"), "/register", **data)


def _logged_in_as(web: FlaskClient) -> str | None:
    with web.session_transaction() as session:
        return session.get("_user_id")


# --- register --------------------------------------------------------------------------------


def test_register_page_has_the_form(web):
    page = web.get("/register").get_data(as_text=True)
    for name in ("email", "name", "password", "confirm"):
        assert f'name="{name}"' in page
    assert 'value="buyer"' in page and 'value="vendor"' in page


def test_register_buyer_logs_in(web):
    response = _register(web, email="Bea@Example.com")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    user = _fresh().scalar(select(User).where(User.email == "bea@example.com"))
    assert user is not None and user.role is Role.BUYER and user.name == "New Person"
    assert _logged_in_as(web) == user.get_id()
    home = web.get("/").get_data(as_text=True)
    assert "New Person" in home and "Log out" in home
    assert "Vendor dashboard" not in home


def test_register_vendor_gets_pending_shop(web):
    response = _register(web, email="shop@example.com", name="Shop Owner", role="vendor")
    assert response.status_code == 302
    assert response.headers["Location"] == "/vendor/"
    user = _fresh().scalar(select(User).where(User.email == "shop@example.com"))
    vendor = db.session.scalar(select(Vendor).where(Vendor.user_id == user.id))
    assert vendor.status is VendorStatus.PENDING
    dashboard = web.get("/vendor/").get_data(as_text=True)
    assert "pending" in dashboard and "not see them" in dashboard


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"email": ""}, "This field is required."),
        ({"name": ""}, "This field is required."),
        ({"password": "", "confirm": ""}, "This field is required."),
        ({"confirm": "something else"}, "The passwords differ."),
        ({"password": "short", "confirm": "short"}, "must be 8 to 256 characters long"),
        ({"email": "not-an-email"}, "email address"),
        ({"role": "admin"}, "Not a valid choice"),
        ({"name": "x" * 121}, "120"),
    ],
)
def test_register_bad_input_creates_nobody(web, overrides, message):
    before = _users()
    tampered = overrides.get("role") == "admin"  # not an option the page offers
    response = _register(web, raw=tampered, **overrides)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _users() == before
    assert _logged_in_as(web) is None


def test_register_taken_email_is_409(web):
    make_buyer()
    existing = db.session.scalar(select(User.email))
    before = _users()
    response = _register(web, email=existing.upper())
    assert response.status_code == 409
    assert "already exists" in response.get_data(as_text=True)
    assert _users() == before


def test_names_are_escaped(web):
    _register(web, name="<script>alert(1)</script>")
    page = web.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- login / logout --------------------------------------------------------------------------


def test_login_page_and_nav_for_anonymous(web):
    page = web.get("/login").get_data(as_text=True)
    assert 'name="email"' in page and 'name="password"' in page
    assert "Log in" in page and "Register" in page and "Log out" not in page


def test_login_success_redirects_by_role(web):
    buyer, vendor, admin = make_buyer(), make_vendor(), make_admin()
    for account, landing, link in [
        (buyer, "/", None),
        (vendor, "/vendor/", "Vendor dashboard"),
        (admin, "/admin/vendors", "Admin"),
    ]:
        response = login(web, account.user.email)
        assert response.status_code == 302
        assert response.headers["Location"] == landing
        page = web.get("/").get_data(as_text=True)
        assert account.user.name in page
        if link:
            assert f">{link}</a>" in page
        else:
            assert "Vendor dashboard" not in page and ">Admin</a>" not in page
        submit(web, web.get("/"), "/logout")


def test_login_email_is_case_insensitive(web):
    buyer = make_buyer()
    assert login(web, buyer.user.email.upper()).status_code == 302


@pytest.mark.parametrize("email", ["buyer", "nobody@example.com"])
def test_login_failure_is_401_and_no_session(web, email):
    buyer = make_buyer()
    address = buyer.user.email if email == "buyer" else email
    response = login(web, address, "wrong password!")
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert _logged_in_as(web) is None


def test_login_missing_fields_is_422(web):
    response = submit(web, web.get("/login"), "/login", email="", password="")
    assert response.status_code == 422
    assert "This field is required." in response.get_data(as_text=True)


def test_disabled_account_cannot_log_in(web):
    buyer = make_buyer()
    buyer.user.active = False
    db.session.commit()
    assert login(web, buyer.user.email).status_code == 401


def test_session_changes_at_login(web):
    buyer = make_buyer()
    web.get("/login")
    with web.session_transaction() as session:
        session["planted"] = "by an attacker"
    cookie_before = web.get_cookie("session").value
    assert login(web, buyer.user.email).status_code == 302
    with web.session_transaction() as session:
        after = dict(session)
    assert "planted" not in after
    assert after["_user_id"] == buyer.user.get_id()
    assert web.get_cookie("session").value != cookie_before


def test_logout_requires_post_and_ends_session(web):
    buyer = make_buyer()
    login(web, buyer.user.email)
    assert web.get("/logout").status_code == 405
    assert _logged_in_as(web) == buyer.user.get_id()
    response = submit(web, web.get("/"), "/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert _logged_in_as(web) is None
    assert web.get("/vendor/").status_code == 302
    page = web.get("/").get_data(as_text=True)
    assert "Log in" in page and buyer.user.name not in page


def test_logged_in_user_visiting_login_is_sent_on(web):
    vendor = make_vendor()
    login(web, vendor.user.email)
    response = web.get("/login")
    assert response.status_code == 302 and response.headers["Location"] == "/vendor/"


# --- next ------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login_and_back(web):
    vendor = make_vendor()
    response = web.get("/vendor/settings")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fvendor%2Fsettings"
    page = web.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="/vendor/settings"' in page
    response = login(web, vendor.user.email, next="/vendor/settings")
    assert response.headers["Location"] == "/vendor/settings"


def test_safe_next_query_is_kept(web):
    buyer = make_buyer()
    response = login(web, buyer.user.email, next="/products?brand=Acme&page=2")
    assert response.headers["Location"] == "/products?brand=Acme&page=2"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/\tevil",
        "///evil.example",
    ],
)
def test_unsafe_next_is_ignored(web, target):
    buyer = make_buyer()
    page = web.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert "evil" not in page
    response = login(web, buyer.user.email, next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


# --- CSRF ------------------------------------------------------------------------------------


def test_csrf_is_enforced_on_login_register_and_logout(app):
    buyer = make_buyer()
    before = _users()
    with page_app(WTF_CSRF_ENABLED=True) as csrf_app:
        web = csrf_app.test_client()
        # Deliberate: posts without the page's CSRF token.
        fields = {"email": buyer.user.email, "password": PASSWORD}
        response = web.post_raw("/login", data=fields)
        assert response.status_code == 400
        assert "CSRF" in response.get_data(as_text=True)
        assert _logged_in_as(web) is None

        response = _register(web, raw=True, email="csrf@example.com")
        assert response.status_code == 400
        assert _users() == before

        page = web.get("/login")
        token = csrf_token_in(page)
        response = submit(web, page, "/login", **fields)
        assert response.status_code == 302
        assert _logged_in_as(web) == buyer.user.get_id()

        assert web.post_raw("/logout").status_code == 400
        assert _logged_in_as(web) == buyer.user.get_id()

        # The login started a new session, so the token from before login is dead too.
        assert web.post_raw("/logout", data={"csrf_token": token}).status_code == 400
        home = web.get("/")
        assert csrf_token_in(home) != token
        assert submit(web, home, "/logout").status_code == 302
        assert _logged_in_as(web) is None


# --- rate limiting ---------------------------------------------------------------------------


def test_eleventh_failed_login_in_a_minute_is_429(web):
    buyer = make_buyer()
    for _ in range(10):
        assert login(web, buyer.user.email, "wrong password!").status_code == 401
    response = login(web, buyer.user.email, "wrong password!")
    assert response.status_code == 429
    assert "Too many requests" in response.get_data(as_text=True)
    # Even the right password is refused until the window passes.
    assert login(web, buyer.user.email).status_code == 429
    assert _logged_in_as(web) is None
    # The page itself still loads.
    assert web.get("/login").status_code == 200


def test_successful_and_malformed_logins_do_not_count(web):
    buyer = make_buyer()
    for _ in range(12):
        assert login(web, buyer.user.email).status_code == 302
        # Signed in, the login page sends the client on: re-post the earlier page's form.
        assert web.post("/login", data={"email": "", "password": ""}).status_code == 422
    for _ in range(10):
        assert login(web, buyer.user.email, "wrong password!").status_code == 401
    assert login(web, buyer.user.email, "wrong password!").status_code == 429


# --- error pages -----------------------------------------------------------------------------


def test_unknown_page_is_friendly_404(web):
    response = web.get("/no-such-page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "<h1>404</h1>" in page and "Back to the shop" in page
