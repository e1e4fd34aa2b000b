"""The audit log: every admin action, through the pages and the JSON API, leaves one row with
who, what, the target and the state before and after; the audit page and its API twin list
and filter them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from marketplace.audit.models import AuditEntry
from marketplace.db import db, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from tests.helpers import (
    assert_error,
    forms_in,
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


def _entries(action: str | None = None) -> list[AuditEntry]:
    db.session.rollback()  # see what the requests committed
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(db.session.scalars(query))


def _one(action: str) -> AuditEntry:
    rows = _entries(action)
    assert len(rows) == 1, [(r.action, r.target_id) for r in _entries()]
    return rows[0]


# --- through the pages ------------------------------------------------------------------------


def test_disable_and_enable_a_user_through_the_page_are_audited(web):
    admin = make_admin()
    buyer = make_buyer()
    login(web, admin.user.email)
    page = web.get(f"/admin/users?q={buyer.user.email}")
    done = submit(web, page, f"/admin/users/{buyer.id}/disable")
    assert done.status_code == 303

    row = _one("user.disable")
    assert (row.target_type, row.target_id) == ("user", str(buyer.id))
    assert row.before == {"active": True} and row.after == {"active": False}
    assert row.actor_id == admin.id and row.actor_email == admin.user.email
    assert row.request_id

    page = web.get(f"/admin/users?q={buyer.user.email}")
    submit(web, page, f"/admin/users/{buyer.id}/enable")
    row = _one("user.enable")
    assert row.before == {"active": False} and row.after == {"active": True}


def test_approve_and_suspend_a_vendor_through_the_page_are_audited(web):
    admin = make_admin()
    pending = make_vendor(approved=False)
    login(web, admin.user.email)
    submit(web, web.get("/admin/vendors"), f"/admin/vendors/{pending.vendor.id}/approve")
    row = _one("vendor.approve")
    assert (row.target_type, row.target_id) == ("vendor", str(pending.vendor.id))
    assert row.before == {"status": "pending"} and row.after == {"status": "approved"}
    assert row.actor_id == admin.id

    submit(web, web.get("/admin/vendors"), f"/admin/vendors/{pending.vendor.id}/suspend")
    row = _one("vendor.suspend")
    assert row.before == {"status": "approved"} and row.after == {"status": "suspended"}


def _commission_form(page, which: str):
    for form in forms_in(page, "/admin/commission"):
        if any(c.get("value") == which for c in form.control("action")):
            return form
    raise AssertionError(f"no {which} commission form on the page")


def test_commission_changes_through_the_page_are_audited(web):
    admin = make_admin()
    vendor = make_vendor()
    login(web, admin.user.email)

    page = web.get("/admin/commission")
    form = _commission_form(page, "default")
    before = int(form.control("default_bps")[0]["value"])
    assert web.post(form.action, data=form.data(default_bps=1234)).status_code == 303
    row = _one("commission.platform")
    assert row.before == {"bps": before} and row.after == {"bps": 1234}
    assert row.actor_id == admin.id

    form = _commission_form(web.get("/admin/commission"), "vendor")
    web.post(form.action, data=form.data(vendor_id=vendor.vendor.id, vendor_bps=700))
    row = _one("commission.vendor")
    assert row.target_id == str(vendor.vendor.id)
    assert row.before == {"bps": None} and row.after == {"bps": 700}

    form = _commission_form(web.get("/admin/commission"), "dispute_recovery")
    web.post(form.action, data=form.data(dispute_recovery="reverse_vendor_share"))
    row = _one("dispute_recovery.set")
    assert row.before == {"dispute_recovery": "platform_absorbs"}
    assert row.after == {"dispute_recovery": "reverse_vendor_share"}


def test_a_refused_action_leaves_no_audit_row(web):
    admin = make_admin()
    login(web, admin.user.email)
    form = _commission_form(web.get("/admin/commission"), "default")
    response = web.post(form.action, data=form.data(default_bps=99999))
    assert response.status_code == 422
    assert _entries() == []


def test_the_audit_page_lists_and_filters(web):
    admin = make_admin()
    buyer, other = make_buyer(), make_buyer()
    login(web, admin.user.email)
    submit(web, web.get(f"/admin/users?q={buyer.user.email}"), f"/admin/users/{buyer.id}/disable")
    submit(web, web.get(f"/admin/users?q={other.user.email}"), f"/admin/users/{other.id}/disable")

    page = web.get("/admin/audit")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-total="2"' in html and "user.disable" in html and admin.user.email in html
    assert 'href="/admin/audit"' in html  # in the admin navigation

    (search,) = forms_in(page, "/admin/audit")
    filtered = web.get("/admin/audit", query_string=search.data(target_id=str(buyer.id)))
    body = filtered.get_data(as_text=True)
    assert 'data-total="1"' in body
    assert f"user {buyer.id}" in body and f"user {other.id}" not in body

    nobody = web.get("/admin/audit", query_string=search.data(actor="nobody@example.com"))
    assert 'data-total="0"' in nobody.get_data(as_text=True)


@pytest.mark.parametrize("role", ["buyer", "vendor"])
def test_the_audit_page_is_for_admins(web, role):
    account = make_buyer() if role == "buyer" else make_vendor()
    login(web, account.user.email)
    assert web.get("/admin/audit").status_code == 403


# --- through the JSON API ---------------------------------------------------------------------


def test_api_actions_are_audited_with_the_token_user(api):
    admin = make_admin()
    buyer = make_buyer()
    vendor = make_vendor(approved=False)

    assert api.post(f"/admin/users/{buyer.id}/disable", admin.token).status_code == 200
    assert api.post(f"/admin/vendors/{vendor.vendor.id}/approve", admin.token).status_code == 200
    api.put(f"/admin/vendors/{vendor.vendor.id}/commission", admin.token, json={"bps": 500})
    api.put(f"/admin/vendors/{vendor.vendor.id}/commission", admin.token, json={"bps": None})
    api.put("/admin/commission", admin.token, json={"default_bps": 900})
    api.put(
        "/admin/dispute-recovery", admin.token, json={"dispute_recovery": "reverse_vendor_share"}
    )

    row = _one("user.disable")
    assert row.actor_id == admin.id and row.before == {"active": True}
    assert _one("vendor.approve").after == {"status": "approved"}
    vendor_rows = _entries("commission.vendor")
    assert [(r.before, r.after) for r in vendor_rows] == [
        ({"bps": None}, {"bps": 500}),
        ({"bps": 500}, {"bps": None}),
    ]
    assert _one("commission.platform").after == {"bps": 900}
    assert _one("dispute_recovery.set").after == {"dispute_recovery": "reverse_vendor_share"}
    assert {r.actor_id for r in _entries()} == {admin.id}


def test_api_outbox_retry_is_audited(app, api):
    admin = make_admin()
    app.config["JOBS_SYNCHRONOUS"] = False
    with transaction():
        message = outbox.add("tests.functional.test_admin_audit.nothing", 1)
    with transaction():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(status=OutboxStatus.DEAD, attempts=10, dead_at=utcnow())
        )
    assert api.post(f"/admin/outbox/{message.id}/retry", admin.token).status_code == 200
    row = _one("outbox.retry")
    assert (row.target_type, row.target_id) == ("outbox_message", str(message.id))
    assert row.before == {"status": "dead", "attempts": 10}
    assert row.after == {"status": "pending", "attempts": 0}


def nothing(_n: int) -> None:
    """The dead letter's handler: does nothing."""


def test_api_audit_log_lists_filters_and_pages(api):
    admin = make_admin()
    buyers = [make_buyer() for _ in range(3)]
    for buyer in buyers:
        api.post(f"/admin/users/{buyer.id}/disable", admin.token)
    api.post(f"/admin/users/{buyers[0].id}/enable", admin.token)

    listed = api.get("/admin/audit", admin.token).get_json()
    assert listed["total"] == 4 and listed["page"] == 1
    newest = listed["items"][0]
    assert newest["action"] == "user.enable" and newest["actor_email"] == admin.user.email
    assert newest["before"] == {"active": False} and newest["after"] == {"active": True}
    assert set(newest) == {
        "id",
        "created_at",
        "actor_id",
        "actor_email",
        "action",
        "target_type",
        "target_id",
        "before",
        "after",
        "request_id",
    }

    only = api.get(
        f"/admin/audit?target_type=user&target_id={buyers[0].id}", admin.token
    ).get_json()
    assert [i["action"] for i in only["items"]] == ["user.enable", "user.disable"]
    assert api.get("/admin/audit?action=user.enable", admin.token).get_json()["total"] == 1
    assert api.get(f"/admin/audit?actor={admin.id}", admin.token).get_json()["total"] == 4
    paged = api.get("/admin/audit?per_page=3&page=2", admin.token).get_json()
    assert len(paged["items"]) == 1

    assert_error(api.get("/admin/audit?action=" + "x" * 65, admin.token), 422)
    assert_error(api.get("/admin/audit", buyers[1].token), 401)
    assert_error(api.get("/admin/audit", make_buyer().token), 403)
