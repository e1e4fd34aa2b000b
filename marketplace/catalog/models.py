"""Catalog models. Stock columns live here but only `inventory/` moves them."""

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
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from typing_extensions import TypedDict

from marketplace.accounts.models import User
from marketplace.db import UTCDateTime, db, utcnow
from marketplace.money import shop_currency


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class VendorStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    SUSPENDED = "suspended"


class ProductStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class VendorJson(TypedDict):
    id: int
    display_name: str
    status: VendorStatus
    stripe_account_id: str | None
    payouts_enabled: bool
    commission_bps: int | None
    email: str
    shipping_flat_cents: int
    free_shipping_threshold_cents: int | None


class VendorRefJson(TypedDict):
    id: int
    display_name: str


class VariantJson(TypedDict):
    id: int
    product_id: int
    sku: str
    price_cents: int
    currency: str
    available: int
    attributes: dict[str, str | int | float | bool]


class VendorVariantJson(VariantJson):
    """The vendor's view of a variant adds its stock."""

    on_hand: int
    reserved: int
    weight_grams: int


class ImageJson(TypedDict):
    id: int
    position: int
    alt_text: str
    content_type: str
    urls: dict[str, str]
    sizes: dict[str, list[int]]


class ImagesJson(TypedDict):
    items: list[ImageJson]


class ProductJson(TypedDict):
    id: int
    vendor_id: int
    vendor: VendorRefJson
    title: str
    description: str
    brand: str | None
    category: str | None
    status: ProductStatus
    tax_category: TaxCategory
    rating: float | None
    rating_count: int
    price_cents: int | None
    in_stock: bool
    created_at: str
    variants: list[VariantJson]
    images: list[ImageJson]


class VendorProductJson(ProductJson):
    """The vendor's view of a product: its variants with their stock."""

    variants: list[VendorVariantJson]  # type: ignore[misc]


class Vendor(db.Model):
    __tablename__ = "vendors"
    __table_args__ = (
        CheckConstraint(
            "commission_bps IS NULL OR (commission_bps >= 0 AND commission_bps <= 10000)",
            name="commission_range",
        ),
        CheckConstraint("shipping_flat_cents >= 0", name="shipping_non_negative"),
        CheckConstraint("shipping_additional_cents >= 0", name="shipping_additional_non_negative"),
        CheckConstraint("shipping_version >= 1", name="shipping_version_positive"),
        CheckConstraint(
            "shipping_mode IN ('flat_per_order', 'per_item', 'weight_tiers')",
            name="shipping_mode_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    status: Mapped[VendorStatus] = mapped_column(_enum(VendorStatus), default=VendorStatus.PENDING)
    stripe_account_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the `account.updated` event last applied happened at Stripe: older ones are ignored.
    stripe_account_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    commission_bps: Mapped[int | None] = mapped_column(Integer)
    shipping_flat_cents: Mapped[int] = mapped_column(Integer, default=0)
    free_shipping_threshold_cents: Mapped[int | None] = mapped_column(Integer)
    # The rest of its shipping terms (marketplace/catalog/shipping.py): how the fee is worked
    # out, the weight tiers, where it ships; `shipping_version` goes up on every change, and
    # the cart remembers the version (and terms) each line was added under.
    shipping_mode: Mapped[str] = mapped_column(String(16), default="flat_per_order")
    shipping_additional_cents: Mapped[int] = mapped_column(Integer, default=0)
    shipping_weight_tiers: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    ships_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    shipping_version: Mapped[int] = mapped_column(Integer, default=1)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()

    @property
    def is_selling(self) -> bool:
        return self.status is VendorStatus.APPROVED

    @property
    def rating(self) -> float | None:
        """The mean of its reviews' ratings (None before the first)."""
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None

    def to_dict(self) -> VendorJson:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "status": self.status.value,
            "stripe_account_id": self.stripe_account_id,
            "payouts_enabled": self.payouts_enabled,
            "commission_bps": self.commission_bps,
            "email": self.user.email,
            "shipping_flat_cents": self.shipping_flat_cents,
            "free_shipping_threshold_cents": self.free_shipping_threshold_cents,
        }


class Category(db.Model):
    """A node of the category tree; `path` is the full 'Parent/Child' name, unique."""

    __tablename__ = "categories"
    __table_args__ = (
        CheckConstraint(
            "commission_bps IS NULL OR (commission_bps >= 0 AND commission_bps <= 10000)",
            name="commission_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    path: Mapped[str] = mapped_column(String(255), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    commission_bps: Mapped[int | None] = mapped_column(Integer)

    parent: Mapped[Category | None] = relationship(remote_side=[id])


class Brand(db.Model):
    __tablename__ = "brands"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    # Lower-cased name: brands are matched without regard to case.
    key: Mapped[str] = mapped_column(String(80), unique=True)


class TaxCategory(enum.StrEnum):
    """How a product is taxed: the destination's standard rate, its reduced rate (food, books
    and the like, where the destination has one) or none at all."""

    STANDARD = "standard"
    REDUCED = "reduced"
    EXEMPT = "exempt"


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint(
            "tax_category IN ('standard', 'reduced', 'exempt')", name="tax_category_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), index=True)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), index=True)
    status: Mapped[ProductStatus] = mapped_column(
        _enum(ProductStatus), default=ProductStatus.DRAFT, index=True
    )
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    tax_category: Mapped[TaxCategory] = mapped_column(
        _enum(TaxCategory), default=TaxCategory.STANDARD, server_default="standard"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    vendor: Mapped[Vendor] = relationship()
    brand: Mapped[Brand | None] = relationship()
    category: Mapped[Category | None] = relationship()
    variants: Mapped[list[Variant]] = relationship(
        back_populates="product", order_by="Variant.id", cascade="all, delete-orphan"
    )
    # Gallery order: the first image is the product's cover (cards, cart and order lines).
    images: Mapped[list[ProductImage]] = relationship(
        back_populates="product",
        order_by="(ProductImage.position, ProductImage.id)",
        cascade="all, delete-orphan",
    )

    @property
    def cover(self) -> ProductImage | None:
        return self.images[0] if self.images else None

    @property
    def rating(self) -> float | None:
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None

    @property
    def price_cents(self) -> int | None:
        prices = [v.price_cents for v in self.variants if v.is_active]
        return min(prices) if prices else None

    @property
    def in_stock(self) -> bool:
        return any(v.available > 0 for v in self.variants if v.is_active)

    def to_dict(self, *, with_stock: bool = False) -> ProductJson:
        """With `with_stock`, a `VendorProductJson`."""
        return {
            "id": self.id,
            "vendor_id": self.vendor_id,
            "vendor": {"id": self.vendor_id, "display_name": self.vendor.display_name},
            "title": self.title,
            "description": self.description,
            "brand": self.brand.name if self.brand else None,
            "category": self.category.path if self.category else None,
            "status": self.status.value,
            "tax_category": self.tax_category.value,
            "rating": self.rating,
            "rating_count": self.rating_count,
            "price_cents": self.price_cents,
            "in_stock": self.in_stock,
            "created_at": self.created_at.isoformat(),
            "variants": [v.to_dict(with_stock=with_stock) for v in self.variants if v.is_active],
            "images": [image.to_dict() for image in self.images],
        }


class Variant(db.Model):
    """A sellable SKU. `reserved` is held for unpaid checkouts; available = on_hand − reserved."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_non_negative"),
        CheckConstraint("on_hand >= 0", name="on_hand_non_negative"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
        CheckConstraint("weight_grams >= 0", name="weight_non_negative"),
        UniqueConstraint("vendor_id", "sku", name="uq_variants_vendor_sku"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    # Denormalised from the product so SKUs are unique per vendor.
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"))
    sku: Mapped[str] = mapped_column(String(64))
    price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default=shop_currency)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=5)
    weight_grams: Mapped[int] = mapped_column(Integer, default=0)  # weighs shipping tiers
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    product: Mapped[Product] = relationship(back_populates="variants")

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def to_dict(self, *, with_stock: bool = False) -> VariantJson:
        """With `with_stock`, a `VendorVariantJson`."""
        data: dict[str, Any] = {
            "id": self.id,
            "product_id": self.product_id,
            "sku": self.sku,
            "price_cents": self.price_cents,
            "currency": self.currency,
            "available": self.available,
            "attributes": self.attributes or {},
        }
        if with_stock:
            data["on_hand"] = self.on_hand
            data["reserved"] = self.reserved
            data["weight_grams"] = self.weight_grams
        return data  # type: ignore[return-value]


MEDIA_URL_PREFIX = "/media/"


class ProductImage(db.Model):
    """One picture of a product, stored re-encoded in two widths (marketplace/images).

    `keys` maps each width ("320", "800") to its storage key, `sizes` to its [width, height];
    keys are content-hashed, so a stored file never changes and is served as immutable.
    """

    __tablename__ = "product_images"
    __table_args__ = (CheckConstraint("position >= 0", name="position_non_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    alt_text: Mapped[str] = mapped_column(String(200), default="")
    content_type: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    keys: Mapped[dict[str, str]] = mapped_column(JSON)
    sizes: Mapped[dict[str, list[int]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    product: Mapped[Product] = relationship(back_populates="images")

    def url(self, width: str) -> str:
        """Where the browser fetches this width (served by marketplace/images/serving.py)."""
        return MEDIA_URL_PREFIX + self.keys[width]

    def to_dict(self) -> ImageJson:
        return {
            "id": self.id,
            "position": self.position,
            "alt_text": self.alt_text,
            "content_type": self.content_type,
            "urls": {width: self.url(width) for width in sorted(self.keys, key=int)},
            "sizes": {width: self.sizes[width] for width in sorted(self.sizes, key=int)},
        }
