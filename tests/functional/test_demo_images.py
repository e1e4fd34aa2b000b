"""`demo load` gives every demo product one or two generated pictures, served like uploads."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import func, select

from marketplace.catalog.models import Product, ProductImage
from marketplace.db import db
from marketplace.images.demo import picture


def test_a_demo_picture_is_a_coloured_card_with_text() -> None:
    image = Image.open(io.BytesIO(picture("Acme Classic Kettle", "Blue", "Blue")))
    assert image.format == "JPEG" and image.size == (800, 600)
    assert image.getpixel((5, 5)) == image.getpixel((790, 5))  # plain background at the corners
    colours = image.convert("RGB").getcolors(maxcolors=100_000)
    assert colours and len(colours) > 10  # text drawn on it (anti-aliased edges)


def test_every_demo_product_has_one_or_two_pictures(runner, api, client) -> None:
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    counts = dict(
        db.session.execute(
            select(Product.id, func.count(ProductImage.id))
            .outerjoin(ProductImage, ProductImage.product_id == Product.id)
            .group_by(Product.id)
        ).all()
    )
    assert counts and set(counts.values()) == {1, 2}
    product = api.get(f"/products/{min(counts)}").get_json()
    [first, *_] = product["images"]
    assert first["alt_text"].startswith(product["title"])
    served = client.get(first["urls"]["320"])
    assert served.status_code == 200 and Image.open(io.BytesIO(served.data)).size == (320, 240)
