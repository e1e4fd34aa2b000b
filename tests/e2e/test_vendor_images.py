"""Journey 4: a vendor uploads a picture on the product's edit page, moves it to the front and
the storefront shows it — the browser really loads the image (naturalWidth > 0) — on the
product page and on the product's card; a product without pictures shows the placeholder."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from marketplace.catalog.models import ProductImage
from marketplace.db import db
from tests.helpers import make_product, make_vendor
from tests.image_files import image_bytes


def _loaded(image) -> bool:
    return image.evaluate("img => img.complete && img.naturalWidth > 0")


def test_a_vendor_uploads_an_image_and_the_storefront_shows_it(pages, login_page, tmp_path):
    seller = make_vendor("Lantern Co")
    product = make_product(seller, title="Storm Lantern", category="Outdoor/Camping")
    make_product(seller, title="Plain Lantern", category="Outdoor/Camping")
    first = tmp_path / "lantern-front.jpg"
    first.write_bytes(image_bytes("JPEG", (1600, 1200), (230, 150, 30), exif=True))
    # A PNG whose name says JPEG: the site reads the bytes, not the name.
    second = tmp_path / "lantern-side.jpg"
    second.write_bytes(image_bytes("PNG", (900, 900), (30, 90, 160)))

    page = login_page(seller.user.email)
    page.goto(f"/vendor/products/{product.id}/edit")
    expect(page.get_by_text("No images yet")).to_be_visible()
    pages.shot(page, "edit-no-images")

    upload = page.get_by_label(re.compile("^Image"))
    upload.set_input_files(str(first))
    page.get_by_label("Alt text", exact=True).fill("Storm lantern, lit")
    page.get_by_role("button", name="Upload image").click()
    expect(page.get_by_text("Image added.")).to_be_visible()
    page.get_by_label(re.compile("^Image")).set_input_files(str(second))
    page.get_by_role("button", name="Upload image").click()
    expect(page.locator(".image-admin li")).to_have_count(2)
    # The side view becomes the cover.
    page.get_by_role("button", name="Move image 2 up").click()
    expect(page.get_by_text("Images reordered.")).to_be_visible()
    thumbs = page.locator(".image-admin img")
    for index in range(2):
        assert _loaded(thumbs.nth(index))
    pages.shot(page, "edit-two-images")

    # A text file is refused on the page, and nothing is added.
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture\n")
    page.get_by_label(re.compile("^Image")).set_input_files(str(notes))
    page.get_by_role("button", name="Upload image").click()
    expect(page.get_by_text("must be a JPEG, PNG or WebP image")).to_be_visible()
    expect(page.locator(".image-admin li")).to_have_count(2)
    pages.shot(page, "edit-refused-text-file")

    db.session.rollback()
    cover, other = db.session.query(ProductImage).order_by(ProductImage.position).all()
    assert cover.content_type == "image/png" and other.alt_text == "Storm lantern, lit"

    shopper = pages.new()
    shopper.goto(f"/products/{product.id}")
    main = shopper.locator(".gallery-main img")
    expect(main).to_have_attribute("src", cover.url("800"))
    main.scroll_into_view_if_needed()
    expect(main).to_have_js_property("complete", True)
    assert _loaded(main)
    assert main.evaluate("img => img.naturalWidth") == 800
    gallery = shopper.locator(".gallery-thumbs img")
    expect(gallery).to_have_count(2)
    expect(gallery.nth(1)).to_have_attribute("alt", "Storm lantern, lit")
    for index in range(2):
        gallery.nth(index).scroll_into_view_if_needed()
        expect(gallery.nth(index)).to_have_js_property("complete", True)
        assert _loaded(gallery.nth(index))
    pages.shot(shopper, "product-page-gallery")

    shopper.goto(f"/sellers/{seller.vendor.id}")
    card = shopper.locator(".card", has_text="Storm Lantern").locator("img")
    card.scroll_into_view_if_needed()
    expect(card).to_have_js_property("complete", True)
    assert _loaded(card) and card.get_attribute("src") == cover.url("320")
    placeholder = shopper.locator(".card", has_text="Plain Lantern").locator("img")
    expect(placeholder).to_have_attribute("src", re.compile("placeholder.svg"))
    pages.shot(shopper, "seller-cards")
