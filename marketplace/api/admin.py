"""Admin: vendor approval."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import page_of, pagination, require
from marketplace.api.vendor import vendor_json
from marketplace.catalog import services as catalog
from marketplace.catalog.models import VendorStatus
from marketplace.errors import ValidationFailed


@bp.get("/admin/vendors")
@require(Role.ADMIN)
def admin_list_vendors() -> Any:
    status_arg = request.args.get("status")
    status = None
    if status_arg:
        if status_arg not in {s.value for s in VendorStatus}:
            raise ValidationFailed({"status": "must be pending, approved or suspended"})
        status = VendorStatus(status_arg)
    page, per_page = pagination()
    vendors, total = catalog.vendors_page(status, page=page, per_page=per_page)
    return jsonify(page_of([vendor_json(v) for v in vendors], total, page, per_page))


@bp.post("/admin/vendors/<int:vendor_id>/approve")
@require(Role.ADMIN)
def admin_approve_vendor(vendor_id: int) -> Any:
    return jsonify(vendor_json(catalog.set_vendor_status(vendor_id, VendorStatus.APPROVED)))


@bp.post("/admin/vendors/<int:vendor_id>/suspend")
@require(Role.ADMIN)
def admin_suspend_vendor(vendor_id: int) -> Any:
    return jsonify(vendor_json(catalog.set_vendor_status(vendor_id, VendorStatus.SUSPENDED)))
