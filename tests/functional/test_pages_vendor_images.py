"""The product edit page's images section, driven through the forms it renders: upload,
alt text, reorder, delete; refusals shown on the page with nothing stored; and the pictures
on the storefront (cards, product page, seller page, cart) with a placeholder when none."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from marketplace.cart import services as carts
from marketplace.catalog.models import ProductImage
from marketplace.db import db
from tests.helpers import (
    VendorAccount,
    forms_in,
    login,
    make_buyer,
    make_product,
    make_vendor,
    page_app,
    submit,
)
from tests.image_files import image_bytes, noise_png


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


@pytest.fixture
def seller(web: FlaskClient) -> VendorAccount:
    account = make_vendor("Seller")
    assert login(web, account.user.email).status_code == 302
    return account


def _images(product_id: int) -> list[ProductImage]:
    db.session.rollback()  # end the read snapshot: see what the requests committed
    return list(
        db.session.scalars(
            select(ProductImage)
            .where(ProductImage.product_id == product_id)
            .order_by(ProductImage.position)
        )
    )


def _files(app: Flask) -> int:
    return sum(1 for p in Path(app.config["IMAGE_UPLOAD_DIR"]).rglob("*") if p.is_file())


def _edit_page(web: FlaskClient, product_id: int) -> Any:
    page = web.get(f"/vendor/products/{product_id}/edit")
    assert page.status_code == 200
    return page


def _file(data: bytes, name: str) -> tuple[io.BytesIO, str]:
    return (io.BytesIO(data), name)


def test_the_upload_form_sends_files(web: FlaskClient, seller: VendorAccount) -> None:
    product = make_product(seller)
    html = _edit_page(web, product.id).get_data(as_text=True)
    action = f"/vendor/products/{product.id}/images"
    form = re.search(rf'<form[^>]*action="{action}"[^>]*>', html)
    assert form and 'enctype="multipart/form-data"' in form.group(0)
    assert 'type="file"' in html and 'accept="image/jpeg,image/png,image/webp"' in html
    assert "No images yet" in html


def test_upload_through_the_page_shows_it_everywhere(
    web: FlaskClient, app: Flask, seller: VendorAccount
) -> None:
    product = make_product(seller, title="Blue Teapot")
    bare = make_product(seller, title="Bare Teapot")
    action = f"/vendor/products/{product.id}/images"
    sent = submit(
        web,
        _edit_page(web, product.id),
        action,
        file=_file(image_bytes("PNG", (1000, 750)), "teapot.jpg"),
        alt_text="A blue teapot",
    )
    assert sent.status_code == 303
    assert sent.headers["Location"].endswith(f"/vendor/products/{product.id}/edit#images")
    [image] = _images(product.id)
    assert image.content_type == "image/png" and image.alt_text == "A blue teapot"
    assert _files(app) == 2
    small, large = image.url("320"), image.url("800")

    edit = _edit_page(web, product.id).get_data(as_text=True)
    assert "Image added." in edit and f'src="{small}"' in edit

    shown = web.get(f"/products/{product.id}").get_data(as_text=True)
    assert f'src="{large}" alt="A blue teapot" width="800" height="600"' in shown
    for page in (web.get("/"), web.get(f"/sellers/{seller.vendor.id}")):
        html = page.get_data(as_text=True)
        assert f'src="{small}"' in html
        assert "placeholder.svg" in html  # the bare teapot's card
    assert "placeholder.svg" in web.get(f"/products/{bare.id}").get_data(as_text=True)
    assert web.get(large).headers["Cache-Control"] == "public, max-age=31536000, immutable"
    listing = web.get("/vendor/products").get_data(as_text=True)
    assert f'src="{small}"' in listing


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"name,price\nteapot,12\n", "teapot.png", "must be a JPEG, PNG or WebP image"),
        (image_bytes("GIF"), "teapot.gif", "must be a JPEG, PNG or WebP image"),
        (image_bytes("JPEG")[:300], "cut.jpg", "is damaged or incomplete"),
    ],
    ids=["text", "gif", "truncated"],
)
def test_a_bad_file_is_explained_on_the_page_and_nothing_stored(
    web: FlaskClient, app: Flask, seller: VendorAccount, data: bytes, name: str, message: str
) -> None:
    product = make_product(seller)
    action = f"/vendor/products/{product.id}/images"
    refused = submit(web, _edit_page(web, product.id), action, file=_file(data, name))
    assert refused.status_code == 422
    assert message in refused.get_data(as_text=True)
    assert forms_in(refused, action), "the upload form is shown again"
    assert _images(product.id) == [] and _files(app) == 0


def test_no_file_chosen(web: FlaskClient, app: Flask, seller: VendorAccount) -> None:
    product = make_product(seller)
    refused = submit(web, _edit_page(web, product.id), f"/vendor/products/{product.id}/images")
    assert refused.status_code == 422
    assert "Choose an image file." in refused.get_data(as_text=True)
    assert _images(product.id) == []


def test_a_file_over_5_mb_is_explained(web: FlaskClient, app: Flask, seller: VendorAccount) -> None:
    product = make_product(seller)
    action = f"/vendor/products/{product.id}/images"
    [form] = forms_in(_edit_page(web, product.id), action)
    fields = form.data(file=FileStorage(io.BytesIO(noise_png((1400, 1300))), "big.png"))
    boundary, body = encode_multipart(fields)  # in memory: see test_api_images._upload
    # post_raw: the form's own fields, sent as a prebuilt body (the client cannot stream 5 MB).
    refused = web.post_raw(
        action, data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert refused.status_code == 422
    assert "must be at most 5 MB" in refused.get_data(as_text=True)
    assert _images(product.id) == [] and _files(app) == 0


def test_alt_text_reorder_and_delete_through_their_forms(
    web: FlaskClient, app: Flask, seller: VendorAccount
) -> None:
    product = make_product(seller)
    action = f"/vendor/products/{product.id}/images"
    for colour, alt in (((250, 0, 0), "Front"), ((0, 0, 250), "Back")):
        upload = submit(
            web,
            _edit_page(web, product.id),
            action,
            file=_file(image_bytes(colour=colour), "x.jpg"),
            alt_text=alt,
        )
        assert upload.status_code == 303
    front, back = _images(product.id)
    assert [front.alt_text, back.alt_text] == ["Front", "Back"]

    page = _edit_page(web, product.id)
    moved = submit(web, page, f"{action}/{back.id}/move")  # the last image offers only "up"
    assert moved.status_code == 303
    assert [i.id for i in _images(product.id)] == [back.id, front.id]

    page = _edit_page(web, product.id)
    renamed = submit(web, page, f"{action}/{front.id}/alt", alt_text="Front, close up")
    assert renamed.status_code == 303
    assert _images(product.id)[1].alt_text == "Front, close up"

    page = _edit_page(web, product.id)
    assert submit(web, page, f"{action}/{back.id}/delete").status_code == 303
    [left] = _images(product.id)
    assert left.id == front.id and left.position == 0
    assert _files(app) == 2


def test_another_vendors_product_is_missing(web: FlaskClient, seller: VendorAccount) -> None:
    other = make_vendor()
    product = make_product(other)
    refused = web.post_raw(  # deliberate: no page of this vendor offers another's product
        f"/vendor/products/{product.id}/images",
        data={"file": _file(image_bytes(), "x.jpg")},
    )
    assert refused.status_code == 404
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ProductImage)) == 0


def test_the_cart_shows_each_lines_cover(web: FlaskClient, seller: VendorAccount) -> None:
    from marketplace.images import services as images

    product = make_product(seller, title="Green Mug")
    image = images.add_image(seller.vendor.id, product.id, image_bytes("WEBP"), alt_text="Mug")
    buyer = make_buyer()
    carts.add_item(buyer.id, product.variants[0].id, 1)
    web.get("/logout")
    shopper = page_app()
    with shopper as shop_app:
        client = shop_app.test_client()
        assert login(client, buyer.user.email).status_code == 302
        html = client.get("/cart").get_data(as_text=True)
    assert f'src="{image.url("320")}" alt="Mug"' in html
