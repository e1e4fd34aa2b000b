"""The vendor's own profile and catalog. Someone else's objects are always 404."""

from __future__ import annotations

from typing import Any, Literal

from flask import jsonify, request
from pydantic import Field

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import (
    body,
    current_vendor,
    page_of,
    pagination,
    reject_nulls,
    require,
)
from marketplace.catalog import services as catalog
from marketplace.catalog import shipping
from marketplace.catalog.models import ProductStatus, TaxCategory, Vendor, VendorJson
from marketplace.errors import ValidationFailed
from marketplace.images import services as images
from marketplace.money import shop_currency
from marketplace.validation import Body

JsonScalar = str | int | float | bool


class VariantBody(Body):
    sku: str
    price_cents: int
    stock: int = 0
    attributes: dict[str, JsonScalar] = Field(default_factory=dict)
    weight_grams: int = 0

    def to_input(self) -> catalog.VariantInput:
        return catalog.VariantInput(
            sku=self.sku,
            price_cents=self.price_cents,
            stock=self.stock,
            attributes=self.attributes,
            weight_grams=self.weight_grams,
        )


class ProductBody(Body):
    title: str
    description: str = ""
    brand: str | None = None
    category: str | None = None
    status: Literal["draft", "active"] = "draft"
    variants: list[VariantBody]
    tax_category: Literal["standard", "reduced", "exempt"] = "standard"


class ProductPatch(Body):
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    category: str | None = None
    status: Literal["draft", "active", "archived"] | None = None
    tax_category: Literal["standard", "reduced", "exempt"] | None = None


class VariantPatch(Body):
    price_cents: int | None = None
    stock: int | None = None
    low_stock_threshold: int | None = None
    weight_grams: int | None = None


class WeightTierBody(Body):
    up_to_grams: int
    cents: int


class ShippingRulesBody(Body):
    """The vendor's whole shipping terms (docs/shipping.md); what is left out takes its
    default (flat_per_order, 0, no tiers, no free-over threshold, ships everywhere)."""

    mode: Literal["flat_per_order", "per_item", "weight_tiers"] = "flat_per_order"
    flat_cents: int = 0
    additional_cents: int = 0
    weight_tiers: list[WeightTierBody] = Field(default_factory=list)
    free_over_cents: int | None = None
    ships_to: list[str] = Field(default_factory=list)


class ShippingRulesJson(shipping.ShippingTermsJson):
    summary: str  # the terms in words, as buyers see them


def shipping_rules_json(terms: shipping.ShippingTerms) -> ShippingRulesJson:
    return {**terms.to_json(), "summary": shipping.summary(terms, shop_currency())}  # type: ignore[typeddict-item]


@bp.get("/vendor/shipping-rules")
@require(Role.VENDOR)
def get_shipping_rules() -> Any:
    return jsonify(shipping_rules_json(shipping.terms_of(current_vendor())))


@bp.put("/vendor/shipping-rules")
@require(Role.VENDOR)
def put_shipping_rules() -> Any:
    data = body(ShippingRulesBody)
    terms = shipping.validated(data.model_dump())
    return jsonify(shipping_rules_json(shipping.set_terms(current_vendor().id, terms)))


class VendorSettingsPatch(Body):
    display_name: str | None = None
    shipping_flat_cents: int | None = None
    free_shipping_threshold_cents: int | None = None


def vendor_json(vendor: Vendor) -> VendorJson:
    data = vendor.to_dict()
    data["commission_bps"] = vendor.commission_bps
    return data


@bp.get("/vendor")
@require(Role.VENDOR)
def get_vendor() -> Any:
    return jsonify(vendor_json(current_vendor()))


@bp.patch("/vendor")
@require(Role.VENDOR)
def patch_vendor() -> Any:
    data = body(VendorSettingsPatch)
    reject_nulls(data, "display_name", "shipping_flat_cents")
    sent = data.model_fields_set
    vendor = catalog.update_vendor_settings(
        current_vendor().id,
        display_name=data.display_name,
        shipping_flat_cents=data.shipping_flat_cents,
        free_shipping_threshold_cents=data.free_shipping_threshold_cents,
        clear_free_shipping="free_shipping_threshold_cents" in sent
        and data.free_shipping_threshold_cents is None,
    )
    return jsonify(vendor_json(vendor))


@bp.get("/vendor/products")
@require(Role.VENDOR)
def list_vendor_products() -> Any:
    page, per_page = pagination()
    status_arg = request.args.get("status")
    status = None
    if status_arg:
        if status_arg not in {s.value for s in ProductStatus}:
            raise ValidationFailed({"status": "must be draft, active or archived"})
        status = ProductStatus(status_arg)
    products, total = catalog.vendor_products(
        current_vendor().id, page=page, per_page=per_page, status=status
    )
    return jsonify(page_of([p.to_dict(with_stock=True) for p in products], total, page, per_page))


@bp.post("/vendor/products")
@require(Role.VENDOR)
def create_product() -> Any:
    data = body(ProductBody)
    product = catalog.create_product(
        current_vendor().id,
        catalog.ProductInput(
            title=data.title,
            description=data.description,
            brand=data.brand,
            category=data.category,
            status=ProductStatus(data.status),
            variants=[v.to_input() for v in data.variants],
            tax_category=TaxCategory(data.tax_category),
        ),
    )
    return jsonify(product.to_dict(with_stock=True)), 201


@bp.get("/vendor/products/<int:product_id>")
@require(Role.VENDOR)
def get_vendor_product(product_id: int) -> Any:
    product = catalog.vendor_product(current_vendor().id, product_id)
    return jsonify(product.to_dict(with_stock=True))


@bp.patch("/vendor/products/<int:product_id>")
@require(Role.VENDOR)
def patch_product(product_id: int) -> Any:
    data = body(ProductPatch)
    reject_nulls(data, "title", "description", "status", "tax_category")
    sent = data.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(data, name) for name in ("title", "description") if name in sent
    }
    for name in ("brand", "category"):
        if name in sent:
            changes[name] = getattr(data, name)
    if "status" in sent and data.status is not None:
        changes["status"] = ProductStatus(data.status)
    if data.tax_category is not None:
        changes["tax_category"] = TaxCategory(data.tax_category)
    product = catalog.update_product(current_vendor().id, product_id, **changes)
    return jsonify(product.to_dict(with_stock=True))


@bp.post("/vendor/products/<int:product_id>/variants")
@require(Role.VENDOR)
def add_variant(product_id: int) -> Any:
    data = body(VariantBody)
    variant = catalog.add_variant(current_vendor().id, product_id, data.to_input())
    return jsonify(variant.to_dict(with_stock=True)), 201


@bp.patch("/vendor/variants/<int:variant_id>")
@require(Role.VENDOR)
def patch_variant(variant_id: int) -> Any:
    data = body(VariantPatch)
    reject_nulls(data, "price_cents", "stock", "low_stock_threshold", "weight_grams")
    variant = catalog.update_variant(
        current_vendor().id,
        variant_id,
        price_cents=data.price_cents,
        stock=data.stock,
        low_stock_threshold=data.low_stock_threshold,
        weight_grams=data.weight_grams,
    )
    return jsonify(variant.to_dict(with_stock=True))


# --- product images (marketplace/images) -----------------------------------------------------


class ImagePatch(Body):
    alt_text: str | None = None
    position: int | None = None


def _uploaded_bytes() -> bytes:
    """The multipart `file` part's bytes.

    :raises ValidationFailed: no `file` part.
    """
    upload = request.files.get("file")
    if upload is None:
        raise ValidationFailed({"file": "send the image as the multipart form field 'file'"})
    return upload.read()


@bp.get("/vendor/products/<int:product_id>/images")
@require(Role.VENDOR)
def list_product_images(product_id: int) -> Any:
    found = images.product_images(current_vendor().id, product_id)
    return jsonify({"items": [image.to_dict() for image in found]})


@bp.post("/vendor/products/<int:product_id>/images")
@require(Role.VENDOR)
def upload_product_image(product_id: int) -> Any:
    image = images.add_image(
        current_vendor().id,
        product_id,
        _uploaded_bytes(),
        alt_text=request.form.get("alt_text", ""),
    )
    return jsonify(image.to_dict()), 201


@bp.patch("/vendor/products/<int:product_id>/images/<int:image_id>")
@require(Role.VENDOR)
def patch_product_image(product_id: int, image_id: int) -> Any:
    data = body(ImagePatch)
    reject_nulls(data, "alt_text", "position")
    image = images.update_image(
        current_vendor().id,
        product_id,
        image_id,
        alt_text=data.alt_text,
        position=data.position,
    )
    return jsonify(image.to_dict())


@bp.delete("/vendor/products/<int:product_id>/images/<int:image_id>")
@require(Role.VENDOR)
def delete_product_image(product_id: int, image_id: int) -> Any:
    images.delete_image(current_vendor().id, product_id, image_id)
    return "", 204
