"""The `flask users create-admin` and `flask demo load` commands."""

from __future__ import annotations

from sqlalchemy import func, select

from marketplace.accounts.models import Role, User
from marketplace.db import db


def _admins() -> int:
    count = db.session.scalar(select(func.count()).where(User.role == Role.ADMIN))
    db.session.rollback()
    return count


def test_create_admin_then_log_in(runner, api):
    result = runner.invoke(
        args=["users", "create-admin", "Boss@Example.com", "--password", "admin-password-1"]
    )
    assert result.exit_code == 0, result.output
    assert "boss@example.com" in result.output
    response = api.post(
        "/auth/token", json={"email": "boss@example.com", "password": "admin-password-1"}
    )
    assert response.status_code == 200
    token = response.get_json()["token"]
    assert response.get_json()["user"]["role"] == "admin"
    assert api.get("/admin/vendors", token).status_code == 200


def test_create_admin_with_a_name(runner):
    result = runner.invoke(
        args=[
            "users",
            "create-admin",
            "a@example.com",
            "--password",
            "pw-long-enough",
            "--name",
            "Ada",
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "a@example.com"))
    assert user.name == "Ada" and user.role is Role.ADMIN


def test_duplicate_admin_fails_clearly(runner):
    args = ["users", "create-admin", "boss@example.com", "--password", "admin-password-1"]
    assert runner.invoke(args=args).exit_code == 0
    again = runner.invoke(
        args=["users", "create-admin", "BOSS@example.com", "--password", "admin-password-1"]
    )
    assert again.exit_code != 0
    assert "already exists" in again.output
    assert "Traceback" not in again.output
    assert _admins() == 1


def test_invalid_admin_input_fails_clearly(runner):
    short = runner.invoke(args=["users", "create-admin", "x@example.com", "--password", "short"])
    assert short.exit_code != 0
    assert "password" in short.output
    bad_email = runner.invoke(
        args=["users", "create-admin", "not-an-email", "--password", "long-enough-pw"]
    )
    assert bad_email.exit_code != 0
    assert "email" in bad_email.output
    assert _admins() == 0


def test_password_can_be_prompted(runner):
    result = runner.invoke(
        args=["users", "create-admin", "p@example.com"], input="prompted-pw-1\nprompted-pw-1\n"
    )
    assert result.exit_code == 0, result.output
    assert _admins() == 1


def test_demo_load_prints_logins_and_leaves_a_searchable_catalog(runner, api, app):
    # As on a fresh install, where jobs go to a queue no worker runs yet: only the command's
    # own index build can make the catalog searchable.
    app.config["JOBS_SYNCHRONOUS"] = False
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "admin@example.com" in result.output and "buyer1@example.com" in result.output
    assert "search index built: " in result.output
    built = int(result.output.split("search index built: ")[1].split()[0])
    listed = api.get("/products?per_page=1").get_json()
    assert listed["total"] == built >= 50
    brands = {facet["value"] for facet in listed["facets"]["brand"]}
    assert len(brands) >= 5, listed["facets"]
    brand = sorted(brands)[0]
    searched = api.get("/products", query_string={"q": brand}).get_json()
    assert searched["total"] >= 1 and searched["items"][0]["brand"] == brand

    from marketplace.orders.tax import rate_for

    assert rate_for("US", "CA") == 725  # so a first checkout's quote shows tax

    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0 and "already loaded" in again.output
