"""Accounts people manage themselves, through the JSON API (issue 14, docs/accounts.md):
password change and reset, email verification, token expiry and revocation, disabled users."""

from __future__ import annotations

import email
import hashlib
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from marketplace.accounts import passwords
from marketplace.accounts.models import ApiToken, PasswordReset, User
from marketplace.catalog.models import Vendor, VendorStatus
from marketplace.db import db, utcnow
from marketplace.orders.models import Order
from tests.functional.money import ADDRESS
from tests.helpers import PASSWORD, assert_error, make_admin, make_buyer, make_product, make_vendor

NEW_PASSWORD = "a brand new passphrase"


def _mails(app, prefix: str) -> list[email.message.EmailMessage]:
    folder = Path(app.config["MAIL_DIR"])
    found = sorted(folder.glob(f"{prefix}*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [email.message_from_bytes(p.read_bytes()) for p in found]


def _text(message: email.message.Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    raise AssertionError("no text part")


def _link(app, prefix: str, path: str) -> str:
    """The absolute link of the latest email whose key starts with `prefix`."""
    messages = _mails(app, prefix)
    assert messages, f"no {prefix} email"
    match = re.search(rf"(\S+{re.escape(path)}(\S+))", _text(messages[-1]))
    assert match, _text(messages[-1])
    return match.group(1)


def _reset_token(app) -> str:
    return _link(app, "password_reset_", "/password/reset/").rsplit("/", 1)[1]


def _verify_token(app) -> str:
    return _link(app, "verify_email_", "/verify-email/").rsplit("/", 1)[1]


def _login(api, email_address: str, password: str = PASSWORD):
    return api.post("/auth/token", json={"email": email_address, "password": password})


def _register(api, email_address: str = "new@example.com", role: str = "buyer") -> dict:
    response = api.post(
        "/auth/register",
        json={"email": email_address, "password": PASSWORD, "name": "New", "role": role},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- password reset --------------------------------------------------------------------------


def test_reset_link_works_once_and_ends_every_token(app, api):
    buyer = make_buyer()
    other_token = _login(api, buyer.user.email).get_json()["token"]

    answer = api.post("/auth/password-reset", json={"email": buyer.user.email.upper()})
    assert answer.status_code == 202
    token = _reset_token(app)

    done = api.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["user"]["id"] == buyer.id
    assert_error(_login(api, buyer.user.email), 401, "invalid_credentials")
    assert _login(api, buyer.user.email, NEW_PASSWORD).status_code == 200
    for old in (buyer.token, other_token):
        assert_error(api.get("/me", old), 401, "unauthorized")

    again = api.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "yet another one"}
    )
    assert_error(again, 400, "reset_token_invalid")
    assert_error(_login(api, buyer.user.email, "yet another one"), 401)


def test_reset_link_stops_working_after_an_hour(app):
    buyer = make_buyer()
    passwords.request_reset(buyer.user.email)
    reset = db.session.scalar(select(PasswordReset).where(PasswordReset.user_id == buyer.id))
    token = _reset_token(app)
    created = reset.created_at

    with pytest.raises(passwords.ResetTokenExpired):
        passwords.reset_password(token, NEW_PASSWORD, now=created + timedelta(minutes=60))
    assert passwords.reset_password(token, NEW_PASSWORD, now=created + timedelta(minutes=59))


def test_expired_reset_link_is_400_with_its_code_and_changes_nothing(app, api):
    buyer = make_buyer()
    api.post("/auth/password-reset", json={"email": buyer.user.email})
    token = _reset_token(app)
    with db.engine.begin() as connection:
        connection.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
    answer = api.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_error(answer, 400, "reset_token_expired")
    assert _login(api, buyer.user.email).status_code == 200
    assert api.get("/me", buyer.token).status_code == 200


def test_reset_answers_the_same_for_known_and_unknown_emails(app, api):
    buyer = make_buyer()
    known = api.post("/auth/password-reset", json={"email": buyer.user.email})
    unknown = api.post("/auth/password-reset", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json()
    assert len(_mails(app, "password_reset_")) == 1
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(PasswordReset)) == 1


def test_reset_tokens_are_stored_hashed(app, api):
    buyer = make_buyer()
    api.post("/auth/password-reset", json={"email": buyer.user.email})
    token = _reset_token(app)
    db.session.rollback()
    stored = db.session.scalar(select(PasswordReset.token_hash))
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored


def test_reset_requests_are_rate_limited(api):
    for _ in range(5):
        assert api.post("/auth/password-reset", json={"email": "a@example.com"}).status_code == 202
    limited = api.post("/auth/password-reset", json={"email": "a@example.com"})
    assert_error(limited, 429, "rate_limited")
    assert limited.headers["Retry-After"]


def test_reset_bad_bodies_and_tokens(app, api):
    assert_error(api.post("/auth/password-reset", json={}), 422)
    assert_error(api.post("/auth/password-reset", json={"email": 5}), 400)
    bogus = api.post(
        "/auth/password-reset/confirm", json={"token": "1.abc", "new_password": NEW_PASSWORD}
    )
    assert_error(bogus, 400, "reset_token_invalid")
    buyer = make_buyer()
    api.post("/auth/password-reset", json={"email": buyer.user.email})
    token = _reset_token(app)
    short = api.post("/auth/password-reset/confirm", json={"token": token, "new_password": "x"})
    assert_error(short, 422)
    # A refused new password does not spend the link.
    ok = api.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert ok.status_code == 200


def test_disabled_account_gets_no_reset_link(app, api):
    admin = make_admin()
    buyer = make_buyer()
    api.post(f"/admin/users/{buyer.id}/disable", admin.token)
    assert api.post("/auth/password-reset", json={"email": buyer.user.email}).status_code == 202
    assert _mails(app, "password_reset_") == []


def test_email_links_are_absolute_from_server_name(app, api):
    app.config.update(SERVER_NAME="shop.example.com", PREFERRED_URL_SCHEME="https")
    buyer = make_buyer()
    passwords.request_reset(buyer.user.email)
    link = _link(app, "password_reset_", "/password/reset/")
    assert link.startswith("https://shop.example.com/password/reset/")


# --- password change -------------------------------------------------------------------------


def test_change_password_needs_the_current_one_and_ends_other_tokens(app, api):
    buyer = make_buyer()
    other = _login(api, buyer.user.email).get_json()["token"]
    wrong = api.post(
        "/auth/password",
        buyer.token,
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
    )
    assert_error(wrong, 422)
    assert "current_password" in wrong.get_json()["error"]["details"]["fields"]
    assert api.get("/me", other).status_code == 200
    assert _login(api, buyer.user.email).status_code == 200

    changed = api.post(
        "/auth/password",
        buyer.token,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.get_json()
    assert api.get("/me", buyer.token).status_code == 200  # the token that asked stays
    assert_error(api.get("/me", other), 401)
    assert_error(_login(api, buyer.user.email), 401)
    assert _login(api, buyer.user.email, NEW_PASSWORD).status_code == 200
    assert _mails(app, "password_changed_")


def test_change_password_needs_a_token(api):
    answer = api.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert_error(answer, 401)


# --- tokens ----------------------------------------------------------------------------------


def test_expired_token_is_401_with_its_code_and_logging_in_again_refreshes(app, api):
    buyer = make_buyer()
    with db.engine.begin() as connection:
        connection.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_error(api.get("/me", buyer.token), 401, "token_expired")
    fresh = _login(api, buyer.user.email).get_json()["token"]
    assert api.get("/me", fresh).status_code == 200


def test_token_lifetime_comes_from_the_setting(app, api):
    app.config["API_TOKEN_TTL_SECONDS"] = 3600
    buyer = make_buyer()
    token = _login(api, buyer.user.email).get_json()["token"]
    listed = api.get("/auth/tokens", token).get_json()["items"]
    mine = next(t for t in listed if t["current"])
    issued = mine["created_at"]
    lifetime = datetime.fromisoformat(mine["expires_at"]) - datetime.fromisoformat(issued)
    assert lifetime == timedelta(hours=1)


def test_default_token_lifetime_is_thirty_days(api):
    buyer = make_buyer()
    (listed,) = api.get("/auth/tokens", buyer.token).get_json()["items"]
    lifetime = datetime.fromisoformat(listed["expires_at"]) - datetime.fromisoformat(
        listed["created_at"]
    )
    assert lifetime == timedelta(days=30)


def test_token_list_shows_last_use_and_revokes_one(api):
    buyer = make_buyer()
    second = _login(api, buyer.user.email).get_json()["token"]
    with db.engine.begin() as connection:
        connection.execute(update(ApiToken).values(last_used_at=utcnow() - timedelta(hours=2)))
    api.get("/me", second)  # a use, long after the last one noted
    listed = api.get("/auth/tokens", second).get_json()
    assert listed["total"] == 2
    current = [t for t in listed["items"] if t["current"]]
    assert len(current) == 1
    used = datetime.fromisoformat(current[0]["last_used_at"])
    assert utcnow() - used < timedelta(minutes=1)
    older = next(t for t in listed["items"] if not t["current"])
    assert utcnow() - datetime.fromisoformat(older["last_used_at"]) > timedelta(hours=1)

    assert api.delete(f"/auth/tokens/{older['id']}", second).status_code == 204
    assert_error(api.get("/me", buyer.token), 401)
    assert api.get("/me", second).status_code == 200
    assert api.get("/auth/tokens", second).get_json()["total"] == 1


def test_someone_elses_token_cannot_be_revoked(api):
    buyer, stranger = make_buyer(), make_buyer()
    (theirs,) = api.get("/auth/tokens", stranger.token).get_json()["items"]
    assert_error(api.delete(f"/auth/tokens/{theirs['id']}", buyer.token), 404, "token_not_found")
    assert api.get("/me", stranger.token).status_code == 200


def test_logout_everywhere_ends_every_token(api):
    buyer = make_buyer()
    other = _login(api, buyer.user.email).get_json()["token"]
    assert api.post("/auth/logout-everywhere", buyer.token).status_code == 204
    for token in (buyer.token, other):
        assert_error(api.get("/me", token), 401)
    assert _login(api, buyer.user.email).status_code == 200


# --- email verification ----------------------------------------------------------------------


def test_registration_sends_a_verification_link_that_verifies(app, api):
    body = _register(api)
    assert body["user"]["email_verified"] is False
    token = _verify_token(app)
    verified = api.post("/auth/verify-email", json={"token": token})
    assert verified.status_code == 200
    assert verified.get_json()["user"]["email_verified"] is True
    assert api.get("/me", body["token"]).get_json()["user"]["email_verified"] is True
    again = api.post("/auth/verify-email/resend", body["token"])
    assert_error(again, 409, "email_already_verified")


def test_bad_verification_tokens_are_400(app, api):
    _register(api)
    token = _verify_token(app)
    assert_error(
        api.post("/auth/verify-email", json={"token": token + "x"}),
        400,
        "verification_token_invalid",
    )
    assert_error(api.post("/auth/verify-email", json={}), 422)
    db.session.rollback()
    assert db.session.scalar(select(User.email_verified_at)) is None


def test_resend_sends_a_new_link_and_is_rate_limited(app, api):
    body = _register(api)
    for _ in range(3):
        assert api.post("/auth/verify-email/resend", body["token"]).status_code == 202
    assert len(_mails(app, "verify_email_")) == 4  # registration + three resends
    assert_error(api.post("/auth/verify-email/resend", body["token"]), 429)


def _fill_cart(api, buyer_token: str) -> None:
    product = make_product(make_vendor(), price_cents=1200, stock=5)
    added = api.post(
        "/cart/items", buyer_token, json={"variant_id": product.variants[0].id, "quantity": 1}
    )
    assert added.status_code == 201


def _checkout(api, token: str, key: str = "k1"):
    return api.post(
        "/checkout", token, json={"shipping_address": ADDRESS}, headers={"Idempotency-Key": key}
    )


def test_unverified_buyer_browses_and_fills_a_cart_but_cannot_check_out(app, api):
    app.config["REQUIRE_EMAIL_VERIFICATION"] = True
    body = _register(api)
    assert api.get("/products").status_code == 200
    _fill_cart(api, body["token"])
    assert_error(_checkout(api, body["token"]), 403, "email_not_verified")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    assert len(api.get("/cart", body["token"]).get_json()["items"]) == 1

    api.post("/auth/verify-email", json={"token": _verify_token(app)})
    assert _checkout(api, body["token"], "k2").status_code == 201


def test_without_the_setting_a_new_buyer_checks_out_at_once(app, api):
    assert app.config["REQUIRE_EMAIL_VERIFICATION"] is False
    body = _register(api)
    _fill_cart(api, body["token"])
    assert _checkout(api, body["token"]).status_code == 201


def test_unverified_vendor_cannot_sell(app, api):
    app.config["REQUIRE_EMAIL_VERIFICATION"] = True
    body = _register(api, "seller@example.com", role="vendor")
    product = {
        "title": "Lamp",
        "status": "draft",
        "variants": [{"sku": "L-1", "price_cents": 1000, "stock": 1}],
    }
    assert_error(
        api.post("/vendor/products", body["token"], json=product), 403, "email_not_verified"
    )
    assert_error(api.post("/vendor/onboarding", body["token"]), 403, "email_not_verified")
    api.post("/auth/verify-email", json={"token": _verify_token(app)})
    assert api.post("/vendor/products", body["token"], json=product).status_code == 201


# --- disabled users --------------------------------------------------------------------------


def test_disabled_user_is_refused_at_once_and_their_shop_suspended(api):
    admin = make_admin()
    vendor = make_vendor()
    other = _login(api, vendor.user.email).get_json()["token"]
    disabled = api.post(f"/admin/users/{vendor.id}/disable", admin.token)
    assert disabled.status_code == 200
    assert disabled.get_json()["active"] is False
    for token in (vendor.token, other):
        assert_error(api.get("/me", token), 401)
    assert_error(_login(api, vendor.user.email), 401, "invalid_credentials")
    db.session.rollback()
    assert db.session.get(Vendor, vendor.vendor.id).status is VendorStatus.SUSPENDED
    assert_error(
        api.post(f"/admin/users/{vendor.id}/disable", admin.token), 409, "illegal_transition"
    )

    enabled = api.post(f"/admin/users/{vendor.id}/enable", admin.token)
    assert enabled.get_json()["active"] is True
    assert _login(api, vendor.user.email).status_code == 200
    assert_error(api.get("/me", vendor.token), 401)  # old tokens stay revoked
    db.session.rollback()
    assert db.session.get(Vendor, vendor.vendor.id).status is VendorStatus.SUSPENDED


def test_only_admins_disable_and_not_themselves(api):
    admin, buyer = make_admin(), make_buyer()
    assert_error(api.post(f"/admin/users/{admin.id}/disable", buyer.token), 403)
    assert_error(
        api.post(f"/admin/users/{admin.id}/disable", admin.token), 409, "cannot_disable_self"
    )
    assert_error(api.post("/admin/users/999999/disable", admin.token), 404)
    assert api.get("/me", admin.token).status_code == 200


def test_admin_lists_users_by_search(api):
    admin = make_admin()
    buyer = make_buyer("Zelda")
    listed = api.get("/admin/users?q=zelda", admin.token).get_json()
    assert listed["total"] == 1
    assert listed["items"][0]["id"] == buyer.id
    assert listed["items"][0]["active"] is True


def test_openapi_documents_the_account_routes(api):
    paths = api.get("/openapi.json").get_json()["paths"]
    for path, method in [
        ("/api/v1/auth/password", "post"),
        ("/api/v1/auth/password-reset", "post"),
        ("/api/v1/auth/password-reset/confirm", "post"),
        ("/api/v1/auth/verify-email", "post"),
        ("/api/v1/auth/verify-email/resend", "post"),
        ("/api/v1/auth/logout-everywhere", "post"),
        ("/api/v1/auth/tokens", "get"),
        ("/api/v1/auth/tokens/{token_id}", "delete"),
        ("/api/v1/admin/users", "get"),
        ("/api/v1/admin/users/{user_id}/disable", "post"),
    ]:
        assert method in paths[path], path
    reset = paths["/api/v1/auth/password-reset"]["post"]
    assert "429" in reset["responses"] and "202" in reset["responses"]


def test_one_account_gets_at_most_three_live_links(app):
    buyer = make_buyer()
    for _ in range(5):
        passwords.request_reset(buyer.user.email)
    assert len(_mails(app, "password_reset_")) == passwords.MAX_LIVE_RESETS


def test_a_disabled_owners_shop_cannot_be_approved(api):
    admin, vendor = make_admin(), make_vendor()
    api.post(f"/admin/users/{vendor.id}/disable", admin.token)
    answer = api.post(f"/admin/vendors/{vendor.vendor.id}/approve", admin.token)
    assert_error(answer, 409, "illegal_transition")
    api.post(f"/admin/users/{vendor.id}/enable", admin.token)
    approved = api.post(f"/admin/vendors/{vendor.vendor.id}/approve", admin.token)
    assert approved.get_json()["status"] == "approved"
