"""Orders as API.md's JSON: the same shapes for the buyer's and the vendor's views.

Each shape is a TypedDict: the presenters are annotated with it and the OpenAPI document's
response schemas are generated from it (marketplace/api/openapi.py).
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict

from marketplace.catalog.models import VendorRefJson
from marketplace.orders.models import (
    Order,
    OrderHistory,
    OrderItem,
    OrderStatus,
    VendorOrder,
    VendorOrderStatus,
)

# "from" is a keyword: the functional form.
HistoryJson = TypedDict(
    "HistoryJson",
    {"from": str | None, "to": str, "at": str, "reason": str | None, "actor": str},
)


class ItemJson(TypedDict):
    id: int
    variant_id: int
    product_id: int
    sku: str
    title: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    tax_cents: int
    refunded_quantity: int
    discount_cents: int  # this line's part of the coupon's discount


class VendorOrderJson(TypedDict):
    id: int
    order_id: int
    vendor_id: int
    vendor: VendorRefJson
    status: VendorOrderStatus
    currency: str
    subtotal_cents: int
    shipping_cents: int
    discount_cents: int
    tax_cents: int
    shipping_tax_cents: int  # the part of tax_cents charged on shipping
    total_cents: int
    platform_fee_cents: int
    vendor_earnings_cents: int
    carrier: str | None
    tracking_number: str | None
    cancel_reason: str | None
    created_at: str
    items: list[ItemJson]
    history: list[HistoryJson]


class VendorSideOrderJson(VendorOrderJson):
    """The vendor's view adds where to ship and the whole order's status."""

    shipping_address: dict[str, str | None]
    order_status: OrderStatus


class OrderJson(TypedDict):
    id: int
    status: OrderStatus
    currency: str
    subtotal_cents: int
    discount_cents: int
    shipping_cents: int
    tax_cents: int
    total_cents: int
    shipping_address: dict[str, str | None]
    reservation_expires_at: str
    payment_intent_id: str | None
    cancel_reason: str | None
    created_at: str
    vendor_orders: list[VendorOrderJson]
    history: list[HistoryJson]
    coupon_code: str | None
    vat_number: str | None
    reverse_charge: bool  # EU business buyer: no VAT charged, the buyer accounts for it
    prices_include_tax: bool


def history_json(rows: list[OrderHistory]) -> list[HistoryJson]:
    return [
        {
            "from": row.from_status,
            "to": row.to_status,
            "at": row.created_at.isoformat(),
            "reason": row.reason,
            "actor": row.actor,
        }
        for row in rows
    ]


def item_json(item: OrderItem) -> ItemJson:
    return {
        "id": item.id,
        "variant_id": item.variant_id,
        "product_id": item.product_id,
        "sku": item.sku,
        "title": item.title,
        "quantity": item.quantity,
        "unit_price_cents": item.unit_price_cents,
        "line_total_cents": item.line_total_cents,
        "tax_cents": item.tax_cents,
        "refunded_quantity": item.refunded_quantity,
        "discount_cents": item.discount_cents,
    }


def vendor_order_json(vendor_order: VendorOrder, *, for_vendor: bool = False) -> VendorOrderJson:
    """With `for_vendor`, a `VendorSideOrderJson`."""
    data: dict[str, Any] = {
        "id": vendor_order.id,
        "order_id": vendor_order.order_id,
        "vendor_id": vendor_order.vendor_id,
        "vendor": {"id": vendor_order.vendor_id, "display_name": vendor_order.vendor.display_name},
        "status": vendor_order.status.value,
        "currency": vendor_order.order.currency,
        "subtotal_cents": vendor_order.subtotal_cents,
        "shipping_cents": vendor_order.shipping_cents,
        "discount_cents": vendor_order.discount_cents,
        "tax_cents": vendor_order.tax_cents,
        "shipping_tax_cents": vendor_order.shipping_tax_cents,
        "total_cents": vendor_order.total_cents,
        "platform_fee_cents": vendor_order.platform_fee_cents,
        "vendor_earnings_cents": vendor_order.vendor_earnings_cents,
        "carrier": vendor_order.carrier,
        "tracking_number": vendor_order.tracking_number,
        "cancel_reason": vendor_order.cancel_reason,
        "created_at": vendor_order.created_at.isoformat(),
        "items": [item_json(i) for i in vendor_order.items],
        "history": history_json(vendor_order.history),
    }
    if for_vendor:
        order = vendor_order.order
        data["shipping_address"] = order.shipping_address
        data["order_status"] = order.status.value
    return data  # type: ignore[return-value]


def order_json(order: Order) -> OrderJson:
    return {
        "id": order.id,
        "status": order.status.value,
        "currency": order.currency,
        "subtotal_cents": order.subtotal_cents,
        "discount_cents": order.discount_cents,
        "shipping_cents": order.shipping_cents,
        "tax_cents": order.tax_cents,
        "total_cents": order.total_cents,
        "shipping_address": order.shipping_address,
        "reservation_expires_at": order.reservation_expires_at.isoformat(),
        "payment_intent_id": order.payment_intent_id,
        "cancel_reason": order.cancel_reason,
        "created_at": order.created_at.isoformat(),
        "vendor_orders": [vendor_order_json(vo) for vo in order.vendor_orders],
        "history": history_json(order.history),
        "coupon_code": order.coupon_code,
        "vat_number": order.vat_number,
        "reverse_charge": order.reverse_charge,
        "prices_include_tax": order.prices_include_tax,
    }
