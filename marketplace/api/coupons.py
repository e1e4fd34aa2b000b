"""Coupons: a vendor's own (`/vendor/coupons`) and the platform's (`/admin/coupons`, audited)."""

from __future__ import annotations

from typing import Any, Literal

from flask import jsonify

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import body, current_vendor, reject_nulls, require
from marketplace.coupons import services as coupons
from marketplace.validation import Body, Id


class CouponBody(Body):
    code: str
    kind: Literal["percent", "fixed"]
    percent_bps: int | None = None
    amount_cents: int | None = None
    min_order_cents: int = 0
    starts_at: str | None = None  # ISO 8601; without an offset, UTC
    ends_at: str | None = None
    max_uses: int | None = None
    max_uses_per_buyer: int | None = None
    scope: Literal["cart", "vendor", "categories", "products"] = "cart"
    scope_ids: list[Id] = []
    active: bool = True


class CouponPatch(Body):
    code: str | None = None
    kind: Literal["percent", "fixed"] | None = None
    percent_bps: int | None = None
    amount_cents: int | None = None
    min_order_cents: int | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    max_uses: int | None = None
    max_uses_per_buyer: int | None = None
    scope: Literal["cart", "vendor", "categories", "products"] | None = None
    scope_ids: list[Id] | None = None
    active: bool | None = None


_NOT_NULL = ("code", "kind", "min_order_cents", "scope", "scope_ids", "active")


def _create(vendor_id: int | None) -> Any:
    data = body(CouponBody)
    coupon = coupons.create(
        coupons.input_from(data.model_dump(), set(data.model_dump())), vendor_id=vendor_id
    )
    return jsonify(coupons.coupon_json(coupon)), 201


def _patch(coupon_id: int, vendor_id: int | None) -> Any:
    data = body(CouponPatch)
    reject_nulls(data, *_NOT_NULL)
    coupon = coupons.update_coupon(
        coupon_id, coupons.input_from(data.model_dump(), data.model_fields_set), vendor_id=vendor_id
    )
    return jsonify(coupons.coupon_json(coupon))


def _list(vendor_id: int | None) -> Any:
    items = coupons.list_coupons(vendor_id=vendor_id)
    return jsonify({"items": [coupons.coupon_json(c) for c in items]})


@bp.get("/vendor/coupons")
@require(Role.VENDOR)
def list_vendor_coupons() -> Any:
    return _list(current_vendor().id)


@bp.post("/vendor/coupons")
@require(Role.VENDOR)
def create_vendor_coupon() -> Any:
    return _create(current_vendor().id)


@bp.patch("/vendor/coupons/<int:coupon_id>")
@require(Role.VENDOR)
def patch_vendor_coupon(coupon_id: int) -> Any:
    return _patch(coupon_id, current_vendor().id)


@bp.delete("/vendor/coupons/<int:coupon_id>")
@require(Role.VENDOR)
def delete_vendor_coupon(coupon_id: int) -> Any:
    coupons.delete_coupon(coupon_id, vendor_id=current_vendor().id)
    return "", 204


@bp.get("/admin/coupons")
@require(Role.ADMIN)
def admin_list_coupons() -> Any:
    return _list(None)


@bp.post("/admin/coupons")
@require(Role.ADMIN)
def admin_create_coupon() -> Any:
    return _create(None)


@bp.patch("/admin/coupons/<int:coupon_id>")
@require(Role.ADMIN)
def admin_patch_coupon(coupon_id: int) -> Any:
    return _patch(coupon_id, None)


@bp.delete("/admin/coupons/<int:coupon_id>")
@require(Role.ADMIN)
def admin_delete_coupon(coupon_id: int) -> Any:
    coupons.delete_coupon(coupon_id, vendor_id=None)
    return "", 204
