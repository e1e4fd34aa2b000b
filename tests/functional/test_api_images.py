"""Product images through the vendor API: upload, reorder, alt text, delete; the files served
with immutable cache headers; every refusal stores nothing; products and search carry them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from marketplace.catalog.models import ProductImage
from marketplace.db import db
from marketplace.images import processing
from tests.helpers import Api, assert_error, make_buyer, make_product, make_vendor
from tests.image_files import CAMERA, bomb_png, image_bytes, noise_png
from tests.s3_server import s3_server

IMAGE_FIELDS = {"id", "position", "alt_text", "content_type", "urls", "sizes"}


def _upload(
    api: Api, token: str, product_id: int, data: bytes, name: str = "photo.jpg", **form: str
) -> Any:
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    file = FileStorage(io.BytesIO(data), filename=name, content_type="image/jpeg")
    boundary, body = encode_multipart({"file": file, **form})
    return api.post(
        f"/vendor/products/{product_id}/images",
        token,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def _stored_files(app: Flask) -> list[str]:
    root = Path(app.config["IMAGE_UPLOAD_DIR"])
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _image_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(ProductImage))


@pytest.fixture
def seller() -> Any:
    vendor = make_vendor()
    return vendor, make_product(vendor, title="Red Kettle")


def test_upload_stores_both_widths_and_serves_them_immutable(
    api: Api, app: Flask, client: Any, seller: Any
) -> None:
    vendor, product = seller
    response = _upload(
        api, vendor.token, product.id, image_bytes("JPEG", (1600, 1200)), alt_text="A red kettle"
    )
    assert response.status_code == 201, response.get_json()
    image = response.get_json()
    assert set(image) == IMAGE_FIELDS
    assert image["position"] == 0 and image["alt_text"] == "A red kettle"
    assert image["content_type"] == "image/jpeg"
    assert image["sizes"] == {"320": [320, 240], "800": [800, 600]}
    assert len(_stored_files(app)) == 2
    for width, url in image["urls"].items():
        assert url.startswith("/media/products/") and url.endswith(f"-{width}.jpg")
        served = client.get(url)
        assert served.status_code == 200
        assert served.mimetype == "image/jpeg"
        assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert Image.open(io.BytesIO(served.data)).size == tuple(image["sizes"][width])
        again = client.get(url, headers={"If-None-Match": served.headers["ETag"]})
        assert again.status_code == 304


def test_the_type_is_read_from_the_content(api: Api, seller: Any) -> None:
    vendor, product = seller
    # PNG bytes called photo.jpg and sent as image/jpeg: stored as the PNG they are.
    image = _upload(api, vendor.token, product.id, image_bytes("PNG"), name="photo.jpg").get_json()
    assert image["content_type"] == "image/png"
    assert all(url.endswith(".png") for url in image["urls"].values())
    webp = _upload(
        api, vendor.token, product.id, image_bytes("WEBP", colour=(1, 2, 3)), name="x.txt"
    )
    assert webp.get_json()["content_type"] == "image/webp"


def test_exif_never_reaches_the_storefront(api: Api, client: Any, seller: Any) -> None:
    vendor, product = seller
    original = image_bytes("JPEG", exif=True)
    assert CAMERA.encode() in original
    image = _upload(api, vendor.token, product.id, original).get_json()
    for url in image["urls"].values():
        served = client.get(url).data
        assert CAMERA.encode() not in served
        assert dict(Image.open(io.BytesIO(served)).getexif()) == {}


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"just some text\n", "notes.jpg", "must be a JPEG, PNG or WebP image"),
        (image_bytes("GIF"), "anim.gif", "must be a JPEG, PNG or WebP image"),
        (b"", "empty.png", "is empty: choose an image file"),
        (None, "big.png", "must be at most 5 MB"),
        (bomb_png(), "bomb.png", "has too many pixels (at most 40 megapixels)"),
    ],
    ids=["text", "gif", "empty", "oversize", "bomb"],
)
def test_bad_files_are_refused_and_nothing_is_stored(
    api: Api, app: Flask, seller: Any, data: bytes | None, name: str, message: str
) -> None:
    vendor, product = seller
    if data is None:
        data = noise_png((1400, 1300))
        assert processing.MAX_BYTES < len(data) < 6 * 1024 * 1024
    error = assert_error(
        _upload(api, vendor.token, product.id, data, name=name), 422, "validation_error"
    )
    assert error["details"]["fields"] == {"file": message}
    assert _image_rows() == 0 and _stored_files(app) == []


def test_a_body_far_over_the_limit_is_413(api: Api, seller: Any) -> None:
    vendor, product = seller
    response = _upload(api, vendor.token, product.id, b"\0" * (7 * 1024 * 1024))
    assert_error(response, 413, "payload_too_large")
    assert _image_rows() == 0


def test_missing_file_part_and_long_alt_text(api: Api, seller: Any) -> None:
    vendor, product = seller
    missing = api.post(
        f"/vendor/products/{product.id}/images",
        vendor.token,
        data={"alt_text": "x"},
        content_type="multipart/form-data",
    )
    assert "file" in assert_error(missing, 422, "validation_error")["details"]["fields"]
    long_alt = _upload(api, vendor.token, product.id, image_bytes(), alt_text="x" * 201)
    assert "alt_text" in assert_error(long_alt, 422)["details"]["fields"]
    assert _image_rows() == 0


def test_other_vendors_and_buyers_get_nothing(api: Api, seller: Any) -> None:
    vendor, product = seller
    image = _upload(api, vendor.token, product.id, image_bytes()).get_json()
    stranger = make_vendor()
    assert_error(
        _upload(api, stranger.token, product.id, image_bytes("PNG")), 404, "product_not_found"
    )
    path = f"/vendor/products/{product.id}/images/{image['id']}"
    assert_error(api.patch(path, stranger.token, json={"alt_text": "mine"}), 404)
    assert_error(api.delete(path, stranger.token), 404)
    assert_error(_upload(api, make_buyer().token, product.id, image_bytes("PNG")), 403)
    other = make_product(vendor)
    assert_error(
        api.delete(f"/vendor/products/{other.id}/images/{image['id']}", vendor.token),
        404,
        "image_not_found",
    )
    assert _image_rows() == 1


def test_reorder_alt_text_and_delete(api: Api, app: Flask, client: Any, seller: Any) -> None:
    vendor, product = seller
    ids = [
        _upload(api, vendor.token, product.id, image_bytes(colour=(i * 40, 0, 0))).get_json()["id"]
        for i in range(3)
    ]
    base = f"/vendor/products/{product.id}/images"
    moved = api.patch(
        f"{base}/{ids[2]}", vendor.token, json={"position": 0, "alt_text": " Side  view "}
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["position"] == 0 and moved.get_json()["alt_text"] == "Side view"
    listed = api.get(base, vendor.token).get_json()["items"]
    assert [(i["id"], i["position"]) for i in listed] == [(ids[2], 0), (ids[0], 1), (ids[1], 2)]
    assert (
        api.patch(f"{base}/{ids[2]}", vendor.token, json={"position": 99}).get_json()["position"]
        == 2
    )
    assert_error(api.patch(f"{base}/{ids[0]}", vendor.token, json={"position": -1}), 422)
    assert_error(api.patch(f"{base}/{ids[0]}", vendor.token, json={"alt_text": None}), 422)

    gone = next(i for i in listed if i["id"] == ids[0])
    assert api.delete(f"{base}/{ids[0]}", vendor.token).status_code == 204
    assert [i["id"] for i in api.get(base, vendor.token).get_json()["items"]] == [ids[1], ids[2]]
    assert [i["position"] for i in api.get(base, vendor.token).get_json()["items"]] == [0, 1]
    for url in gone["urls"].values():
        assert client.get(url).status_code == 404
    assert len(_stored_files(app)) == 4


def test_duplicates_and_the_limit_are_refused(api: Api, seller: Any) -> None:
    vendor, product = seller
    first = _upload(api, vendor.token, product.id, image_bytes()).get_json()
    twice = assert_error(
        _upload(api, vendor.token, product.id, image_bytes()), 409, "duplicate_image"
    )
    assert twice["details"] == {"image_id": first["id"]}
    for i in range(1, 8):
        assert (
            _upload(api, vendor.token, product.id, image_bytes(colour=(i, i, i))).status_code == 201
        )
    assert_error(
        _upload(api, vendor.token, product.id, image_bytes(colour=(9, 9, 9))),
        409,
        "too_many_images",
    )
    assert _image_rows() == 8


def test_products_and_search_carry_their_images(api: Api, runner: Any, seller: Any) -> None:
    vendor, product = seller
    bare = make_product(vendor, title="Plain Kettle")
    image = _upload(api, vendor.token, product.id, image_bytes()).get_json()
    shown = api.get(f"/products/{product.id}").get_json()
    assert shown["images"] == [image]
    assert api.get(f"/products/{bare.id}").get_json()["images"] == []
    runner.invoke(args=["search", "reindex"])
    found = api.get("/products", query_string={"q": "kettle"}).get_json()
    by_title = {p["title"]: p["images"] for p in found["items"]}
    assert by_title == {"Red Kettle": [image], "Plain Kettle": []}
    assert api.get(f"/vendor/products/{product.id}", vendor.token).get_json()["images"] == [image]


def test_the_openapi_document_lists_the_image_routes(api: Api) -> None:
    paths = api.get("/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/vendor/products/{product_id}/images"]) >= {"get", "post"}
    one = paths["/api/v1/vendor/products/{product_id}/images/{image_id}"]
    assert set(one) >= {"patch", "delete"}


@pytest.fixture
def s3_settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    with s3_server(monkeypatch) as settings:
        yield settings


class TestInABucket:
    @pytest.fixture
    def app_overrides(self, s3_settings: dict[str, Any]) -> dict[str, Any]:
        return s3_settings

    def test_upload_serve_and_delete_through_s3(
        self, api: Api, app: Flask, client: Any, s3_settings: dict[str, Any]
    ) -> None:
        vendor = make_vendor()
        product = make_product(vendor)
        image = _upload(api, vendor.token, product.id, image_bytes("WEBP")).get_json()
        assert _stored_files(app) == []  # nothing on local disk
        bucket = app.extensions["marketplace.images.storage"]
        listed = bucket.client.list_objects_v2(Bucket=s3_settings["IMAGE_S3_BUCKET"])["Contents"]
        assert sorted(o["Key"] for o in listed) == sorted(
            "shop/" + url.removeprefix("/media/") for url in image["urls"].values()
        )
        served = client.get(image["urls"]["800"])
        assert served.status_code == 200 and served.mimetype == "image/webp"
        assert Image.open(io.BytesIO(served.data)).format == "WEBP"
        api.delete(f"/vendor/products/{product.id}/images/{image['id']}", vendor.token)
        assert (
            bucket.client.list_objects_v2(Bucket=s3_settings["IMAGE_S3_BUCKET"]).get("Contents")
            is None
        )
        assert client.get(image["urls"]["800"]).status_code == 404


def test_files_shared_by_two_rows_stay_until_the_last_goes(
    api: Api, app: Flask, seller: Any
) -> None:
    """Two identical uploads racing past the duplicate check share their files: deleting one
    row keeps them for the other."""
    from marketplace.images import services as images

    vendor, product = seller
    first = _upload(api, vendor.token, product.id, image_bytes()).get_json()
    row = db.session.get(ProductImage, first["id"])
    db.session.add(
        ProductImage(
            product_id=product.id,
            position=1,
            alt_text="",
            content_type=row.content_type,
            sha256=row.sha256,
            keys=dict(row.keys),
            sizes=dict(row.sizes),
        )
    )
    db.session.commit()
    images.delete_image(vendor.vendor.id, product.id, first["id"])
    assert len(_stored_files(app)) == 2
    [twin] = images.product_images(vendor.vendor.id, product.id)
    images.delete_image(vendor.vendor.id, product.id, twin.id)
    assert _stored_files(app) == []
