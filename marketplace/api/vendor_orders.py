"""The vendor's side of orders and money: fulfilment, refunds, onboarding, earnings."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for
from sqlalchemy import select
from typing_extensions import TypedDict

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import (
    body,
    current_user,
    current_vendor,
    int_arg,
    page_of,
    pagination,
    require,
)
from marketplace.catalog.services import _paginate
from marketplace.errors import BadRequest, ValidationFailed
from marketplace.orders import fulfilment
from marketplace.orders.models import VendorOrder, VendorOrderStatus
from marketplace.orders.presenters import vendor_order_json
from marketplace.payments import services as payments
from marketplace.payouts import earnings
from marketplace.settlement import refunds
from marketplace.validation import Body, Id, is_whole_number


class ShipBody(Body):
    carrier: str
    tracking_number: str


class CancelBody(Body):
    reason: str


class RefundItemBody(Body):
    order_item_id: Id
    quantity: int


class RefundBody(Body):
    amount_cents: int | None = None
    items: list[RefundItemBody] | None = None
    include_shipping: bool = False
    restock: bool | None = None  # unless told: only units that never shipped
    reason: str = "requested_by_vendor"


class OnboardingJson(TypedDict):
    stripe_account_id: str
    onboarding_url: str


def _optional_flag(raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    return raw.lower() not in {"0", "false"}


def _vendor_scope() -> int | None:
    """The acting vendor's id, or None for an admin (who may refund any VendorOrder)."""
    if current_user().role is Role.ADMIN:
        return None
    return current_vendor().id


@bp.get("/vendor/orders")
@require(Role.VENDOR)
def list_vendor_orders() -> Any:
    page, per_page = pagination()
    query = select(VendorOrder).where(VendorOrder.vendor_id == current_vendor().id)
    status = request.args.get("status")
    if status:
        if status not in {s.value for s in VendorOrderStatus}:
            raise ValidationFailed({"status": "unknown status"})
        query = query.where(VendorOrder.status == VendorOrderStatus(status))
    items, total = _paginate(query.order_by(VendorOrder.id.desc()), page, per_page)
    return jsonify(
        page_of([vendor_order_json(vo, for_vendor=True) for vo in items], total, page, per_page)
    )


@bp.get("/vendor/orders/<int:vendor_order_id>")
@require(Role.VENDOR)
def get_vendor_order(vendor_order_id: int) -> Any:
    vendor_order = fulfilment.vendor_order_for(current_vendor().id, vendor_order_id)
    return jsonify(vendor_order_json(vendor_order, for_vendor=True))


@bp.post("/vendor/orders/<int:vendor_order_id>/ship")
@require(Role.VENDOR)
def ship_vendor_order(vendor_order_id: int) -> Any:
    data = body(ShipBody)
    vendor_order = fulfilment.ship(
        current_vendor().id, vendor_order_id, data.carrier, data.tracking_number
    )
    return jsonify(vendor_order_json(vendor_order, for_vendor=True))


@bp.post("/vendor/orders/<int:vendor_order_id>/deliver")
@require(Role.VENDOR)
def deliver_vendor_order(vendor_order_id: int) -> Any:
    vendor_order = fulfilment.deliver(current_vendor().id, vendor_order_id)
    return jsonify(vendor_order_json(vendor_order, for_vendor=True))


@bp.post("/vendor/orders/<int:vendor_order_id>/cancel")
@require(Role.VENDOR)
def cancel_vendor_order(vendor_order_id: int) -> Any:
    data = body(CancelBody)
    vendor_order = fulfilment.cancel_by_vendor(current_vendor().id, vendor_order_id, data.reason)
    return jsonify(vendor_order_json(vendor_order, for_vendor=True))


def _refund_request(data: RefundBody) -> dict[str, Any]:
    if data.items is not None and not data.items:
        raise ValidationFailed({"items": "list at least one item, or leave items out"})
    items = (
        [refunds.ItemRequest(i.order_item_id, i.quantity) for i in data.items]
        if data.items
        else None
    )
    return {
        "amount_cents": data.amount_cents,
        "items": items,
        "include_shipping": data.include_shipping,
        "restock": data.restock,
    }


@bp.post("/vendor/orders/<int:vendor_order_id>/refund")
@require(Role.VENDOR, Role.ADMIN)
def refund_vendor_order(vendor_order_id: int) -> Any:
    data = body(RefundBody)
    refund = refunds.refund_vendor_order(
        vendor_order_id,
        vendor_id=_vendor_scope(),
        actor=f"{current_user().role.value}:{current_user().id}",
        reason=data.reason,
        **_refund_request(data),
    )
    return jsonify(refunds.refund_json(refund)), 201


@bp.get("/vendor/orders/<int:vendor_order_id>/refund-preview")
@require(Role.VENDOR, Role.ADMIN)
def refund_preview(vendor_order_id: int) -> Any:
    items = None
    raw_items = request.args.getlist("items") or request.args.getlist("item")
    if raw_items:
        items = []
        for raw in raw_items:
            item_id, _, quantity = raw.partition(":")
            if not is_whole_number(item_id) or not is_whole_number(quantity):
                raise BadRequest("`items` entries look like <order_item_id>:<quantity>.")
            items.append(refunds.ItemRequest(int(item_id), int(quantity)))
    plan = refunds.preview(
        vendor_order_id,
        _vendor_scope(),
        amount_cents=int_arg("amount_cents", None, low=0, high=10**9),
        items=items,
        include_shipping=(request.args.get("include_shipping") or "").lower() in {"1", "true"},
        restock=_optional_flag(request.args.get("restock")),
    )
    return jsonify(plan.preview())


@bp.post("/vendor/onboarding")
@require(Role.VENDOR)
def vendor_onboarding() -> Any:
    vendor = current_vendor()
    account_id, url = payments.start_onboarding(
        vendor.id,
        refresh_url=url_for("vendors.onboarding_refresh", _external=True),
        return_url=url_for("vendors.onboarding_return", _external=True),
    )
    return jsonify({"stripe_account_id": account_id, "onboarding_url": url})


@bp.get("/vendor/earnings")
@require(Role.VENDOR)
def vendor_earnings() -> Any:
    return jsonify(earnings.vendor_earnings(current_vendor().id))
