"""Turning an uploaded file into stored product images, with Pillow.

The type is read from the bytes (Pillow's own format detection), never from the file name or
the Content-Type the client sent. Whatever comes in is decoded and encoded again, which drops
EXIF (location, camera serial) and any other metadata, and anything hidden after the image
data; the EXIF orientation is applied to the pixels first so the picture still stands upright.
Each upload becomes one image per width in `WIDTHS` (never enlarged).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from marketplace.errors import ValidationFailed

MAX_BYTES = 5 * 1024 * 1024
# Width × height above which a file is refused before it is decoded (a small file that would
# expand to gigabytes of pixels: a decompression bomb). 40 megapixels is a 7,300 px square.
MAX_PIXELS = 40_000_000
WIDTHS = (320, 800)
# Pillow's format name → (content type, file extension).
FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
QUALITY = 85


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed({"file": message}, "The image was not accepted.")


@dataclass(frozen=True)
class Rendition:
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class ProcessedImage:
    """An accepted upload: its format, the hash of what was sent, and one rendition a width."""

    format: str
    sha256: str
    renditions: dict[int, Rendition]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][0]

    @property
    def extension(self) -> str:
        return FORMATS[self.format][1]


def _decode(data: bytes) -> tuple[str, Image.Image]:
    """:raises ValidationFailed: not an image, another type, too many pixels, or corrupt."""
    with warnings.catch_warnings():
        # Pillow warns (and above twice its limit, raises) on huge images; both are refusals.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except UnidentifiedImageError:
            raise _refuse("must be a JPEG, PNG or WebP image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _refuse("has too many pixels") from None
        except (OSError, SyntaxError, ValueError):
            raise _refuse("is damaged or incomplete") from None
        fmt = image.format or ""
        if fmt not in FORMATS:
            raise _refuse("must be a JPEG, PNG or WebP image")
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise _refuse(f"has too many pixels (at most {MAX_PIXELS // 1_000_000} megapixels)")
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _refuse("has too many pixels") from None
        except (OSError, SyntaxError, ValueError):
            raise _refuse("is damaged or incomplete") from None
    return fmt, image


def _normalise_mode(image: Image.Image, fmt: str) -> Image.Image:
    if fmt == "JPEG":
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": QUALITY, "optimize": True, "progressive": True}
    elif fmt == "WEBP":
        options = {"quality": QUALITY, "method": 4}
    elif fmt == "PNG":
        options = {"optimize": True}
    # No exif=, no pnginfo=, no icc_profile=: nothing of the original's metadata is written.
    image.save(out, format=fmt, **options)
    return out.getvalue()


def process(data: bytes) -> ProcessedImage:
    """Check an upload and render it at each width.

    :raises ValidationFailed: empty, larger than 5 MB, not a JPEG/PNG/WebP, a decompression
        bomb, or damaged (the field is `file`).
    """
    if not data:
        raise _refuse("is empty: choose an image file")
    if len(data) > MAX_BYTES:
        raise _refuse(f"must be at most {MAX_BYTES // (1024 * 1024)} MB")
    fmt, image = _decode(data)
    with image:
        upright = ImageOps.exif_transpose(image)
        upright = _normalise_mode(upright, fmt)
    renditions: dict[int, Rendition] = {}
    for width in WIDTHS:
        if upright.width > width:
            height = max(1, round(upright.height * width / upright.width))
            sized = upright.resize((width, height), Image.Resampling.LANCZOS)
        else:
            sized = upright.copy()
        renditions[width] = Rendition(sized.width, sized.height, _encode(sized, fmt))
    return ProcessedImage(fmt, hashlib.sha256(data).hexdigest(), renditions)
