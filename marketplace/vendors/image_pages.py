"""Vendor image pages: the gallery section of the product edit page and its forms.

Each form posts to its own route, which calls one image service function and goes back to
the product page; a refusal (not an image, too big, too many) is shown on that page with the
service's status, and nothing is stored. Another vendor's product or image is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for

from marketplace.catalog import services as catalog
from marketplace.catalog.models import Product
from marketplace.errors import DomainError, NotFound
from marketplace.forms import add_domain_error
from marketplace.images import services as images
from marketplace.vendors import bp
from marketplace.vendors.forms import AddVariantForm, EditProductForm, format_attributes
from marketplace.vendors.image_forms import (
    ImageAltForm,
    ImageDeleteForm,
    ImageMoveForm,
    ImageUploadForm,
)
from marketplace.vendors.routes import _product_form_data, current_vendor


def image_forms(upload: ImageUploadForm | None = None) -> dict[str, Any]:
    """What the product edit page's gallery section renders (routes.py passes it along)."""
    return {
        "upload_form": upload or ImageUploadForm(formdata=None),
        "alt_form": ImageAltForm,
        "move_form": ImageMoveForm(formdata=None),
        "delete_form": ImageDeleteForm(formdata=None),
    }


def _product_page_with(product: Product, upload: ImageUploadForm) -> str:
    return render_template(
        "vendors/product_edit.html",
        product=product,
        form=EditProductForm(formdata=None, data=_product_form_data(product)),
        variant_form=AddVariantForm(formdata=None),
        format_attributes=format_attributes,
        **image_forms(upload),
    )


def _back(product_id: int) -> Any:
    return redirect(url_for("vendors.edit_product", product_id=product_id) + "#images", 303)


@bp.post("/products/<int:product_id>/images")
def upload_image(product_id: int) -> Any:
    vendor = current_vendor()
    catalog.vendor_product(vendor.id, product_id)  # 404 before the form is looked at
    form = ImageUploadForm()
    status = 422
    if form.validate_on_submit():
        try:
            images.add_image(
                vendor.id, product_id, form.file.data.read(), alt_text=form.alt_text.data or ""
            )
        except NotFound:
            raise
        except DomainError as error:
            status = add_domain_error(form, error)
        else:
            flash("Image added.", "success")
            return _back(product_id)
    return _product_page_with(catalog.vendor_product(vendor.id, product_id), form), status


@bp.post("/products/<int:product_id>/images/<int:image_id>/alt")
def image_alt(product_id: int, image_id: int) -> Any:
    form = ImageAltForm()
    if not form.validate_on_submit():
        flash("Alt text must be at most 200 characters long.", "error")
        return _back(product_id)
    images.update_image(current_vendor().id, product_id, image_id, alt_text=form.alt_text.data)
    flash("Alt text saved.", "success")
    return _back(product_id)


@bp.post("/products/<int:product_id>/images/<int:image_id>/move")
def move_image(product_id: int, image_id: int) -> Any:
    vendor = current_vendor()
    form = ImageMoveForm()
    found = images.product_images(vendor.id, product_id)
    index = next((i for i, image in enumerate(found) if image.id == image_id), None)
    if index is None:
        raise images.ImageNotFound()
    if form.validate_on_submit():
        target = max(0, index - 1) if form.direction.data == "up" else index + 1
        images.update_image(vendor.id, product_id, image_id, position=target)
        flash("Images reordered.", "success")
    return _back(product_id)


@bp.post("/products/<int:product_id>/images/<int:image_id>/delete")
def delete_image(product_id: int, image_id: int) -> Any:
    form = ImageDeleteForm()
    if form.validate_on_submit():
        images.delete_image(current_vendor().id, product_id, image_id)
        flash("Image deleted.", "success")
    return _back(product_id)
