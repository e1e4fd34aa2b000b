"""Orders as API.md's JSON: the same shapes for the buyer's and the vendor's views."""

from __future__ import annotations

from typing import Any

from marketplace.orders.models import Order, OrderHistory, OrderItem, VendorOrder


def history_json(rows: list[OrderHistory]) -> list[dict[str, Any]]:
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


def item_json(item: OrderItem) -> dict[str, Any]:
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
    }


def vendor_order_json(vendor_order: VendorOrder, *, for_vendor: bool = False) -> dict[str, Any]:
    data = {
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
    return data


def order_json(order: Order) -> dict[str, Any]:
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
    }
