"""Account pages (issue 14): a replayed cookie after logout, password change and reset,
log out everywhere, the API token list, email confirmation and disabled users."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace.accounts import services as accounts
from marketplace.accounts.models import User
from marketplace.catalog.models import Vendor, VendorStatus
from marketplace.db import db
from tests.helpers import (
    PASSWORD,
    login,
    make_admin,
    make_buyer,
    make_vendor,
    page_app,
    submit,
)

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def web_app(app: Flask) -> Iterator[Flask]:
    with page_app() as web:
        yield web


@pytest.fixture
def web(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


def _signed_in(client: FlaskClient) -> bool:
    """Whether the client's session is a logged-in one (the account page needs it)."""
    return client.get("/account").status_code == 200


def _copy_of(web_app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of `client`'s session cookie."""
    other = web_app.test_client()
    cookie = client.get_cookie("session")
    assert cookie is not None
    other.set_cookie("session", cookie.value)
    return other


def _latest_link(app: Flask, prefix: str) -> str:
    files = sorted(
        Path(app.config["MAIL_DIR"]).glob(f"{prefix}*.eml"), key=lambda p: p.stat().st_mtime_ns
    )
    assert files, f"no {prefix} email"
    message = email.message_from_bytes(files[-1].read_bytes())
    text = next(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )
    match = re.search(r"https?://\S+", text)
    assert match, text
    return match.group(0)


def _token_works(token: str) -> bool:
    db.session.rollback()  # end the test's read snapshot: see what the requests committed
    return accounts.user_for_token(token) is not None


def _path(link: str) -> str:
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


def test_replayed_cookie_after_logout_is_refused(web_app, web):
    buyer = make_buyer()
    login(web, buyer.user.email)
    copy = _copy_of(web_app, web)
    assert _signed_in(copy)
    assert submit(web, web.get("/account"), "/logout").status_code == 302
    assert not _signed_in(copy)
    assert copy.get("/account").headers["Location"].startswith("/login")


def test_change_password_keeps_this_session_and_ends_the_others(web_app, web):
    buyer = make_buyer()
    login(web, buyer.user.email)
    elsewhere = web_app.test_client()
    login(elsewhere, buyer.user.email)
    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}

    account = web.get("/account")
    wrong = submit(web, account, "/account/password", **{**form, "current_password": "nope nope"})
    assert wrong.status_code == 422
    assert "is not your current password" in wrong.get_data(as_text=True)
    assert _signed_in(elsewhere)

    changed = submit(web, wrong, "/account/password", **form)
    assert changed.status_code == 303
    assert _signed_in(web)
    assert not _signed_in(elsewhere)
    assert login(web_app.test_client(), buyer.user.email).status_code == 401
    assert login(web_app.test_client(), buyer.user.email, NEW_PASSWORD).status_code == 302
    assert not _token_works(buyer.token)


def test_password_reset_journey_through_the_pages(app, web_app, web):
    buyer = make_buyer()
    assert 'href="/password/forgot"' in web.get("/login").get_data(as_text=True)
    page = web.get("/password/forgot")
    assert page.status_code == 200

    known = submit(web, page, "/password/forgot", email=buyer.user.email)
    unknown = submit(web, page, "/password/forgot", email="nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert "If an account has that email" in known.get_data(as_text=True)
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)

    path = _path(_latest_link(app, "password_reset_"))
    assert path.startswith("/password/reset/")
    form_page = web.get(path)
    assert form_page.status_code == 200 and "Choose a new password" in form_page.get_data(
        as_text=True
    )
    differ = submit(web, form_page, path, new_password=NEW_PASSWORD, confirm="other")
    assert differ.status_code == 422
    done = submit(web, differ, path, new_password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    assert login(web, buyer.user.email, NEW_PASSWORD).status_code == 302

    used = web_app.test_client().get(path)
    assert used.status_code == 400
    assert "not valid or was used already" in used.get_data(as_text=True)


def test_unknown_reset_link_is_a_friendly_400(web):
    page = web.get("/password/reset/1.deadbeef")
    assert page.status_code == 400
    assert "Ask for a new link" in page.get_data(as_text=True)


def test_forgot_password_is_rate_limited(web):
    page = web.get("/password/forgot")
    for _ in range(5):
        assert submit(web, page, "/password/forgot", email="x@example.com").status_code == 200
    assert submit(web, page, "/password/forgot", email="x@example.com").status_code == 429


def test_log_out_everywhere_ends_sessions_and_tokens(web_app, web):
    buyer = make_buyer()
    login(web, buyer.user.email)
    elsewhere = web_app.test_client()
    login(elsewhere, buyer.user.email)
    answer = submit(web, web.get("/account"), "/account/logout-everywhere")
    assert answer.status_code == 303
    assert not _signed_in(web) and not _signed_in(elsewhere)
    assert not _token_works(buyer.token)


def test_token_page_lists_last_use_and_revokes(web):
    buyer = make_buyer()
    second = accounts.issue_token(buyer.user)
    login(web, buyer.user.email)
    tokens_page = web.get("/account/tokens")
    page = tokens_page.get_data(as_text=True)
    token_ids = [int(n) for n in re.findall(r"/account/tokens/(\d+)/revoke", page)]
    assert len(token_ids) == 2
    assert "Last used" in page
    revoked = submit(web, tokens_page, f"/account/tokens/{token_ids[0]}/revoke")
    assert revoked.status_code == 303
    still = [_token_works(t) for t in (buyer.token, second)]
    assert sorted(still) == [False, True]
    assert web.post_raw("/account/tokens/999999/revoke").status_code == 404


def test_email_confirmation_link_needs_the_button(app, web):
    submit(
        web,
        web.get("/register"),
        "/register",
        email="fresh@example.com",
        name="Fresh",
        password=PASSWORD,
        confirm=PASSWORD,
        role="buyer",
    )
    assert "email not confirmed" in web.get("/account").get_data(as_text=True)
    path = _path(_latest_link(app, "verify_email_"))
    confirm_page = web.get(path)
    assert confirm_page.status_code == 200
    db.session.rollback()
    user = db.session.query(User).filter_by(email="fresh@example.com").one()
    assert user.email_verified_at is None  # opening the link alone confirms nothing
    assert submit(web, confirm_page, path).status_code == 303
    db.session.rollback()
    assert db.session.get(User, user.id).email_verified_at is not None
    assert "email confirmed" in web.get("/account").get_data(as_text=True)
    assert web.post_raw(path[:-3] + "xyz").status_code == 400  # a tampered link


def test_account_page_resends_the_link(app, web):
    submit(
        web,
        web.get("/register"),
        "/register",
        email="again@example.com",
        name="Again",
        password=PASSWORD,
        confirm=PASSWORD,
        role="buyer",
    )
    before = len(list(Path(app.config["MAIL_DIR"]).glob("verify_email_*.eml")))
    assert submit(web, web.get("/account"), "/account/verify/resend").status_code == 303
    assert len(list(Path(app.config["MAIL_DIR"]).glob("verify_email_*.eml"))) == before + 1


def test_unverified_buyer_cannot_check_out_through_the_page(web_app, web):
    web_app.config["REQUIRE_EMAIL_VERIFICATION"] = True
    submit(
        web,
        web.get("/register"),
        "/register",
        email="shopper@example.com",
        name="Shopper",
        password=PASSWORD,
        confirm=PASSWORD,
        role="buyer",
    )
    page = web.get("/account").get_data(as_text=True)
    assert "You need to confirm it before you can check out" in page


def test_disabled_user_session_ends_at_once_and_shop_is_suspended(web_app, web):
    admin = make_admin()
    vendor = make_vendor()
    seller = web_app.test_client()
    login(seller, vendor.user.email)
    assert _signed_in(seller)

    login(web, admin.user.email)
    users_page = web.get("/admin/users")
    listing = users_page.get_data(as_text=True)
    assert vendor.user.email in listing
    assert f"/admin/users/{admin.id}/disable" not in listing
    answer = submit(web, users_page, f"/admin/users/{vendor.id}/disable")
    assert answer.status_code == 303

    assert not _signed_in(seller)
    assert login(web_app.test_client(), vendor.user.email).status_code == 401
    assert not _token_works(vendor.token)
    db.session.rollback()
    assert db.session.get(Vendor, vendor.vendor.id).status is VendorStatus.SUSPENDED
    assert "disabled" in web.get("/admin/users").get_data(as_text=True)

    enable = f"/admin/users/{vendor.id}/enable"
    assert submit(web, web.get("/admin/users"), enable).status_code == 303
    assert login(web_app.test_client(), vendor.user.email).status_code == 302


def test_users_page_is_for_admins_only(web):
    buyer = make_buyer()
    assert web.get("/admin/users").status_code == 302
    login(web, buyer.user.email)
    assert web.get("/admin/users").status_code == 403
    assert web.post_raw(f"/admin/users/{buyer.id}/disable").status_code == 403
