"""Pictures for the demo catalog, drawn with Pillow (no downloads): a coloured card with the
product's name, uploaded through the same service as a vendor's own files."""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

from marketplace.images.services import add_image

# The demo's colour names → a background and a text colour with enough contrast.
PALETTE = {
    "Black": ((34, 34, 38), (245, 245, 245)),
    "Blue": ((32, 86, 160), (255, 255, 255)),
    "Green": ((36, 120, 72), (255, 255, 255)),
    "Red": ((176, 40, 48), (255, 255, 255)),
    "Grey": ((200, 204, 210), (20, 20, 24)),
}
SIZE = (800, 600)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ValueError):  # a Pillow built without FreeType
        return ImageFont.load_default()


def picture(title: str, colour: str, caption: str = "") -> bytes:
    """An 800×600 JPEG: `title` (wrapped) on the colour's background, `caption` below."""
    background, ink = PALETTE.get(colour, PALETTE["Grey"])
    image = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(image)
    # A lighter band across the card, so the pictures do not look like flat swatches.
    band = tuple(min(255, c + 28) for c in background)
    draw.rectangle((0, SIZE[1] * 2 // 3, SIZE[0], SIZE[1]), fill=band)
    draw.text(
        (SIZE[0] // 2, SIZE[1] // 3),
        "\n".join(textwrap.wrap(title, 20)),
        fill=ink,
        font=_font(56),
        anchor="mm",
        align="center",
    )
    if caption:
        draw.text((SIZE[0] // 2, SIZE[1] * 5 // 6), caption, fill=ink, font=_font(36), anchor="mm")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def add_demo_images(vendor_id: int, product_id: int, title: str, colours: list[str]) -> None:
    """One picture per colour (the demo gives each product one or two)."""
    for colour in colours:
        add_image(
            vendor_id,
            product_id,
            picture(title, colour, colour),
            alt_text=f"{title} in {colour.lower()}",
        )
