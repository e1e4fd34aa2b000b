"""Admin: vendor approval, disabling user accounts."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from marketplace.accounts import services as accounts
from marketplace.accounts.models import Role, User, UserJson
from marketplace.api import bp
from marketplace.api.common import current_user, page_of, pagination, require
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


class AdminUserJson(UserJson):
    active: bool
    created_at: str


def user_json(user: User) -> AdminUserJson:
    return {
        **user.to_dict(),
        "active": user.active,
        "created_at": user.created_at.isoformat(),
    }


@bp.get("/admin/users")
@require(Role.ADMIN)
def admin_list_users() -> Any:
    query = request.args.get("q", "")
    if len(query) > 254:
        raise ValidationFailed({"q": "must be at most 254 characters long"})
    page, per_page = pagination()
    users, total = accounts.users_page(query or None, page=page, per_page=per_page)
    return jsonify(page_of([user_json(u) for u in users], total, page, per_page))


@bp.post("/admin/users/<int:user_id>/disable")
@require(Role.ADMIN)
def admin_disable_user(user_id: int) -> Any:
    return jsonify(user_json(accounts.set_user_active(current_user().id, user_id, False)))


@bp.post("/admin/users/<int:user_id>/enable")
@require(Role.ADMIN)
def admin_enable_user(user_id: int) -> Any:
    return jsonify(user_json(accounts.set_user_active(current_user().id, user_id, True)))
