"""Admin pages: the vendor list, its status filter, Approve / Suspend and their errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace.catalog.models import Vendor, VendorStatus
from marketplace.db import db
from tests.helpers import (
    Account,
    csrf_token_in,
    login,
    make_admin,
    make_buyer,
    make_product,
    make_vendor,
    page_app,
    submit,
)


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


@pytest.fixture
def admin(web: FlaskClient) -> Account:
    account = make_admin()
    assert login(web, account.user.email).status_code == 302
    return account


def _status(vendor_id: int) -> VendorStatus:
    db.session.rollback()  # end the read snapshot: see what requests committed
    return db.session.get(Vendor, vendor_id).status


def _flashes(web: FlaskClient) -> list[tuple[str, str]]:
    with web.session_transaction() as session:
        return list(session.get("_flashes", []))


ADMIN_PAGES = ["/admin/", "/admin/vendors", "/admin/vendors?status=pending"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_anonymous_is_sent_to_login(web, path):
    response = web.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=%2Fadmin%2F")


@pytest.mark.parametrize("role", ["buyer", "vendor"])
def test_other_roles_get_403_and_change_nothing(web, role):
    pending = make_vendor(approved=False)
    account = make_buyer() if role == "buyer" else make_vendor()
    login(web, account.user.email)
    for path in ADMIN_PAGES:
        response = web.get(path)
        assert response.status_code == 403
        assert "These pages are for administrators." in response.text
    # Deliberate: no page offers these roles the action.
    assert web.post_raw(f"/admin/vendors/{pending.vendor.id}/approve").status_code == 403
    assert _status(pending.vendor.id) is VendorStatus.PENDING


def test_admin_index_redirects_to_vendors(web, admin):
    response = web.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/vendors"


def test_vendor_list_and_filter(web, admin):
    pending = make_vendor("Pending Shop", approved=False)
    approved = make_vendor("Approved Shop")
    page = web.get("/admin/vendors").text
    assert pending.vendor.display_name in page and approved.vendor.display_name in page
    assert pending.user.email in page
    assert f'action="/admin/vendors/{pending.vendor.id}/approve"' in page
    assert f'action="/admin/vendors/{pending.vendor.id}/suspend"' in page
    assert f'action="/admin/vendors/{approved.vendor.id}/approve"' not in page
    assert f'action="/admin/vendors/{approved.vendor.id}/suspend"' in page
    filtered = web.get("/admin/vendors?status=pending").text
    assert pending.vendor.display_name in filtered
    assert approved.vendor.display_name not in filtered
    assert web.get("/admin/vendors?status=bogus").status_code == 422


def test_approve_then_suspend_then_reapprove(web, admin):
    vendor = make_vendor("Lamp Shop", approved=False)
    product = make_product(vendor, title="Desk Lamp")
    assert web.get(f"/products/{product.id}").status_code == 404

    listed = web.get("/admin/vendors?status=pending")
    response = submit(web, listed, f"/admin/vendors/{vendor.vendor.id}/approve")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/vendors?status=pending"
    assert _status(vendor.vendor.id) is VendorStatus.APPROVED
    assert ("success", f"{vendor.vendor.display_name} is approved.") in _flashes(web)
    assert web.get(f"/products/{product.id}").status_code == 200

    response = submit(web, web.get("/admin/vendors"), f"/admin/vendors/{vendor.vendor.id}/suspend")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/vendors"
    assert _status(vendor.vendor.id) is VendorStatus.SUSPENDED
    assert web.get(f"/products/{product.id}").status_code == 404

    submit(web, web.get("/admin/vendors"), f"/admin/vendors/{vendor.vendor.id}/approve")
    assert _status(vendor.vendor.id) is VendorStatus.APPROVED


@pytest.mark.parametrize(
    ("start", "action", "message"),
    [
        (VendorStatus.APPROVED, "approve", "A vendor that is approved cannot become approved."),
        (VendorStatus.SUSPENDED, "suspend", "A vendor that is suspended cannot become suspended."),
    ],
)
def test_illegal_transition_is_flashed_and_changes_nothing(web, admin, start, action, message):
    vendor = make_vendor(approved=True)
    if start is VendorStatus.SUSPENDED:
        submit(web, web.get("/admin/vendors"), f"/admin/vendors/{vendor.vendor.id}/suspend")
        web.get("/admin/vendors")  # consume the flash
    # The page no longer offers the illegal action: post it as a stale page would.
    response = web.post_raw(f"/admin/vendors/{vendor.vendor.id}/{action}")
    assert response.status_code == 303
    assert _status(vendor.vendor.id) is start
    page = web.get(response.headers["Location"]).text
    assert f'<p class="flash error" role="status">{message}</p>' in page


def test_unknown_vendor_is_404(web, admin):
    assert web.post_raw("/admin/vendors/999999/approve").status_code == 404
    assert web.post_raw("/admin/vendors/999999/suspend").status_code == 404


def test_actions_are_post_only(web, admin):
    vendor = make_vendor(approved=False)
    assert web.get(f"/admin/vendors/{vendor.vendor.id}/approve").status_code == 405
    assert _status(vendor.vendor.id) is VendorStatus.PENDING


def test_bad_status_filter_in_the_redirect_is_dropped(web, admin):
    vendor = make_vendor(approved=False)
    response = web.post_raw(  # a tampered hidden field
        f"/admin/vendors/{vendor.vendor.id}/approve",
        data={"status_filter": "https://evil.example/"},
    )
    assert response.headers["Location"] == "/admin/vendors"


def test_approve_needs_the_csrf_token(app):
    account = make_admin()
    vendor = make_vendor(approved=False)
    with page_app(WTF_CSRF_ENABLED=True) as csrf_app:
        web = csrf_app.test_client()
        assert login(web, account.user.email).status_code == 302
        response = web.post_raw(f"/admin/vendors/{vendor.vendor.id}/approve")  # no token
        assert response.status_code == 400
        assert _status(vendor.vendor.id) is VendorStatus.PENDING
        page = web.get("/admin/vendors")
        assert csrf_token_in(page)
        response = submit(web, page, f"/admin/vendors/{vendor.vendor.id}/approve")
        assert response.status_code == 303
        assert _status(vendor.vendor.id) is VendorStatus.APPROVED
