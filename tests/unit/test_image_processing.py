"""Uploads are judged by their bytes, re-encoded without metadata, and rendered at two widths."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from marketplace.errors import ValidationFailed
from marketplace.images import processing
from tests.image_files import CAMERA, bomb_png, image_bytes, noise_png


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")],
)
def test_each_accepted_type_keeps_its_format_at_both_widths(fmt: str, content_type: str) -> None:
    processed = processing.process(image_bytes(fmt, (1200, 900)))
    assert processed.content_type == content_type
    assert sorted(processed.renditions) == [320, 800]
    for width, rendition in processed.renditions.items():
        stored = _open(rendition.data)
        assert stored.format == fmt
        assert stored.size == (width, width * 3 // 4) == (rendition.width, rendition.height)


def test_a_small_picture_is_not_enlarged() -> None:
    processed = processing.process(image_bytes("PNG", (200, 100)))
    assert [(r.width, r.height) for r in processed.renditions.values()] == [(200, 100)] * 2


def test_the_type_comes_from_the_bytes_not_the_name() -> None:
    # The same PNG bytes whatever they were called: detected, and kept, as PNG.
    processed = processing.process(image_bytes("PNG"))
    assert processed.format == "PNG" and processed.extension == "png"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"name,price\nshirt,10\n", "JPEG, PNG or WebP"),
        (b"GIF89a" + image_bytes("GIF")[6:], "JPEG, PNG or WebP"),
        (image_bytes("BMP"), "JPEG, PNG or WebP"),
        (image_bytes("JPEG")[:400], "damaged"),
    ],
    ids=["empty", "text", "gif", "bmp", "truncated-jpeg"],
)
def test_what_is_not_a_jpeg_png_or_webp_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        processing.process(data)
    assert message in refused.value.fields["file"]


def test_a_file_over_5_mb_is_refused_before_decoding() -> None:
    data = noise_png((1400, 1300))
    assert len(data) > processing.MAX_BYTES
    with pytest.raises(ValidationFailed) as refused:
        processing.process(data)
    assert refused.value.fields == {"file": "must be at most 5 MB"}


def test_a_decompression_bomb_is_refused() -> None:
    data = bomb_png((9000, 9000))  # 81 megapixels in a file of a few kilobytes
    assert len(data) < 100_000
    with pytest.raises(ValidationFailed) as refused:
        processing.process(data)
    assert "too many pixels" in refused.value.fields["file"]


def test_exif_is_stripped_and_the_orientation_applied() -> None:
    original = image_bytes("JPEG", (400, 200), exif=True, orientation=6)
    assert CAMERA.encode() in original and _open(original).getexif()
    processed = processing.process(original)
    for rendition in processed.renditions.values():
        assert CAMERA.encode() not in rendition.data
        stored = _open(rendition.data)
        assert dict(stored.getexif()) == {}
        assert "exif" not in stored.info
        # Orientation 6 means "turn 90° clockwise to show": the pixels now stand upright.
        assert stored.size == (200, 400)


def test_webp_and_png_lose_their_exif_too() -> None:
    for fmt in ("WEBP", "PNG"):
        original = image_bytes(fmt, (300, 300), exif=True)
        assert CAMERA.encode() in original
        for rendition in processing.process(original).renditions.values():
            assert CAMERA.encode() not in rendition.data


def test_transparency_survives_a_png() -> None:
    image = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    stored = _open(processing.process(out.getvalue()).renditions[320].data)
    assert stored.mode == "RGBA" and stored.getpixel((5, 5))[3] == 0


def test_a_cmyk_jpeg_becomes_rgb() -> None:
    out = io.BytesIO()
    Image.new("CMYK", (50, 50), (0, 255, 255, 0)).save(out, format="JPEG")
    stored = _open(processing.process(out.getvalue()).renditions[800].data)
    assert stored.mode == "RGB"
