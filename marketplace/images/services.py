"""A vendor's product images: upload, alt text, order, delete.

The files are written before the row that names them is committed (a failed commit removes
them again) and removed only after the row's deletion is committed, so a committed row always
points at files that exist. Another vendor's product is reported as missing.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from marketplace.catalog.models import ProductImage
from marketplace.catalog.services import vendor_product
from marketplace.db import db, in_transaction, on_commit, transaction
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.images import processing
from marketplace.images.storage import storage

log = logging.getLogger(__name__)

MAX_IMAGES = 8
MAX_ALT = 200


class ImageNotFound(NotFound):
    code, message = "image_not_found", "Image not found."


class TooManyImages(Conflict):
    code, message = "too_many_images", f"A product has at most {MAX_IMAGES} images."


class DuplicateImage(Conflict):
    code, message = "duplicate_image", "This product already has that image."


def _check_alt(alt_text: str | None) -> str | None:
    if alt_text is None:
        return None
    alt_text = " ".join(alt_text.split())
    if len(alt_text) > MAX_ALT:
        raise ValidationFailed({"alt_text": f"must be at most {MAX_ALT} characters long"})
    return alt_text


def product_images(vendor_id: int, product_id: int) -> list[ProductImage]:
    """:raises ProductNotFound:"""
    return list(vendor_product(vendor_id, product_id).images)


def _own_image(vendor_id: int, product_id: int, image_id: int) -> ProductImage:
    product = vendor_product(vendor_id, product_id)
    for image in product.images:
        if image.id == image_id:
            return image
    raise ImageNotFound()


def _delete_files(product_id: int, sha256: str, keys: list[str]) -> None:
    """Remove an image's files, unless a committed row still names them (two identical
    uploads racing past the duplicate check share their content-hashed keys)."""
    if not in_transaction():
        db.session.rollback()  # a fresh read: only what is committed counts
    still_used = db.session.scalar(
        select(ProductImage.id).where(
            ProductImage.product_id == product_id, ProductImage.sha256 == sha256
        )
    )
    if still_used is not None:
        return
    for key in keys:
        try:
            storage().delete(key)
        except Exception:  # a leftover file costs disk space, never a wrong page
            log.warning("images: could not delete %s", key, exc_info=True)


def add_image(vendor_id: int, product_id: int, data: bytes, alt_text: str = "") -> ProductImage:
    """Check, re-encode and store an upload as the product's last image.

    :raises ProductNotFound, ValidationFailed, TooManyImages, DuplicateImage:
    """
    alt = _check_alt(alt_text) or ""
    vendor_product(vendor_id, product_id)  # a stranger's product is missing before any work
    processed = processing.process(data)
    keys = {
        str(width): f"products/{product_id}/{processed.sha256[:32]}-{width}.{processed.extension}"
        for width in processed.renditions
    }
    written: list[str] = []
    try:
        with transaction():
            product = vendor_product(vendor_id, product_id)
            if len(product.images) >= MAX_IMAGES:
                raise TooManyImages()
            duplicate = db.session.scalar(
                select(ProductImage.id).where(
                    ProductImage.product_id == product_id,
                    ProductImage.sha256 == processed.sha256,
                )
            )
            if duplicate is not None:
                raise DuplicateImage(details={"image_id": duplicate})
            for width, rendition in processed.renditions.items():
                key = keys[str(width)]
                storage().put(key, rendition.data, processed.content_type)
                written.append(key)
            image = ProductImage(
                product_id=product.id,
                position=max((i.position for i in product.images), default=-1) + 1,
                alt_text=alt,
                content_type=processed.content_type,
                sha256=processed.sha256,
                keys=keys,
                sizes={
                    str(width): [r.width, r.height] for width, r in processed.renditions.items()
                },
            )
            product.images.append(image)
            db.session.flush()
    except BaseException:
        if written:
            _delete_files(product_id, processed.sha256, written)
        raise
    return image


def update_image(
    vendor_id: int,
    product_id: int,
    image_id: int,
    *,
    alt_text: str | None = None,
    position: int | None = None,
) -> ProductImage:
    """Change an image's alt text, or move it to `position` (0 is the cover; past the end
    means last). The others keep their order.

    :raises ProductNotFound, ImageNotFound, ValidationFailed:
    """
    alt = _check_alt(alt_text)
    if position is not None and position < 0:
        raise ValidationFailed({"position": "must be 0 or more"})
    with transaction():
        image = _own_image(vendor_id, product_id, image_id)
        product = image.product
        if alt is not None:
            image.alt_text = alt
        if position is not None:
            ordered = [i for i in product.images if i.id != image.id]
            ordered.insert(min(position, len(ordered)), image)
            for index, each in enumerate(ordered):
                each.position = index
        db.session.flush()
        db.session.refresh(product, ["images"])
    return image


def delete_image(vendor_id: int, product_id: int, image_id: int) -> None:
    """Remove an image; its files go once the removal is committed.

    :raises ProductNotFound, ImageNotFound:
    """
    with transaction():
        image = _own_image(vendor_id, product_id, image_id)
        product = image.product
        product.images.remove(image)
        for index, each in enumerate(product.images):
            each.position = index
        on_commit(_delete_files, product_id, image.sha256, list(image.keys.values()))
