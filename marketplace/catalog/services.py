"""Vendors and their catalog: profiles, approval, products, variants, public listing."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager, joinedload, raiseload, selectinload

from marketplace.accounts.models import User
from marketplace.audit import services as audit
from marketplace.catalog import shipping
from marketplace.catalog.models import (
    Brand,
    Category,
    Product,
    ProductStatus,
    TaxCategory,
    Variant,
    Vendor,
    VendorStatus,
)
from marketplace.db import db, transaction
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.inventory import services as inventory
from marketplace.search import indexing as search_index
from marketplace.validation import require_range

MAX_PRICE_CENTS = 10_000_000  # per unit, in minor units ($100,000; ¥10,000,000)
MAX_STOCK = 1_000_000
MAX_WEIGHT_GRAMS = 10_000_000  # ten tonnes: more is a typo
MAX_VARIANTS = 100


class VendorNotFound(NotFound):
    code, message = "vendor_not_found", "Vendor not found."


class ProductNotFound(NotFound):
    code, message = "product_not_found", "Product not found."


class VariantNotFound(NotFound):
    code, message = "variant_not_found", "Variant not found."


class SkuTaken(Conflict):
    code, message = "sku_taken", "You already have a variant with that SKU."


class IllegalVendorTransition(Conflict):
    code, message = "illegal_transition", "The vendor cannot move to that status."


# --- vendors -------------------------------------------------------------------------------


def _require_verified_seller(vendor_id: int) -> None:
    """Selling needs a confirmed email when REQUIRE_EMAIL_VERIFICATION is on.

    :raises EmailNotVerified:
    """
    from marketplace.accounts.services import require_verified_email, verification_required

    if verification_required():
        require_verified_email(get_vendor(vendor_id).user_id)


def create_vendor_profile(user: User) -> Vendor:
    """A new `pending` vendor for a vendor account (inside the caller's transaction)."""
    vendor = Vendor(user_id=user.id, display_name=user.name, status=VendorStatus.PENDING)
    db.session.add(vendor)
    db.session.flush()
    return vendor


def vendor_for_user(user_id: int) -> Vendor:
    """:raises VendorNotFound:"""
    vendor = db.session.scalar(select(Vendor).where(Vendor.user_id == user_id))
    if vendor is None:
        raise VendorNotFound()
    return vendor


def get_vendor(vendor_id: int) -> Vendor:
    vendor = db.session.get(Vendor, vendor_id)
    if vendor is None:
        raise VendorNotFound()
    return vendor


def list_vendors(status: VendorStatus | None = None) -> list[Vendor]:
    query = select(Vendor).order_by(Vendor.id)
    if status is not None:
        query = query.where(Vendor.status == status)
    return list(db.session.scalars(query))


def vendors_page(
    status: VendorStatus | None = None, *, page: int = 1, per_page: int = 20
) -> tuple[list[Vendor], int]:
    """One page of vendors (oldest first) and how many match."""
    query = select(Vendor).options(selectinload(Vendor.user)).order_by(Vendor.id)
    if status is not None:
        query = query.where(Vendor.status == status)
    return _paginate(query, page, per_page)


_VENDOR_TRANSITIONS = {
    VendorStatus.PENDING: {VendorStatus.APPROVED, VendorStatus.SUSPENDED},
    VendorStatus.APPROVED: {VendorStatus.SUSPENDED},
    VendorStatus.SUSPENDED: {VendorStatus.APPROVED},
}


def set_vendor_status(vendor_id: int, status: VendorStatus) -> Vendor:
    """Approve or suspend a vendor (admins).

    :raises VendorNotFound, IllegalVendorTransition:
    """
    with transaction():
        vendor = get_vendor(vendor_id)
        if status not in _VENDOR_TRANSITIONS[vendor.status]:
            raise IllegalVendorTransition(
                f"A vendor that is {vendor.status.value} cannot become {status.value}.",
                details={"from": vendor.status.value, "to": status.value},
            )
        if status is VendorStatus.APPROVED and not vendor.user.active:
            # A disabled account's shop stays suspended until an admin enables the account.
            raise IllegalVendorTransition(
                "The shop's owner account is disabled; enable the account first.",
                details={"from": vendor.status.value, "to": status.value},
            )
        before = vendor.status.value
        vendor.status = status
        audit.record(
            f"vendor.{'approve' if status is VendorStatus.APPROVED else 'suspend'}",
            "vendor",
            vendor.id,
            {"status": before},
            {"status": status.value},
        )
        search_index.vendor_changed(vendor.id)
    return vendor


def set_payouts_enabled(vendor_id: int, enabled: bool) -> Vendor:
    """Record whether the vendor's connected account can receive transfers."""
    with transaction():
        vendor = get_vendor(vendor_id)
        vendor.payouts_enabled = enabled
    return vendor


def update_vendor_settings(
    vendor_id: int,
    *,
    display_name: str | None = None,
    shipping_flat_cents: int | None = None,
    free_shipping_threshold_cents: int | None = None,
    clear_free_shipping: bool = False,
) -> Vendor:
    """:raises ValidationFailed:"""
    fields: dict[str, str] = {}
    if display_name is not None and not 1 <= len(display_name.strip()) <= 120:
        fields["display_name"] = "must be 1 to 120 characters long"
    require_range(fields, "shipping_flat_cents", shipping_flat_cents, 0, MAX_PRICE_CENTS)
    require_range(
        fields, "free_shipping_threshold_cents", free_shipping_threshold_cents, 0, MAX_PRICE_CENTS
    )
    if fields:
        raise ValidationFailed(fields)
    with transaction():
        vendor = get_vendor(vendor_id)
        if display_name is not None:
            vendor.display_name = display_name.strip()
            search_index.vendor_changed(vendor.id)
        shipping_before = shipping.terms_of(vendor)
        if shipping_flat_cents is not None:
            vendor.shipping_flat_cents = shipping_flat_cents
        if free_shipping_threshold_cents is not None or clear_free_shipping:
            vendor.free_shipping_threshold_cents = free_shipping_threshold_cents
        shipping.bump_version_if_changed(vendor, shipping_before)
    return vendor


# --- categories and brands -----------------------------------------------------------------


def normalize_category_path(path: str) -> str:
    parts = [p.strip() for p in path.replace(">", "/").split("/") if p.strip()]
    return "/".join(parts)


def category_for_path(path: str) -> Category:
    """Find or create the category `A/B/C`, creating missing ancestors."""
    path = normalize_category_path(path)
    existing = db.session.scalar(select(Category).where(Category.path == path))
    if existing is not None:
        return existing
    parent: Category | None = None
    built = ""
    for name in path.split("/"):
        built = f"{built}/{name}" if built else name
        node = db.session.scalar(select(Category).where(Category.path == built))
        if node is None:
            node = Category(name=name, path=built, parent=parent)
            db.session.add(node)
            db.session.flush()
        parent = node
    assert parent is not None
    return parent


def brand_for_name(name: str) -> Brand:
    name = " ".join(name.split())
    brand = db.session.scalar(select(Brand).where(Brand.key == name.lower()))
    if brand is None:
        brand = Brand(name=name, key=name.lower())
        db.session.add(brand)
        db.session.flush()
    return brand


def list_categories() -> list[Category]:
    return list(db.session.scalars(select(Category).order_by(Category.path)))


def list_brands() -> list[Brand]:
    return list(db.session.scalars(select(Brand).order_by(Brand.key)))


# --- products ------------------------------------------------------------------------------


@dataclass
class VariantInput:
    sku: str
    price_cents: int
    stock: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    weight_grams: int = 0  # weighs the vendor's weight-tier shipping


@dataclass
class ProductInput:
    title: str
    description: str = ""
    brand: str | None = None
    category: str | None = None
    status: ProductStatus = ProductStatus.DRAFT
    variants: list[VariantInput] = field(default_factory=list)
    tax_category: TaxCategory = TaxCategory.STANDARD  # standard, reduced or exempt (tax)


def _check_text(fields: dict[str, str], name: str, value: str | None, low: int, high: int) -> None:
    if value is not None and not low <= len(value.strip()) <= high:
        fields[name] = f"must be {low} to {high} characters long"


def _check_category(fields: dict[str, str], path: str | None) -> None:
    """A category path fits its columns: at most 255 characters, each name at most 80."""
    if path is None:
        return
    path = normalize_category_path(path)
    if not 1 <= len(path) <= 255 or any(len(name) > 80 for name in path.split("/")):
        fields["category"] = (
            "must be a category name or path like 'Shoes/Running' "
            "(at most 255 characters, 80 per name)"
        )


def _check_variant(fields: dict[str, str], prefix: str, variant: VariantInput) -> None:
    _check_text(fields, f"{prefix}sku", variant.sku, 1, 64)
    require_range(fields, f"{prefix}price_cents", variant.price_cents, 1, MAX_PRICE_CENTS)
    require_range(fields, f"{prefix}stock", variant.stock, 0, MAX_STOCK)
    require_range(fields, f"{prefix}weight_grams", variant.weight_grams, 0, MAX_WEIGHT_GRAMS)
    _check_attributes(fields, f"{prefix}attributes", variant.attributes)


def _check_attributes(fields: dict[str, str], name: str, attributes: dict[str, Any]) -> None:
    if len(attributes) > 20 or any(
        not isinstance(v, str | int | float | bool) or len(str(k)) > 40 or len(str(v)) > 100
        for k, v in attributes.items()
    ):
        fields[name] = "at most 20 short name/value pairs"


def _check_product(data: ProductInput) -> None:
    fields: dict[str, str] = {}
    _check_text(fields, "title", data.title, 1, 200)
    if len(data.description) > 20_000:
        fields["description"] = "must be at most 20000 characters long"
    _check_text(fields, "brand", data.brand, 1, 80)
    _check_category(fields, data.category)
    if data.status is ProductStatus.ARCHIVED:
        fields["status"] = "a new product is draft or active"
    if not 1 <= len(data.variants) <= MAX_VARIANTS:
        fields["variants"] = f"must hold 1 to {MAX_VARIANTS} variants"
    skus = [v.sku.strip() for v in data.variants]
    for index, variant in enumerate(data.variants):
        _check_variant(fields, f"variants[{index}].", variant)
        if skus.count(variant.sku.strip()) > 1:
            fields[f"variants[{index}].sku"] = "SKUs must differ within a product"
    if fields:
        raise ValidationFailed(fields)


def _ensure_skus_free(vendor_id: int, skus: list[str]) -> None:
    taken = db.session.scalars(
        select(Variant.sku).where(Variant.vendor_id == vendor_id, Variant.sku.in_(skus))
    ).all()
    if taken:
        raise SkuTaken(details={"skus": sorted(taken)})


def create_product(vendor_id: int, data: ProductInput) -> Product:
    """:raises ValidationFailed, SkuTaken, EmailNotVerified (with REQUIRE_EMAIL_VERIFICATION):"""
    _require_verified_seller(vendor_id)
    _check_product(data)
    with transaction():
        _ensure_skus_free(vendor_id, [v.sku.strip() for v in data.variants])
        product = Product(
            vendor_id=vendor_id,
            title=data.title.strip(),
            description=data.description,
            brand=brand_for_name(data.brand) if data.brand else None,
            category=category_for_path(data.category) if data.category else None,
            status=data.status,
            tax_category=data.tax_category,
        )
        db.session.add(product)
        db.session.flush()
        for variant in data.variants:
            _add_variant(product, variant)
        search_index.product_changed(product.id)
    return product


def _add_variant(product: Product, data: VariantInput) -> Variant:
    variant = Variant(
        product=product,
        vendor_id=product.vendor_id,
        sku=data.sku.strip(),
        price_cents=data.price_cents,
        on_hand=data.stock,
        reserved=0,
        attributes=dict(data.attributes),
        weight_grams=data.weight_grams,
    )
    db.session.add(variant)
    try:
        db.session.flush()
    except IntegrityError as error:  # the same SKU was added concurrently
        if "sku" not in str(error.orig).lower():
            raise
        raise SkuTaken(details={"skus": [variant.sku]}) from None
    return variant


def add_variant(vendor_id: int, product_id: int, data: VariantInput) -> Variant:
    """:raises ProductNotFound, ValidationFailed, SkuTaken:"""
    fields: dict[str, str] = {}
    _check_variant(fields, "", data)
    if fields:
        raise ValidationFailed(fields)
    with transaction():
        product = vendor_product(vendor_id, product_id)
        if len(product.variants) >= MAX_VARIANTS:
            raise ValidationFailed({"variants": f"at most {MAX_VARIANTS} variants"})
        _ensure_skus_free(vendor_id, [data.sku.strip()])
        search_index.product_changed(product.id)
        return _add_variant(product, data)


_UNSET: Any = object()


def update_product(
    vendor_id: int,
    product_id: int,
    *,
    title: str | None = None,
    description: str | None = None,
    brand: str | None = _UNSET,
    category: str | None = _UNSET,
    status: ProductStatus | None = None,
    tax_category: TaxCategory | None = None,
) -> Product:
    """Change any of a vendor's product fields (`None` brand/category clears it).

    :raises ProductNotFound, ValidationFailed:
    """
    fields: dict[str, str] = {}
    _check_text(fields, "title", title, 1, 200)
    if description is not None and len(description) > 20_000:
        fields["description"] = "must be at most 20000 characters long"
    if brand is not _UNSET:
        _check_text(fields, "brand", brand, 1, 80)
    if category is not _UNSET:
        _check_category(fields, category)
    if fields:
        raise ValidationFailed(fields)
    with transaction():
        product = vendor_product(vendor_id, product_id)
        if title is not None:
            product.title = title.strip()
        if description is not None:
            product.description = description
        if brand is not _UNSET:
            product.brand = brand_for_name(brand) if brand else None
        if category is not _UNSET:
            product.category = category_for_path(category) if category else None
        if status is not None:
            product.status = status
        if tax_category is not None:
            product.tax_category = tax_category
        search_index.product_changed(product.id)
    return product


def update_variant(
    vendor_id: int,
    variant_id: int,
    *,
    price_cents: int | None = None,
    stock: int | None = None,
    low_stock_threshold: int | None = None,
    attributes: dict[str, Any] | None = None,
    weight_grams: int | None = None,
) -> Variant:
    """Change a variant's price, stock on hand (never below what is reserved) or attributes.

    :raises VariantNotFound, ValidationFailed, StockBelowReserved:
    """
    fields: dict[str, str] = {}
    require_range(fields, "price_cents", price_cents, 1, MAX_PRICE_CENTS)
    require_range(fields, "stock", stock, 0, MAX_STOCK)
    require_range(fields, "low_stock_threshold", low_stock_threshold, 0, MAX_STOCK)
    require_range(fields, "weight_grams", weight_grams, 0, MAX_WEIGHT_GRAMS)
    if attributes is not None:
        _check_attributes(fields, "attributes", attributes)
    if fields:
        raise ValidationFailed(fields)
    with transaction():
        variant = vendor_variant(vendor_id, variant_id)
        if price_cents is not None:
            variant.price_cents = price_cents
        if attributes is not None:
            variant.attributes = dict(attributes)
        if low_stock_threshold is not None:
            variant.low_stock_threshold = low_stock_threshold
        if weight_grams is not None:
            variant.weight_grams = weight_grams
        if stock is not None:
            db.session.flush()
            inventory.set_on_hand(variant.id, stock)
        search_index.product_changed(variant.product_id)
    return variant


def vendor_product(vendor_id: int, product_id: int) -> Product:
    """A product of this vendor; someone else's is reported as missing.

    :raises ProductNotFound:
    """
    product = db.session.get(Product, product_id)
    if product is None or product.vendor_id != vendor_id:
        raise ProductNotFound()
    return product


def vendor_variant(vendor_id: int, variant_id: int) -> Variant:
    """:raises VariantNotFound:"""
    variant = db.session.get(Variant, variant_id)
    if variant is None or variant.vendor_id != vendor_id:
        raise VariantNotFound()
    return variant


def vendor_products(
    vendor_id: int, *, page: int = 1, per_page: int = 20, status: ProductStatus | None = None
) -> tuple[list[Product], int]:
    query = (
        select(Product)
        .where(Product.vendor_id == vendor_id)
        .options(selectinload(Product.variants), selectinload(Product.images))
    )
    if status is not None:
        query = query.where(Product.status == status)
    return _paginate(query.order_by(Product.id.desc()), page, per_page)


# --- public catalog ------------------------------------------------------------------------


# Everything a product's JSON reads, loaded in the one statement that finds the product (which
# joins its vendor); anything else it would lazy-load raises instead of costing a round trip.
PRODUCT_JSON = (
    contains_eager(Product.vendor),
    joinedload(Product.variants),
    joinedload(Product.brand),
    joinedload(Product.category),
    joinedload(Product.images),
    raiseload("*", sql_only=True),
)


def _visible() -> Select[tuple[Product]]:
    return (
        select(Product)
        .join(Vendor, Vendor.id == Product.vendor_id)
        .where(Product.status == ProductStatus.ACTIVE, Vendor.status == VendorStatus.APPROVED)
    )


def public_vendor(vendor_id: int) -> Vendor:
    """An approved vendor, for its public page.

    :raises VendorNotFound: missing, pending or suspended.
    """
    vendor = db.session.get(Vendor, vendor_id)
    if vendor is None or vendor.status is not VendorStatus.APPROVED:
        raise VendorNotFound()
    return vendor


def public_vendor_products(vendor_id: int, page: int, per_page: int) -> tuple[list[Product], int]:
    """One page of a vendor's active products, newest first."""
    query = (
        _visible()
        .where(Product.vendor_id == vendor_id)
        .options(
            selectinload(Product.variants),
            selectinload(Product.brand),
            selectinload(Product.images),
        )
        .order_by(Product.id.desc())
    )
    return _paginate(query, page, per_page)


def public_product(product_id: int) -> Product:
    """An active product of an approved vendor.

    :raises ProductNotFound:
    """
    product = (
        db.session.scalars(_public_product_statement(), {"product_id": product_id})
        .unique()
        .one_or_none()
    )
    if product is None:
        raise ProductNotFound()
    return product


@functools.cache
def _public_product_statement() -> Select[tuple[Product]]:
    # Built once, with the id as a parameter: building the statement and its cache key was a
    # tenth of a product answer's CPU (py-spy, bench/run.py), paid on every request.
    return _visible().where(Product.id == bindparam("product_id")).options(*PRODUCT_JSON)


@dataclass
class CatalogFilters:
    brand: str | None = None
    category: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    min_rating: float | None = None
    in_stock: bool = False
    sort: str = "newest"
    page: int = 1
    per_page: int = 20


SORTS = ("relevance", "price_asc", "price_desc", "rating", "newest")


def browse(filters: CatalogFilters) -> tuple[list[Product], int]:
    """The public catalog filtered and sorted in SQL (full-text search lives in `search/`)."""
    price = (
        select(func.min(Variant.price_cents))
        .where(Variant.product_id == Product.id, Variant.is_active.is_(True))
        .correlate(Product)
        .scalar_subquery()
    )
    query = _visible()
    if filters.brand:
        query = query.join(Brand, Brand.id == Product.brand_id).where(
            Brand.key == " ".join(filters.brand.split()).lower()
        )
    if filters.category:
        path = normalize_category_path(filters.category)
        query = query.join(Category, Category.id == Product.category_id).where(
            or_(
                func.lower(Category.path) == path.lower(),
                Category.path.istartswith(f"{path}/", autoescape=True),
            )
        )
    if filters.min_price is not None:
        query = query.where(price >= filters.min_price)
    if filters.max_price is not None:
        query = query.where(price <= filters.max_price)
    if filters.min_rating is not None:
        query = query.where(
            Product.rating_count > 0,
            Product.rating_sum >= filters.min_rating * Product.rating_count,
        )
    if filters.in_stock:
        query = query.where(
            select(Variant.id)
            .where(
                Variant.product_id == Product.id,
                Variant.is_active.is_(True),
                Variant.on_hand > Variant.reserved,
            )
            .exists()
        )
    order = {
        "price_asc": [price.asc(), Product.id],
        "price_desc": [price.desc(), Product.id],
        "rating": [
            (Product.rating_sum * 1.0 / func.nullif(Product.rating_count, 0)).desc().nulls_last(),
            Product.id,
        ],
    }.get(filters.sort, [Product.created_at.desc(), Product.id.desc()])
    query = query.order_by(*order).options(
        selectinload(Product.variants),
        selectinload(Product.vendor),
        selectinload(Product.brand),
        selectinload(Product.category),
        selectinload(Product.images),
    )
    return _paginate(query, filters.page, filters.per_page)


def _paginate(query: Select[Any], page: int, per_page: int) -> tuple[list[Any], int]:
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).unique().all()
    return list(items), total or 0
