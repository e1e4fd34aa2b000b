"""Admin vendor management through the API: listing, approval, suspension, who may call."""

from __future__ import annotations

from sqlalchemy import select

from marketplace.catalog.models import Vendor, VendorStatus
from marketplace.db import db
from tests.helpers import assert_error, make_admin, make_buyer, make_product, make_vendor

VENDOR_FIELDS = {
    "id",
    "display_name",
    "status",
    "stripe_account_id",
    "payouts_enabled",
    "commission_bps",
}


def _statuses() -> dict[int, str]:
    rows = db.session.execute(select(Vendor.id, Vendor.status)).all()
    db.session.rollback()
    return {vendor_id: status.value for vendor_id, status in rows}


def test_list_vendors_with_status_filter(api):
    admin = make_admin()
    pending = make_vendor("Pending", approved=False)
    approved = make_vendor("Approved")
    suspended = make_vendor("Suspended")
    api.post(f"/admin/vendors/{suspended.vendor.id}/suspend", admin.token)

    response = api.get("/admin/vendors", admin.token)
    assert response.status_code == 200
    data = response.get_json()
    assert set(data) >= {"items", "total", "page", "per_page"}
    assert data["total"] == 3 and data["page"] == 1 and data["per_page"] == 20
    for item in data["items"]:
        assert set(item) >= VENDOR_FIELDS
    by_status = {
        status: [
            v["id"]
            for v in api.get(f"/admin/vendors?status={status}", admin.token).get_json()["items"]
        ]
        for status in ("pending", "approved", "suspended")
    }
    assert by_status == {
        "pending": [pending.vendor.id],
        "approved": [approved.vendor.id],
        "suspended": [suspended.vendor.id],
    }
    assert_error(api.get("/admin/vendors?status=bogus", admin.token), 422)


def test_list_vendors_paginates(api):
    admin = make_admin()
    vendors = [make_vendor(approved=False) for _ in range(3)]
    page = api.get("/admin/vendors?per_page=2&page=2", admin.token).get_json()
    assert page["total"] == 3 and page["page"] == 2 and page["per_page"] == 2
    assert [v["id"] for v in page["items"]] == [vendors[2].vendor.id]
    assert_error(api.get("/admin/vendors?per_page=101", admin.token), 422)
    assert_error(api.get("/admin/vendors?page=x", admin.token), 400)


def test_approve_suspend_reapprove(api):
    admin = make_admin()
    vendor = make_vendor(approved=False)
    product = make_product(vendor)
    vendor_id = vendor.vendor.id
    assert_error(api.get(f"/products/{product.id}"), 404)

    approved = api.post(f"/admin/vendors/{vendor_id}/approve", admin.token)
    assert approved.status_code == 200
    assert set(approved.get_json()) >= VENDOR_FIELDS
    assert approved.get_json()["status"] == "approved"
    assert api.get("/vendor", vendor.token).get_json()["status"] == "approved"
    assert api.get(f"/products/{product.id}").status_code == 200

    suspended = api.post(f"/admin/vendors/{vendor_id}/suspend", admin.token)
    assert suspended.status_code == 200 and suspended.get_json()["status"] == "suspended"
    assert_error(api.get(f"/products/{product.id}"), 404)
    assert product.id not in [p["id"] for p in api.get("/products").get_json()["items"]]

    again = api.post(f"/admin/vendors/{vendor_id}/approve", admin.token)
    assert again.status_code == 200 and again.get_json()["status"] == "approved"
    assert api.get(f"/products/{product.id}").status_code == 200


def test_pending_vendor_can_be_suspended(api):
    admin = make_admin()
    vendor = make_vendor(approved=False)
    response = api.post(f"/admin/vendors/{vendor.vendor.id}/suspend", admin.token)
    assert response.get_json()["status"] == "suspended"


def test_illegal_transitions_are_409_and_change_nothing(api):
    admin = make_admin()
    approved = make_vendor()
    suspended = make_vendor()
    api.post(f"/admin/vendors/{suspended.vendor.id}/suspend", admin.token)
    before = _statuses()
    error = assert_error(
        api.post(f"/admin/vendors/{approved.vendor.id}/approve", admin.token),
        409,
        "illegal_transition",
    )
    assert error["details"] == {"from": "approved", "to": "approved"}
    assert_error(
        api.post(f"/admin/vendors/{suspended.vendor.id}/suspend", admin.token),
        409,
        "illegal_transition",
    )
    assert _statuses() == before


def test_unknown_vendor_is_404(api):
    admin = make_admin()
    assert_error(api.post("/admin/vendors/999999/approve", admin.token), 404, "vendor_not_found")
    assert_error(api.post("/admin/vendors/999999/suspend", admin.token), 404, "vendor_not_found")
    assert_error(api.post(f"/admin/vendors/{2**40}/approve", admin.token), 404)


def test_non_admins_are_refused(api):
    vendor = make_vendor(approved=False)
    buyer = make_buyer()
    before = _statuses()
    for path, method in (
        ("/admin/vendors", "GET"),
        (f"/admin/vendors/{vendor.vendor.id}/approve", "POST"),
        (f"/admin/vendors/{vendor.vendor.id}/suspend", "POST"),
    ):
        assert_error(api.call(method, path, buyer.token), 403, "forbidden")
        assert_error(api.call(method, path, vendor.token), 403, "forbidden")
        assert_error(api.call(method, path), 401, "unauthorized")
    assert _statuses() == before
    assert before[vendor.vendor.id] == VendorStatus.PENDING.value
