"""Vendor dashboard pages: status, products, variants and shop settings.

Every page needs a logged-in vendor (anonymous → login page, other roles → 403). Another
vendor's product or variant is reported as missing (404) by the catalog services.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from marketplace.accounts.models import Role
from marketplace.catalog import services as catalog
from marketplace.catalog import shipping
from marketplace.catalog.models import Product, ProductStatus, TaxCategory, Variant, Vendor
from marketplace.errors import DomainError, Forbidden, NotFound
from marketplace.extensions import login_manager
from marketplace.forms import money_input
from marketplace.inventory.services import StockBelowReserved
from marketplace.money import shop_currency
from marketplace.vendors import bp
from marketplace.vendors.forms import (
    AddVariantForm,
    EditProductForm,
    EditVariantForm,
    NewProductForm,
    ProductStatusFilter,
    SettingsForm,
    ShippingForm,
    add_domain_error,
    format_attributes,
    format_tiers,
    price_message,
)

PER_PAGE = 20


@bp.before_request
def require_vendor() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role is not Role.VENDOR:
        raise Forbidden("These pages are for vendors.")
    return None


def current_vendor() -> Vendor:
    """:raises VendorNotFound: a vendor account without a shop profile."""
    return catalog.vendor_for_user(current_user.id)


def _text_or_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


# --- dashboard and product list --------------------------------------------------------------


@bp.get("/")
def dashboard() -> Any:
    vendor = current_vendor()
    recent, total = catalog.vendor_products(vendor.id, per_page=5)
    return render_template("vendors/dashboard.html", vendor=vendor, recent=recent, total=total)


@bp.get("/products")
def products() -> Any:
    vendor = current_vendor()
    form = ProductStatusFilter(request.args)
    if not form.validate():
        return render_template(
            "vendors/products.html", vendor=vendor, form=form, products=[], total=0, pages=1
        ), 422
    page = max(1, form.page.data or 1)
    status = ProductStatus(form.status.data) if form.status.data else None
    items, total = catalog.vendor_products(vendor.id, page=page, per_page=PER_PAGE, status=status)
    return render_template(
        "vendors/products.html",
        vendor=vendor,
        form=form,
        products=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
    )


# --- create and edit products ----------------------------------------------------------------


def _product_input(form: NewProductForm) -> tuple[catalog.ProductInput, list[int]]:
    """The service input and, for each variant sent, the form row it came from."""
    rows = form.filled_rows()
    variants = [
        catalog.VariantInput(
            sku=row.sku.data or "",
            price_cents=row.price.cents or 0,
            stock=row.stock.data or 0,
            attributes=row.attributes.attributes,
        )
        for _, row in rows
    ]
    data = catalog.ProductInput(
        title=form.title.data or "",
        description=form.description.data or "",
        brand=_text_or_none(form.brand.data),
        category=_text_or_none(form.category.data),
        status=ProductStatus(form.status.data),
        variants=variants,
        tax_category=TaxCategory(form.tax_category.data),
    )
    return data, [index for index, _ in rows]


def _new_product_errors(form: NewProductForm, error: DomainError, rows: list[int]) -> int:
    """Put the service's variant errors ("variants[1].price_cents") on the right row."""
    entries = form.variants.entries
    names = {"price_cents": "price"}
    if isinstance(error, catalog.SkuTaken):
        taken = set(error.details.get("skus", []))
        for row in rows:
            sku = entries[row].form.sku
            if (sku.data or "").strip() in taken:
                sku.errors = [*sku.errors, error.message]
        form.form_errors.append(f"{error.message} ({', '.join(sorted(taken))})")
        return error.status
    if not hasattr(error, "fields"):
        return add_domain_error(form, error)
    top: dict[str, str] = {}
    for key, message in error.fields.items():
        if key.startswith("variants[") and "]." in key:
            index_text, _, name = key[len("variants[") :].partition("].")
            row = entries[rows[int(index_text)]].form
            field = row._fields.get(names.get(name, name))
            if name == "price_cents":
                message = price_message()
            if field is not None:
                field.errors = [*field.errors, message]
                continue
        top[key] = message
    for key, message in top.items():
        if key == "variants":
            form.form_errors.append(f"Variants: {message} (fill in at least one row).")
        elif key in form._fields:
            form._fields[key].errors = [*form._fields[key].errors, message]
        else:
            form.form_errors.append(f"{key}: {message}")
    return error.status


@bp.route("/products/new", methods=["GET", "POST"])
def new_product() -> Any:
    vendor = current_vendor()
    form = NewProductForm()
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("vendors/product_new.html", vendor=vendor, form=form), status
    data, rows = _product_input(form)
    try:
        product = catalog.create_product(vendor.id, data)
    except DomainError as error:
        status = _new_product_errors(form, error, rows)
        return render_template("vendors/product_new.html", vendor=vendor, form=form), status
    flash(f"Product “{product.title}” created.", "success")
    return redirect(url_for("vendors.edit_product", product_id=product.id), 303)


def _edit_page(product: Product, form: EditProductForm, variant_form: AddVariantForm) -> str:
    from marketplace.vendors.image_pages import image_forms

    return render_template(
        "vendors/product_edit.html",
        product=product,
        form=form,
        variant_form=variant_form,
        format_attributes=format_attributes,
        **image_forms(),
    )


def _product_form_data(product: Product) -> dict[str, Any]:
    return {
        "title": product.title,
        "description": product.description,
        "brand": product.brand.name if product.brand else "",
        "category": product.category.path if product.category else "",
        "status": product.status.value,
        "tax_category": product.tax_category.value,
    }


@bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"])
def edit_product(product_id: int) -> Any:
    vendor = current_vendor()
    if request.method == "GET":
        product = catalog.vendor_product(vendor.id, product_id)
        form = EditProductForm(data=_product_form_data(product))
        return _edit_page(product, form, AddVariantForm(formdata=None))
    form = EditProductForm()
    if form.validate_on_submit():
        try:
            catalog.update_product(
                vendor.id,
                product_id,
                title=form.title.data or "",
                description=form.description.data or "",
                brand=_text_or_none(form.brand.data),
                category=_text_or_none(form.category.data),
                status=ProductStatus(form.status.data),
                tax_category=TaxCategory(form.tax_category.data),
            )
        except NotFound:
            raise
        except DomainError as error:
            status = add_domain_error(form, error)
        else:
            flash("Product saved.", "success")
            return redirect(url_for("vendors.edit_product", product_id=product_id), 303)
    else:
        status = 422
    product = catalog.vendor_product(vendor.id, product_id)
    return _edit_page(product, form, AddVariantForm(formdata=None)), status


@bp.post("/products/<int:product_id>/variants")
def add_variant(product_id: int) -> Any:
    vendor = current_vendor()
    variant_form = AddVariantForm()
    if variant_form.validate_on_submit():
        try:
            variant = catalog.add_variant(
                vendor.id,
                product_id,
                catalog.VariantInput(
                    sku=variant_form.sku.data or "",
                    price_cents=variant_form.price.cents or 0,
                    stock=variant_form.stock.data or 0,
                    attributes=variant_form.attributes.attributes,
                    weight_grams=variant_form.weight_grams.data or 0,
                ),
            )
        except NotFound:
            raise
        except DomainError as error:
            status = add_domain_error(variant_form, error, {"price_cents": "price"}, money=True)
        else:
            flash(f"Variant {variant.sku} added.", "success")
            return redirect(url_for("vendors.edit_product", product_id=product_id), 303)
    else:
        status = 422
    product = catalog.vendor_product(vendor.id, product_id)
    form = EditProductForm(formdata=None, data=_product_form_data(product))
    return _edit_page(product, form, variant_form), status


# --- variants --------------------------------------------------------------------------------


def _variant_page(variant: Variant, form: EditVariantForm) -> str:
    return render_template(
        "vendors/variant_edit.html",
        variant=variant,
        product=variant.product,
        form=form,
        format_attributes=format_attributes,
    )


@bp.route("/variants/<int:variant_id>/edit", methods=["GET", "POST"])
def edit_variant(variant_id: int) -> Any:
    vendor = current_vendor()
    if request.method == "GET":
        variant = catalog.vendor_variant(vendor.id, variant_id)
        form = EditVariantForm(
            data={
                "price": money_input(variant.price_cents),
                "stock": variant.on_hand,
                "low_stock_threshold": variant.low_stock_threshold,
                "weight_grams": variant.weight_grams,
            }
        )
        return _variant_page(variant, form)
    form = EditVariantForm()
    if form.validate_on_submit():
        try:
            variant = catalog.update_variant(
                vendor.id,
                variant_id,
                price_cents=form.price.cents,
                stock=form.stock.data,
                low_stock_threshold=form.low_stock_threshold.data,
                weight_grams=form.weight_grams.data,
            )
        except NotFound:
            raise
        except StockBelowReserved as error:
            reserved = error.details.get("reserved")
            suffix = f" ({reserved} reserved right now)" if reserved is not None else ""
            form.stock.errors = [*form.stock.errors, f"{error.message}{suffix}"]
            status = error.status
        except DomainError as error:
            status = add_domain_error(form, error, {"price_cents": "price"}, money=True)
        else:
            flash(f"Variant {variant.sku} saved.", "success")
            return redirect(url_for("vendors.edit_product", product_id=variant.product_id), 303)
    else:
        status = 422
    variant = catalog.vendor_variant(vendor.id, variant_id)
    return _variant_page(variant, form), status


# --- settings --------------------------------------------------------------------------------


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Any:
    vendor = current_vendor()
    if request.method == "GET":
        form = SettingsForm(
            data={
                "display_name": vendor.display_name,
                "shipping_flat": money_input(vendor.shipping_flat_cents),
                "free_shipping_threshold": money_input(vendor.free_shipping_threshold_cents),
            }
        )
        return render_template("vendors/settings.html", vendor=vendor, form=form)
    form = SettingsForm()
    if not form.validate_on_submit():
        return render_template("vendors/settings.html", vendor=vendor, form=form), 422
    threshold = form.free_shipping_threshold.cents
    try:
        catalog.update_vendor_settings(
            vendor.id,
            display_name=form.display_name.data or "",
            shipping_flat_cents=form.shipping_flat.cents,
            free_shipping_threshold_cents=threshold,
            clear_free_shipping=threshold is None,
        )
    except DomainError as error:
        names = {
            "shipping_flat_cents": "shipping_flat",
            "free_shipping_threshold_cents": "free_shipping_threshold",
        }
        status = add_domain_error(form, error, names, money=True)
        return render_template("vendors/settings.html", vendor=vendor, form=form), status
    flash("Settings saved.", "success")
    return redirect(url_for("vendors.settings"), 303)


# --- shipping --------------------------------------------------------------------------------


def _shipping_page(vendor: Vendor, form: ShippingForm) -> str:
    terms = shipping.terms_of(vendor)
    summary = shipping.summary(terms, shop_currency())
    return render_template("vendors/shipping.html", form=form, terms=terms, summary=summary)


@bp.route("/shipping", methods=["GET", "POST"])
def shipping_page() -> Any:
    vendor = current_vendor()
    if request.method == "GET":
        terms = shipping.terms_of(vendor)
        data = terms.to_json()
        form = ShippingForm(
            data={
                "mode": terms.mode,
                "flat": money_input(terms.flat_cents),
                "additional": money_input(terms.additional_cents),
                "weight_tiers": format_tiers(list(data["weight_tiers"])),  # type: ignore[arg-type]
                "free_over": money_input(terms.free_over_cents),
                "ships_to": ", ".join(terms.ships_to),
            }
        )
        return _shipping_page(vendor, form)
    form = ShippingForm()
    if not form.validate_on_submit():
        return _shipping_page(vendor, form), 422
    try:
        tiers = form.parsed_tiers()
    except ValueError as error:
        form.weight_tiers.errors = [*form.weight_tiers.errors, str(error)]
        return _shipping_page(vendor, form), 422
    names = {
        "flat_cents": "flat",
        "additional_cents": "additional",
        "free_over_cents": "free_over",
    }
    try:
        terms = shipping.validated(
            {
                "mode": form.mode.data,
                "flat_cents": form.flat.cents or 0,
                "additional_cents": form.additional.cents or 0,
                "weight_tiers": tiers,
                "free_over_cents": form.free_over.cents,
                "ships_to": form.countries(),
            }
        )
        shipping.set_terms(vendor.id, terms)
    except DomainError as error:
        fields = getattr(error, "fields", None) or {}
        for key in list(fields):
            if key.startswith("weight_tiers"):
                names[key] = "weight_tiers"
            elif key.startswith("ships_to"):
                names[key] = "ships_to"
        status = add_domain_error(form, error, names, money=True)
        return _shipping_page(vendor, form), status
    flash("Shipping saved.", "success")
    return redirect(url_for("vendors.shipping_page"), 303)
