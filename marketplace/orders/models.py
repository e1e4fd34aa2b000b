"""Orders, the per-vendor VendorOrders, their items, history and idempotency records."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.catalog.models import Product, Vendor
from marketplace.db import UTCDateTime, db, utcnow


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    PARTIALLY_FULFILLED = "partially_fulfilled"
    FULFILLED = "fulfilled"
    COMPLETED = "completed"
    PAYMENT_FAILED = "payment_failed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


class VendorOrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


_MONEY_CHECKS = (
    CheckConstraint("subtotal_cents >= 0", name="subtotal_non_negative"),
    CheckConstraint("shipping_cents >= 0", name="shipping_non_negative"),
    CheckConstraint("discount_cents >= 0", name="discount_non_negative"),
    CheckConstraint("tax_cents >= 0", name="tax_non_negative"),
    CheckConstraint(
        "total_cents = subtotal_cents + shipping_cents + tax_cents - discount_cents",
        name="total_adds_up",
    ),
)


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = _MONEY_CHECKS

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_cents: Mapped[int] = mapped_column(Integer)
    discount_cents: Mapped[int] = mapped_column(Integer, default=0)
    shipping_cents: Mapped[int] = mapped_column(Integer)
    tax_cents: Mapped[int] = mapped_column(Integer)
    total_cents: Mapped[int] = mapped_column(Integer)
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSON)
    reservation_expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    # The checkout request's id: the order's Stripe objects carry it in their metadata.
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The coupon the order was placed with (its use: marketplace.coupons CouponRedemption).
    coupon_code: Mapped[str | None] = mapped_column(String(40))
    # EU reverse charge: a business buyer's VAT number (format checked) and no VAT charged.
    vat_number: Mapped[str | None] = mapped_column(String(20))
    reverse_charge: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Placed with PRICES_INCLUDE_TAX: the unit prices shown included the tax, so the subtotal
    # and shipping are stored net of it (marketplace.orders.tax, docs/tax.md).
    prices_include_tax: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    vendor_orders: Mapped[list[VendorOrder]] = relationship(
        back_populates="order", order_by="VendorOrder.id"
    )
    items: Mapped[list[OrderItem]] = relationship(order_by="OrderItem.id", viewonly=True)
    history: Mapped[list[OrderHistory]] = relationship(
        order_by="OrderHistory.id",
        primaryjoin="and_(OrderHistory.order_id == Order.id, "
        "OrderHistory.vendor_order_id.is_(None))",
        viewonly=True,
    )


class VendorOrder(db.Model):
    """One vendor's part of an order: fulfilled, paid out and refunded on its own."""

    __tablename__ = "vendor_orders"
    __table_args__ = (
        *_MONEY_CHECKS,
        CheckConstraint(
            "platform_fee_cents + vendor_earnings_cents "
            "= subtotal_cents + shipping_cents - discount_cents",
            name="split_adds_up",
        ),
        CheckConstraint(
            "shipping_tax_cents >= 0 AND shipping_tax_cents <= tax_cents",
            name="shipping_tax_within",
        ),
        UniqueConstraint("order_id", "vendor_id", name="uq_vendor_orders_order_vendor"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    status: Mapped[VendorOrderStatus] = mapped_column(_enum(VendorOrderStatus), index=True)
    subtotal_cents: Mapped[int] = mapped_column(Integer)
    shipping_cents: Mapped[int] = mapped_column(Integer)
    discount_cents: Mapped[int] = mapped_column(Integer, default=0)
    tax_cents: Mapped[int] = mapped_column(Integer)
    shipping_tax_cents: Mapped[int] = mapped_column(Integer, default=0)  # part of tax_cents
    total_cents: Mapped[int] = mapped_column(Integer)
    platform_fee_cents: Mapped[int] = mapped_column(Integer)
    vendor_earnings_cents: Mapped[int] = mapped_column(Integer)
    carrier: Mapped[str | None] = mapped_column(String(60))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    order: Mapped[Order] = relationship(back_populates="vendor_orders")
    vendor: Mapped[Vendor] = relationship()
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="vendor_order", order_by="OrderItem.id"
    )
    history: Mapped[list[OrderHistory]] = relationship(
        order_by="OrderHistory.id", back_populates="vendor_order"
    )


class OrderItem(db.Model):
    """A line with title, SKU and price snapshots taken at checkout."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint(
            "refunded_quantity >= 0 AND refunded_quantity <= quantity", name="refund_within"
        ),
        CheckConstraint("line_total_cents = quantity * unit_price_cents", name="line_adds_up"),
        CheckConstraint(
            "discount_cents >= 0 AND discount_cents <= line_total_cents", name="discount_within"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    vendor_order_id: Mapped[int] = mapped_column(ForeignKey("vendor_orders.id"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    line_total_cents: Mapped[int] = mapped_column(Integer)
    tax_cents: Mapped[int] = mapped_column(Integer, default=0)
    commission_bps: Mapped[int] = mapped_column(Integer)
    platform_fee_cents: Mapped[int] = mapped_column(Integer)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)
    # This line's part of the order's coupon discount (tax and commission are on the rest).
    discount_cents: Mapped[int] = mapped_column(Integer, default=0)

    vendor_order: Mapped[VendorOrder] = relationship(back_populates="items")
    # The product as it is now (its pictures for the line); the snapshots above are the order's.
    product: Mapped[Product] = relationship(viewonly=True)


class OrderHistory(db.Model):
    """Append-only: one row per state transition of an Order or a VendorOrder."""

    __tablename__ = "order_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    vendor_order_id: Mapped[int | None] = mapped_column(ForeignKey("vendor_orders.id"))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    vendor_order: Mapped[VendorOrder | None] = relationship(back_populates="history")


class IdempotencyRecord(db.Model):
    """A checkout's Idempotency-Key, committed together with the order it created."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_user_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class TaxRate(db.Model):
    """Sales tax / VAT by destination; `region` NULL is the country-wide rate.

    `rate_bps` is the standard rate; `reduced_rate_bps` the rate for products of the reduced
    tax category (NULL: the destination has none, so they pay the standard rate);
    `shipping_taxed` whether shipping is taxed too (at the standard rate).
    """

    __tablename__ = "tax_rates"
    __table_args__ = (
        UniqueConstraint("country", "region", name="uq_tax_rates_country_region"),
        CheckConstraint("rate_bps >= 0 AND rate_bps <= 5000", name="rate_range"),
        CheckConstraint(
            "reduced_rate_bps IS NULL OR (reduced_rate_bps >= 0 AND reduced_rate_bps <= 5000)",
            name="reduced_rate_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(40))
    rate_bps: Mapped[int] = mapped_column(Integer)
    reduced_rate_bps: Mapped[int | None] = mapped_column(Integer)
    shipping_taxed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    note: Mapped[str | None] = mapped_column(Text)


class ReturnStatus(enum.StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class ReturnRequest(db.Model):
    """A buyer asks to send back units of a delivered item; the vendor accepts or declines."""

    __tablename__ = "return_requests"
    __table_args__ = (CheckConstraint("quantity >= 1", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_item_id: Mapped[int] = mapped_column(ForeignKey("order_items.id"), index=True)
    vendor_order_id: Mapped[int] = mapped_column(ForeignKey("vendor_orders.id"), index=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[ReturnStatus] = mapped_column(_enum(ReturnStatus), index=True)
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    restock: Mapped[bool] = mapped_column(default=False)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    vendor_order: Mapped[VendorOrder] = relationship()
    item: Mapped[OrderItem] = relationship()


class PlatformSettings(db.Model):
    """A single row (id 1) holding platform-wide settings."""

    __tablename__ = "platform_settings"
    __table_args__ = (
        CheckConstraint(
            "default_commission_bps >= 0 AND default_commission_bps <= 10000",
            name="commission_range",
        ),
        CheckConstraint(
            "dispute_recovery IN ('platform_absorbs', 'reverse_vendor_share')",
            name="dispute_recovery_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    default_commission_bps: Mapped[int] = mapped_column(Integer)
    # Who carries a dispute: `platform_absorbs`, or `reverse_vendor_share` (the vendors' shares
    # of the disputed amount are taken back from their transfers while the bank decides).
    dispute_recovery: Mapped[str] = mapped_column(
        String(32), default="platform_absorbs", server_default="platform_absorbs"
    )
