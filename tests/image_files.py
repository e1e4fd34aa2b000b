"""Real image files made with Pillow, for the image tests (no fixtures on disk)."""

from __future__ import annotations

import io
import os

from PIL import Image

CAMERA = "SecretCam 3000"


def image_bytes(
    fmt: str = "JPEG",
    size: tuple[int, int] = (1200, 900),
    colour: tuple[int, int, int] = (200, 60, 40),
    *,
    exif: bool = False,
    orientation: int | None = None,
    mode: str = "RGB",
) -> bytes:
    """An image of `size` in `fmt`; with `exif`, a camera make and GPS tag in its EXIF."""
    image = Image.new(mode, size, colour if mode != "1" else 1)
    if mode == "RGB":
        # A second colour in one corner, to tell an upright picture from a rotated one.
        image.paste((20, 20, 220), (0, 0, size[0] // 4, size[1] // 4))
    options: dict[str, object] = {}
    if exif or orientation:
        data = Image.Exif()
        if exif:
            data[0x010F] = CAMERA  # Make
            data[0x0110] = "Model X"  # Model
            data[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS latitude
        if orientation:
            data[0x0112] = orientation
        options["exif"] = data.tobytes()
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def noise_png(size: tuple[int, int]) -> bytes:
    """Random pixels: PNG cannot compress them, so the file is about width × height × 3."""
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def bomb_png(size: tuple[int, int] = (9000, 9000)) -> bytes:
    """A tiny file that decodes to `size` pixels (a decompression bomb)."""
    return image_bytes("PNG", size, mode="1")
