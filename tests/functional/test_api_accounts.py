"""Accounts through the API: registration, tokens, /me, the login rate limit."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import ApiToken, User
from marketplace.catalog.models import Vendor
from marketplace.db import db
from tests.helpers import PASSWORD, assert_error, make_buyer


def _register(api, **overrides):
    body = {
        "email": "ada@example.com",
        "password": PASSWORD,
        "name": "Ada Lovelace",
        "role": "buyer",
        **overrides,
    }
    return api.post("/auth/register", json=body)


def _user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def test_register_buyer(api):
    response = _register(api)
    assert response.status_code == 201
    data = response.get_json()
    assert set(data) == {"user", "token"}
    assert set(data["user"]) >= {"id", "email", "name", "role"}
    assert data["user"]["email"] == "ada@example.com"
    assert data["user"]["name"] == "Ada Lovelace"
    assert data["user"]["role"] == "buyer"
    assert isinstance(data["token"], str) and len(data["token"]) >= 32
    me = api.get("/me", data["token"])
    assert me.status_code == 200
    assert me.get_json() == {"user": data["user"]}
    assert_error(api.get("/vendor", data["token"]), 403, "forbidden")


def test_register_vendor_gets_a_pending_vendor(api):
    response = _register(api, email="shop@example.com", name="Shop", role="vendor")
    assert response.status_code == 201
    data = response.get_json()
    assert data["user"]["role"] == "vendor"
    vendor = api.get("/vendor", data["token"])
    assert vendor.status_code == 200
    profile = vendor.get_json()
    assert set(profile) >= {
        "id",
        "display_name",
        "status",
        "stripe_account_id",
        "payouts_enabled",
        "commission_bps",
    }
    assert profile["status"] == "pending"
    assert profile["display_name"] == "Shop"
    assert profile["stripe_account_id"] is None
    assert profile["payouts_enabled"] is False
    assert profile["commission_bps"] is None


def test_register_role_defaults_to_buyer(api):
    body = {"email": "x@example.com", "password": PASSWORD, "name": "X"}
    response = api.post("/auth/register", json=body)
    assert response.status_code == 201
    assert response.get_json()["user"]["role"] == "buyer"


def test_duplicate_email_is_409_case_insensitive(api):
    assert _register(api).status_code == 201
    before = _user_count()
    assert_error(_register(api), 409, "email_taken")
    assert_error(_register(api, email="ADA@Example.COM"), 409, "email_taken")
    assert_error(_register(api, email="  Ada@example.com "), 409, "email_taken")
    assert _user_count() == before


def test_email_is_stored_lower_case_and_login_ignores_case(api):
    response = _register(api, email="Grace.Hopper@Example.COM")
    assert response.get_json()["user"]["email"] == "grace.hopper@example.com"
    login = api.post(
        "/auth/token", json={"email": "GRACE.HOPPER@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": ""}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 121}, "name"),
        ({"role": "admin"}, "role"),
        ({"role": "superuser"}, "role"),
        ({"email": "a" * 250 + "@example.com"}, "email"),
    ],
)
def test_register_invalid_values_are_422(api, overrides, field):
    error = assert_error(_register(api, **overrides), 422, "validation_error")
    assert field in error["details"]["fields"]
    assert _user_count() == 0


@pytest.mark.parametrize("missing", ["email", "password", "name"])
def test_register_missing_fields_are_422(api, missing):
    body = {"email": "ada@example.com", "password": PASSWORD, "name": "Ada", "role": "buyer"}
    del body[missing]
    error = assert_error(api.post("/auth/register", json=body), 422, "validation_error")
    assert missing in error["details"]["fields"]
    assert _user_count() == 0


def test_register_reports_every_bad_field(api):
    error = assert_error(api.post("/auth/register", json={"email": "nope", "password": "x"}), 422)
    assert {"name"} <= set(error["details"]["fields"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"email": 5},
        {"password": True},
        {"password": 12345678},
        {"name": ["Ada"]},
        {"role": 1},
        {"email": None},
    ],
)
def test_register_wrong_types_are_400(api, overrides):
    assert_error(_register(api, **overrides), 400, "bad_request")
    assert _user_count() == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "email=a@example.com", "content_type": "application/x-www-form-urlencoded"},
        {"data": "{not json", "content_type": "application/json"},
        {"data": "", "content_type": "application/json"},
        {"json": ["a", "list"]},
        {"json": "a string"},
        {"data": "null", "content_type": "application/json"},
    ],
)
def test_register_malformed_body_is_400(api, kwargs):
    assert_error(api.post("/auth/register", **kwargs), 400, "bad_request")
    assert _user_count() == 0


def test_register_rejects_nul_characters(api):
    assert_error(_register(api, name="Ada\u0000Lovelace"), 422)
    assert _user_count() == 0


def test_token_issue_and_errors(api):
    buyer = make_buyer()
    email = buyer.user.email
    response = api.post("/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    data = response.get_json()
    assert set(data) == {"token", "user"}
    assert data["user"]["id"] == buyer.id and data["user"]["role"] == "buyer"
    assert api.get("/me", data["token"]).get_json()["user"]["id"] == buyer.id
    assert data["token"] != buyer.token  # every login gets its own token

    wrong = api.post("/auth/token", json={"email": email, "password": "wrong password"})
    assert_error(wrong, 401, "invalid_credentials")
    unknown = api.post("/auth/token", json={"email": "who@example.com", "password": PASSWORD})
    assert_error(unknown, 401, "invalid_credentials")
    # The two failures answer the same: nothing tells which emails exist.
    assert wrong.get_json() == unknown.get_json()


def test_token_bad_bodies(api):
    assert_error(api.post("/auth/token", json={"email": "a@example.com"}), 422)
    assert_error(api.post("/auth/token", json={"email": 5, "password": "x"}), 400)
    assert_error(api.post("/auth/token", data="nope", content_type="text/plain"), 400)


def test_failed_logins_are_rate_limited(api):
    buyer = make_buyer()
    email = buyer.user.email
    good = {"email": email, "password": PASSWORD}
    # Successful logins do not count against the limit.
    for _ in range(12):
        assert api.post("/auth/token", json=good).status_code == 200
    for _ in range(10):
        bad = api.post("/auth/token", json={"email": email, "password": "nope-nope"})
        assert_error(bad, 401, "invalid_credentials")
    limited = api.post("/auth/token", json={"email": email, "password": "nope-nope"})
    assert_error(limited, 429, "rate_limited")
    retry_after = limited.headers.get("Retry-After")
    assert retry_after is not None and int(retry_after) > 0
    # Once limited, even the right password waits.
    assert_error(api.post("/auth/token", json=good), 429, "rate_limited")


def test_rate_limit_comes_from_config(app, api):
    app.config["LOGIN_RATE_LIMIT"] = "2 per minute"
    for _ in range(2):
        bad = api.post("/auth/token", json={"email": "x@example.com", "password": "nope-nope"})
        assert_error(bad, 401)
    limited = api.post("/auth/token", json={"email": "x@example.com", "password": "nope-nope"})
    assert_error(limited, 429, "rate_limited")
    assert "Retry-After" in limited.headers


def test_me_requires_a_valid_token(api):
    assert_error(api.get("/me"), 401, "unauthorized")
    assert_error(api.get("/me", "not-a-real-token"), 401, "unauthorized")
    assert_error(api.get("/me", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    assert_error(api.get("/me", headers={"Authorization": "Bearer "}), 401, "unauthorized")
    buyer = make_buyer()
    assert api.get("/me", buyer.token).status_code == 200
    lower = api.get("/me", headers={"Authorization": f"bearer {buyer.token}"})
    assert lower.status_code == 200


def test_delete_token_revokes_only_that_token(api):
    buyer = make_buyer()
    other = api.post("/auth/token", json={"email": buyer.user.email, "password": PASSWORD})
    other_token = other.get_json()["token"]
    response = api.delete("/auth/token", buyer.token)
    assert response.status_code == 204
    assert_error(api.get("/me", buyer.token), 401, "unauthorized")
    assert_error(api.delete("/auth/token", buyer.token), 401, "unauthorized")
    assert api.get("/me", other_token).status_code == 200


def test_delete_token_without_token_is_401(api):
    assert_error(api.delete("/auth/token"), 401, "unauthorized")


def test_tokens_are_stored_hashed(api):
    response = _register(api)
    token = response.get_json()["token"]
    login = api.post("/auth/token", json={"email": "ada@example.com", "password": PASSWORD})
    tokens = [token, login.get_json()["token"]]
    rows = db.session.scalars(select(ApiToken)).all()
    assert len(rows) == 2
    for row in rows:
        assert row.token_hash not in tokens
        assert all(t not in row.token_hash for t in tokens)
    user = db.session.scalar(select(User))
    assert PASSWORD not in user.password_hash
    assert user.session_token not in tokens


def test_vendor_registration_is_atomic(api):
    _register(api, email="shop@example.com", role="vendor")
    assert_error(_register(api, email="SHOP@example.com", role="vendor"), 409)
    assert db.session.scalar(select(func.count()).select_from(Vendor)) == 1
