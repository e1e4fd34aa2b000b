"""Coupons and their redemptions (one row per use: an order placed with the code)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import UTCDateTime, db, utcnow


class CouponKind(enum.StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


class CouponScope(enum.StrEnum):
    CART = "cart"  # every line (a vendor's coupon: every line of that vendor)
    VENDOR = "vendor"  # one vendor's lines (platform coupons; a vendor's own coupon is that)
    CATEGORIES = "categories"  # lines whose product is in one of these categories or below
    PRODUCTS = "products"  # lines of these products


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Coupon(db.Model):
    """A discount code. `vendor_id` NULL: the platform's coupon (its commission pays);
    otherwise that vendor's (only its lines, commission taken on the discounted amount)."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'percent' AND percent_bps BETWEEN 1 AND 10000 AND amount_cents IS NULL)"
            " OR (kind = 'fixed' AND amount_cents > 0 AND percent_bps IS NULL)",
            name="value_by_kind",
        ),
        CheckConstraint("min_order_cents >= 0", name="min_order_non_negative"),
        CheckConstraint("max_uses IS NULL OR max_uses >= 1", name="max_uses_positive"),
        CheckConstraint(
            "max_uses_per_buyer IS NULL OR max_uses_per_buyer >= 1",
            name="max_uses_per_buyer_positive",
        ),
        # Not `uses_count <= max_uses`: an expired order paid late takes its use back anyway.
        CheckConstraint("uses_count >= 0", name="uses_non_negative"),
        CheckConstraint(
            "ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at", name="window"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Upper-cased: codes are matched without regard to case.
    code: Mapped[str] = mapped_column(String(40), unique=True)
    vendor_id: Mapped[int | None] = mapped_column(ForeignKey("vendors.id"), index=True)
    kind: Mapped[CouponKind] = mapped_column(_enum(CouponKind))
    percent_bps: Mapped[int | None] = mapped_column(Integer)
    amount_cents: Mapped[int | None] = mapped_column(Integer)
    min_order_cents: Mapped[int] = mapped_column(Integer, default=0)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    max_uses_per_buyer: Mapped[int | None] = mapped_column(Integer)
    # Redemptions held now (placed orders, less those cancelled unpaid): the limit's counter,
    # moved only by a conditional UPDATE, so concurrent checkouts cannot pass it.
    uses_count: Mapped[int] = mapped_column(Integer, default=0)
    scope: Mapped[CouponScope] = mapped_column(_enum(CouponScope), default=CouponScope.CART)
    # The vendor id (scope vendor), category ids or product ids the coupon applies to.
    scope_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    # Deleted coupons keep their row (redemptions point at it) and their code.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def to_audit(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "kind": self.kind.value,
            "percent_bps": self.percent_bps,
            "amount_cents": self.amount_cents,
            "min_order_cents": self.min_order_cents,
            "starts_at": self.starts_at.isoformat() if self.starts_at else None,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "max_uses": self.max_uses,
            "max_uses_per_buyer": self.max_uses_per_buyer,
            "scope": self.scope.value,
            "scope_ids": list(self.scope_ids or []),
            "active": self.active,
        }


class CouponRedemption(db.Model):
    """One use of a coupon: the order placed with it. Deleted when that order ends unpaid."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (CheckConstraint("discount_cents >= 0", name="discount_non_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    discount_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
