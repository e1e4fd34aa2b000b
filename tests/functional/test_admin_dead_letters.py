"""Admins see the outbox's dead letters and retry one, through the JSON API and the admin
pages; nobody else can."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from marketplace.db import db, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from tests.helpers import assert_error, csrf_token_in, login, make_admin, make_buyer, page_app

HANDLER = "tests.functional.test_admin_dead_letters.handler"
ran: list[int] = []


def handler(n: int) -> None:
    ran.append(n)


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    ran.clear()
    yield
    ran.clear()


def _dead(app: Flask, n: int, error: str = "RuntimeError('SMTP refused')") -> int:
    app.config["JOBS_SYNCHRONOUS"] = False
    with transaction():
        message = outbox.add(HANDLER, n)
    app.config["JOBS_SYNCHRONOUS"] = True
    with transaction():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(status=OutboxStatus.DEAD, attempts=10, last_error=error, dead_at=utcnow())
        )
    return message.id


def test_admin_lists_dead_letters_and_retries_one(app, api):
    admin = make_admin()
    first, second = _dead(app, 1), _dead(app, 2, "TransferNotReady()")
    app.config["JOBS_SYNCHRONOUS"] = False
    with transaction():
        pending = outbox.add(HANDLER, 3)  # not a dead letter
    alive = pending.id
    assert alive is not None
    app.config["JOBS_SYNCHRONOUS"] = True

    listed = api.get("/admin/outbox/dead", admin.token)
    assert listed.status_code == 200
    body = listed.get_json()
    assert body["total"] == 2 and body["page"] == 1
    assert {m["id"] for m in body["items"]} == {first, second}
    assert alive not in {m["id"] for m in body["items"]}
    (shown,) = [m for m in body["items"] if m["id"] == second]
    assert shown["job"] == HANDLER and shown["args"] == [2]
    assert shown["status"] == "dead" and shown["attempts"] == 10
    assert shown["last_error"] == "TransferNotReady()" and shown["dead_at"]

    retried = api.post(f"/admin/outbox/{second}/retry", admin.token)
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["status"] == "completed"  # synchronous mode ran it at once
    assert ran == [2]
    assert [m["id"] for m in api.get("/admin/outbox/dead", admin.token).get_json()["items"]] == [
        first
    ]
    assert_error(api.post(f"/admin/outbox/{second}/retry", admin.token), 409)
    assert_error(api.post("/admin/outbox/999999/retry", admin.token), 404)
    assert ran == [2]


def test_only_admins_see_or_retry_dead_letters(app, api):
    dead = _dead(app, 1)
    buyer = make_buyer()
    assert_error(api.get("/admin/outbox/dead", buyer.token), 403)
    assert_error(api.post(f"/admin/outbox/{dead}/retry", buyer.token), 403)
    assert_error(api.get("/admin/outbox/dead"), 401)
    assert ran == []
    db.session.rollback()
    assert db.session.get(OutboxMessage, dead).status is OutboxStatus.DEAD


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app(WTF_CSRF_ENABLED=True) as web_app:
        yield web_app.test_client()


def test_the_admin_page_shows_dead_letters_and_retries_one(app, web):
    admin = make_admin()
    dead = _dead(app, 7, "RuntimeError('SMTP <refused>')")
    token = csrf_token_in(web.get("/login"))
    assert login(web, admin.user.email, csrf_token=token).status_code == 302
    page = web.get("/admin/outbox")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'href="/admin/outbox"' in html  # linked from the admin navigation
    assert f'data-id="{dead}"' in html and HANDLER in html
    assert "SMTP &lt;refused&gt;" in html and 'data-total="1"' in html

    refused = web.post(f"/admin/outbox/{dead}/retry", data={})  # no CSRF token
    assert refused.status_code == 400
    assert ran == []
    retried = web.post(f"/admin/outbox/{dead}/retry", data={"csrf_token": csrf_token_in(page)})
    assert retried.status_code == 303
    assert ran == [7]
    after = web.get("/admin/outbox").get_data(as_text=True)
    assert "No dead letters." in after and "queued again" in after


def test_the_admin_page_is_for_admins_only(app, web):
    buyer = make_buyer()
    assert web.get("/admin/outbox").status_code == 302  # anonymous: to the login page
    token = csrf_token_in(web.get("/login"))
    assert login(web, buyer.user.email, csrf_token=token).status_code == 302
    assert web.get("/admin/outbox").status_code == 403


def test_reconciliation_reports_dead_letters_as_failed_steps(app, api):
    dead = _dead(app, 1, "TransferNotReady()")
    report = api.get("/admin/reconciliation", make_admin().token).get_json()
    assert report["ok"] is True  # the books still match Stripe
    assert report["failed_steps"] == [
        {"kind": "dead_letter", "id": dead, "detail": f"{HANDLER}: TransferNotReady()"}
    ]
