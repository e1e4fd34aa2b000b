"""Commission, resolved per line when an order is priced (and kept on the item): vendor
override → category override (nearest ancestor) → platform default."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import ColumnElement, Integer, bindparam, func, select

from marketplace.audit import services as audit
from marketplace.catalog.models import Category, Vendor
from marketplace.catalog.services import get_vendor, normalize_category_path
from marketplace.db import db, transaction
from marketplace.errors import NotFound, ValidationFailed
from marketplace.orders.models import PlatformSettings

MAX_BPS = 10_000


def _settings() -> PlatformSettings:
    settings = db.session.get(PlatformSettings, 1)
    if settings is None:
        settings = PlatformSettings(
            id=1, default_commission_bps=current_app.config["DEFAULT_COMMISSION_BPS"]
        )
        db.session.add(settings)
        db.session.flush()
    return settings


def settings_row() -> PlatformSettings:
    """The platform's settings row, created with the defaults (inside the caller's
    transaction) if it does not exist yet."""
    return _settings()


def default_bps() -> int:
    settings = db.session.get(PlatformSettings, 1)
    if settings is None:
        return int(current_app.config["DEFAULT_COMMISSION_BPS"])
    return settings.default_commission_bps


def default_bps_column() -> ColumnElement[int]:
    """`default_bps()` as a column, for reading it in the same statement as other figures; the
    configured fallback is the parameter `default_commission_bps` (`default_bps_params`)."""
    return func.coalesce(
        select(PlatformSettings.default_commission_bps)
        .where(PlatformSettings.id == 1)
        .scalar_subquery(),
        bindparam("default_commission_bps", type_=Integer),
    )


def default_bps_params() -> dict[str, int]:
    return {"default_commission_bps": int(current_app.config["DEFAULT_COMMISSION_BPS"])}


def _check_bps(bps: int | None, field: str) -> None:
    if bps is not None and not 0 <= bps <= MAX_BPS:
        raise ValidationFailed({field: f"must be between 0 and {MAX_BPS}"})


def set_default_bps(bps: int) -> int:
    """:raises ValidationFailed:"""
    _check_bps(bps, "default_bps")
    with transaction():
        row = _settings()
        before = row.default_commission_bps
        row.default_commission_bps = bps
        audit.record("commission.platform", "platform", "commission", {"bps": before}, {"bps": bps})
    return bps


def set_vendor_bps(vendor_id: int, bps: int | None) -> Vendor:
    """`None` clears the override. :raises ValidationFailed, VendorNotFound:"""
    _check_bps(bps, "bps")
    with transaction():
        vendor = get_vendor(vendor_id)
        before = vendor.commission_bps
        vendor.commission_bps = bps
        audit.record("commission.vendor", "vendor", vendor.id, {"bps": before}, {"bps": bps})
    return vendor


class CategoryNotFound(NotFound):
    code, message = "category_not_found", "Category not found."


def set_category_bps(name: str, bps: int | None) -> Category:
    """`name` is a category path ('Clothing' or 'Clothing/Tops'). :raises CategoryNotFound:"""
    _check_bps(bps, "bps")
    path = normalize_category_path(name)
    with transaction():
        category = db.session.scalar(
            select(Category).where(func.lower(Category.path) == path.lower())
        )
        if category is None:
            raise CategoryNotFound()
        before = category.commission_bps
        category.commission_bps = bps
        audit.record(
            "commission.category", "category", category.path, {"bps": before}, {"bps": bps}
        )
    return category


def resolve_bps(vendor: Vendor, category: Category | None, platform_bps: int) -> int:
    """The commission for one line: the vendor's, else its category's (or nearest ancestor's)."""
    if vendor.commission_bps is not None:
        return vendor.commission_bps
    node = category
    while node is not None:
        if node.commission_bps is not None:
            return node.commission_bps
        node = node.parent
    return platform_bps
