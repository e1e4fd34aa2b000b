"""Vendor pages: dashboard, products, variants, settings; bad input and other vendors' ids
change nothing in the database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from marketplace.catalog import services as catalog
from marketplace.catalog.models import Product, ProductStatus, Variant, Vendor, VendorStatus
from marketplace.db import db
from tests.helpers import (
    VendorAccount,
    csrf_token_in,
    login,
    make_admin,
    make_buyer,
    make_product,
    make_vendor,
    page_app,
    submit,
)


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


def _fresh() -> Any:
    """The test's session, its read snapshot ended so it sees what the requests committed."""
    db.session.rollback()
    return db.session


@pytest.fixture
def seller(web: FlaskClient) -> VendorAccount:
    """An approved vendor, logged in on `web`."""
    account = make_vendor("Seller")
    assert login(web, account.user.email).status_code == 302
    return account


def _products() -> int:
    db.session.rollback()  # end the read snapshot: see what requests committed
    return db.session.scalar(select(func.count()).select_from(Product)) or 0


def _state(product_id: int) -> tuple[Any, ...]:
    """Everything a vendor page could change about a product and its variants."""
    db.session.rollback()  # end the read snapshot: see what requests committed
    product = db.session.get(Product, product_id)
    return (
        product.title,
        product.description,
        product.brand_id,
        product.category_id,
        product.status,
        tuple(
            (v.sku, v.price_cents, v.on_hand, v.reserved, v.low_stock_threshold, v.attributes)
            for v in product.variants
        ),
    )


def _vendor_state(vendor_id: int) -> tuple[Any, ...]:
    db.session.rollback()  # end the read snapshot: see what requests committed
    vendor = db.session.get(Vendor, vendor_id)
    return (vendor.display_name, vendor.shipping_flat_cents, vendor.free_shipping_threshold_cents)


def _send(web: FlaskClient, action: str, data: dict[str, str]) -> Any:
    """Open the page that offers the form posting to `action` and submit it with `data`
    (a product's variant form is on its edit page; the others post to their own page).
    A status the page's select does not offer is a deliberately tampered post."""
    page = action.removesuffix("/variants") + "/edit" if action.endswith("/variants") else action
    if data.get("status") == "deleted" or (
        data.get("status") == "archived" and action == "/vendor/products/new"
    ):
        web.get(page)
        return web.post_raw(action, data=data)
    return submit(web, web.get(page), action, **data)


def _new_product_form(**overrides: str) -> dict[str, str]:
    data = {
        "title": "Merino Tee",
        "description": "Soft and warm.",
        "brand": "Northwind",
        "category": "Clothing/Tops",
        "status": "active",
        "variants-0-sku": "TEE-M",
        "variants-0-price": "12.34",
        "variants-0-stock": "5",
        "variants-0-attributes": "colour=Black, size=M",
        "variants-1-sku": "TEE-L",
        "variants-1-price": "0.10",
        "variants-1-stock": "",
        "variants-1-attributes": "",
        "variants-2-sku": "",
        "variants-2-price": "",
        "variants-2-stock": "",
        "variants-2-attributes": "",
    }
    data.update(overrides)
    return data


# --- access ----------------------------------------------------------------------------------

VENDOR_PAGES = [
    "/vendor/",
    "/vendor/products",
    "/vendor/products/new",
    "/vendor/settings",
    "/vendor/products/{product}/edit",
    "/vendor/variants/{variant}/edit",
]


@pytest.mark.parametrize("path", VENDOR_PAGES)
def test_anonymous_is_sent_to_login(web, path):
    product = make_product(make_vendor())
    url = path.format(product=product.id, variant=product.variants[0].id)
    response = web.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=%2Fvendor%2F")


@pytest.mark.parametrize("role", ["buyer", "admin"])
@pytest.mark.parametrize("path", VENDOR_PAGES)
def test_other_roles_get_403(web, role, path):
    product = make_product(make_vendor())
    account = make_buyer() if role == "buyer" else make_admin()
    login(web, account.user.email)
    url = path.format(product=product.id, variant=product.variants[0].id)
    response = web.get(url)
    assert response.status_code == 403
    assert "These pages are for vendors." in response.text


def test_buyer_cannot_post_vendor_forms(web):
    vendor = make_vendor()
    product = make_product(vendor, price_cents=1000)
    before, count = _state(product.id), _products()
    login(web, make_buyer().user.email)
    # Deliberate: no page offers a buyer these forms.
    assert web.post_raw("/vendor/products/new", data=_new_product_form()).status_code == 403
    edit = {"price": "1.00", "stock": "1"}
    variant_edit = f"/vendor/variants/{product.variants[0].id}/edit"
    assert web.post_raw(variant_edit, data=edit).status_code == 403
    assert _state(product.id) == before and _products() == count


# --- dashboard and list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "note"),
    [
        (VendorStatus.PENDING, "buyers\n  will not see them until an administrator approves"),
        (VendorStatus.APPROVED, "active products are visible to buyers"),
        (VendorStatus.SUSPENDED, "Your shop is suspended"),
    ],
)
def test_dashboard_shows_status(web, status, note):
    account = make_vendor("Shop", approved=False)
    if status is not VendorStatus.PENDING:
        catalog.set_vendor_status(account.vendor.id, status)
    make_product(account, title="Desk Lamp")
    login(web, account.user.email)
    response = web.get("/vendor/")
    assert response.status_code == 200
    assert f">{status.value}</span>" in response.text
    assert note in response.text
    assert "Desk Lamp" in response.text and "Products (1)" in response.text


def test_products_list_shows_every_status_and_filters(web, seller):
    make_product(seller, title="Live One")
    make_product(seller, title="Draft One", status=ProductStatus.DRAFT)
    archived = make_product(seller, title="Old One")
    catalog.update_product(seller.vendor.id, archived.id, status=ProductStatus.ARCHIVED)
    make_product(make_vendor(), title="Not Mine")
    page = web.get("/vendor/products").text
    assert all(title in page for title in ("Live One", "Draft One", "Old One"))
    assert "Not Mine" not in page and "3 products" in page
    drafts = web.get("/vendor/products?status=draft").text
    assert "Draft One" in drafts and "Live One" not in drafts
    assert web.get("/vendor/products?status=deleted").status_code == 422
    assert web.get("/vendor/products?page=1000000000000000000000").status_code == 422


# --- create ----------------------------------------------------------------------------------


def test_new_product_page(web, seller):
    page = web.get("/vendor/products/new").text
    for name in ("title", "description", "brand", "category", "status"):
        assert f'name="{name}"' in page
    for name in ("sku", "price", "stock", "attributes"):
        assert f'name="variants-0-{name}"' in page and f'name="variants-3-{name}"' in page
    assert 'value="archived"' not in page


def test_create_product(web, seller):
    response = _send(web, "/vendor/products/new", _new_product_form())
    assert response.status_code == 303
    product = _fresh().scalar(select(Product).where(Product.vendor_id == seller.vendor.id))
    assert response.headers["Location"] == f"/vendor/products/{product.id}/edit"
    assert product.title == "Merino Tee" and product.description == "Soft and warm."
    assert product.brand.name == "Northwind" and product.category.path == "Clothing/Tops"
    assert product.category.parent.path == "Clothing"
    assert product.status is ProductStatus.ACTIVE
    variants = [(v.sku, v.price_cents, v.on_hand, v.attributes) for v in product.variants]
    assert variants == [
        ("TEE-M", 1234, 5, {"colour": "Black", "size": "M"}),
        ("TEE-L", 10, 0, {}),
    ]
    page = web.get(response.headers["Location"]).text
    assert "created" in page and "TEE-M" in page and "$12.34" in page
    assert "Merino Tee" in web.get(f"/products/{product.id}").text


@pytest.mark.parametrize(
    ("text", "cents"),
    [("19.99", 1999), ("0.01", 1), ("7", 700), ("7.5", 750), ("$3.07", 307), ("100000", 10**7)],
)
def test_money_is_converted_exactly(web, seller, text, cents):
    data = _new_product_form(**{"variants-0-price": text, "variants-1-sku": ""})
    data["variants-1-price"] = ""
    assert _send(web, "/vendor/products/new", data).status_code == 303
    price = _fresh().scalar(select(Variant.price_cents).where(Variant.sku == "TEE-M"))
    assert price == cents


def test_blank_rows_are_skipped_and_errors_land_on_their_row(web, seller):
    data = _new_product_form(
        **{
            "variants-0-sku": "",
            "variants-0-price": "",
            "variants-0-stock": "",
            "variants-0-attributes": "",
            "variants-2-sku": "TEE-XL",
            "variants-2-price": "0",
        }
    )
    response = _send(web, "/vendor/products/new", data)
    assert response.status_code == 422
    cell = re.search(
        r'name="variants-2-price"[^<]*>\s*<ul class="errors">(.*?)</ul>', response.text
    )
    assert cell and "must be between $0.01 and $100,000.00" in cell.group(1)
    assert _products() == 0
    data["variants-2-price"] = "3"
    assert _send(web, "/vendor/products/new", data).status_code == 303
    assert [v.sku for v in _fresh().scalars(select(Variant).order_by(Variant.id))] == [
        "TEE-L",
        "TEE-XL",
    ]


BAD_PRODUCTS = [
    ({"title": ""}, "This field is required.", 422),
    ({"title": "x" * 201}, "200", 422),
    ({"status": "archived"}, "Not a valid choice", 422),
    ({"category": "///"}, "must be a category name or path", 422),
    (
        {
            "variants-0-sku": "",
            "variants-0-price": "",
            "variants-0-stock": "",
            "variants-0-attributes": "",
            "variants-1-sku": "",
            "variants-1-price": "",
        },
        "must hold 1 to 100 variants",
        422,
    ),
    ({"variants-0-price": "-5"}, "Must not be negative.", 422),
    ({"variants-0-price": "-0.01"}, "Must not be negative.", 422),
    ({"variants-0-price": "1.234"}, "at most 2 decimals", 422),
    ({"variants-0-price": "99999999999"}, "too large", 422),
    ({"variants-0-price": "1e3"}, "Enter an amount like 12.34", 422),
    ({"variants-0-price": "NaN"}, "Enter an amount like 12.34", 422),
    ({"variants-0-price": "12,50"}, "Enter an amount like 12.34", 422),
    ({"variants-0-price": "100000.01"}, "must be between $0.01 and $100,000.00", 422),
    ({"variants-0-price": "0"}, "must be between $0.01 and $100,000.00", 422),
    ({"variants-0-price": ""}, "Required for each variant.", 422),
    ({"variants-0-sku": ""}, "Required for each variant.", 422),
    ({"variants-0-stock": "lots"}, "Not a valid integer value.", 422),
    ({"variants-0-stock": "2.5"}, "Not a valid integer value.", 422),
    ({"variants-0-stock": "-1"}, "must be between 0 and 1000000", 422),
    ({"variants-0-stock": "99999999999"}, "must be between 0 and 1000000", 422),
    ({"variants-0-attributes": "colour"}, "name=value pairs", 422),
    ({"variants-0-attributes": "=Black"}, "name=value pairs", 422),
    ({"variants-0-attributes": "size=M, size=L"}, "given twice", 422),
    ({"variants-1-sku": "TEE-M"}, "SKUs must differ within a product", 422),
]


@pytest.mark.parametrize(("overrides", "message", "status"), BAD_PRODUCTS)
def test_bad_new_product_changes_nothing(web, seller, overrides, message, status):
    response = _send(web, "/vendor/products/new", _new_product_form(**overrides))
    assert response.status_code == status
    assert message in response.text
    assert _products() == 0


def test_sku_already_used_is_409(web, seller):
    make_product(seller)
    taken = db.session.scalar(select(Variant.sku))
    response = _send(web, "/vendor/products/new", _new_product_form(**{"variants-1-sku": taken}))
    assert response.status_code == 409
    assert "You already have a variant with that SKU." in response.text
    assert _products() == 1


def test_another_vendors_sku_is_fine(web, seller):
    other = make_vendor()
    make_product(other)
    taken = db.session.scalar(select(Variant.sku))
    form = _new_product_form(**{"variants-1-sku": taken})
    assert _send(web, "/vendor/products/new", form).status_code == 303
    assert _products() == 2


# --- edit product ----------------------------------------------------------------------------


def test_edit_product_page_is_prefilled(web, seller):
    product = make_product(seller, title="Desk Lamp", brand="Acme", category="Home/Lighting")
    page = web.get(f"/vendor/products/{product.id}/edit").text
    assert 'value="Desk Lamp"' in page and 'value="Acme"' in page
    assert 'value="Home/Lighting"' in page and 'value="archived"' in page
    assert f'href="/vendor/variants/{product.variants[0].id}/edit"' in page


def test_edit_product(web, seller):
    product = make_product(seller, title="Desk Lamp", brand="Acme", category="Home")
    response = _send(
        web,
        f"/vendor/products/{product.id}/edit",
        {
            "title": "Desk Lamp II",
            "description": "Brighter.",
            "brand": "",
            "category": "Home/Lighting",
            "status": "archived",
        },
    )
    assert response.status_code == 303
    db.session.rollback()  # end the read snapshot: see what requests committed
    product = _fresh().get(Product, product.id)
    assert product.title == "Desk Lamp II" and product.description == "Brighter."
    assert product.brand is None and product.category.path == "Home/Lighting"
    assert product.status is ProductStatus.ARCHIVED
    assert web.get(f"/products/{product.id}").status_code == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"title": ""}, "This field is required."),
        ({"title": "   "}, "must be 1 to 200 characters long"),
        ({"status": "deleted"}, "Not a valid choice"),
        ({"brand": "b" * 81}, "80"),
        ({"category": "/"}, "must be a category name or path"),
    ],
)
def test_bad_product_edit_changes_nothing(web, seller, data, message):
    product = make_product(seller, title="Desk Lamp")
    before = _state(product.id)
    form = {"title": "New", "description": "", "brand": "", "category": "", "status": "draft"}
    response = _send(web, f"/vendor/products/{product.id}/edit", {**form, **data})
    assert response.status_code == 422
    assert message in response.text
    assert _state(product.id) == before


def test_add_variant(web, seller):
    product = make_product(seller)
    response = _send(
        web,
        f"/vendor/products/{product.id}/variants",
        {"sku": "NEW-1", "price": "4.20", "stock": "3", "attributes": "size=S"},
    )
    assert response.status_code == 303
    variant = _fresh().scalar(select(Variant).where(Variant.sku == "NEW-1"))
    assert (variant.product_id, variant.price_cents, variant.on_hand) == (product.id, 420, 3)
    assert variant.attributes == {"size": "S"}


@pytest.mark.parametrize(
    ("data", "message", "status"),
    [
        ({"price": "-1"}, "Must not be negative.", 422),
        ({"price": "abc"}, "Enter an amount like 12.34", 422),
        ({"stock": "x"}, "Not a valid integer value.", 422),
        ({"sku": ""}, "This field is required.", 422),
        ({"sku": "TAKEN"}, "You already have a variant with that SKU.", 409),
    ],
)
def test_bad_add_variant_changes_nothing(web, seller, data, message, status):
    product = make_product(seller)
    catalog.add_variant(seller.vendor.id, product.id, catalog.VariantInput("TAKEN", 100))
    before = _state(product.id)
    form = {"sku": "NEW-1", "price": "4.20", "stock": "3", "attributes": "", **data}
    response = _send(web, f"/vendor/products/{product.id}/variants", form)
    assert response.status_code == status
    assert message in response.text
    assert _state(product.id) == before


# --- edit variant ----------------------------------------------------------------------------


def test_edit_variant(web, seller):
    product = make_product(seller, price_cents=1234, stock=5)
    variant_id = product.variants[0].id
    page = web.get(f"/vendor/variants/{variant_id}/edit").text
    assert 'value="12.34"' in page and 'value="5"' in page
    response = _send(
        web,
        f"/vendor/variants/{variant_id}/edit",
        {"price": "15.5", "stock": "40", "low_stock_threshold": "2"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/vendor/products/{product.id}/edit"
    db.session.rollback()  # end the read snapshot: see what requests committed
    variant = _fresh().get(Variant, variant_id)
    assert (variant.price_cents, variant.on_hand, variant.low_stock_threshold) == (1550, 40, 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"price": "-1"}, "Must not be negative."),
        ({"price": "1.001"}, "at most 2 decimals"),
        ({"price": ""}, "This field is required."),
        ({"price": "0.00"}, "must be between $0.01 and $100,000.00"),
        ({"price": "123456789012"}, "too large"),
        ({"stock": "abc"}, "Not a valid integer value."),
        ({"stock": ""}, "This field is required."),
        ({"stock": "-3"}, "must be between 0 and 1000000"),
        ({"stock": "1000001"}, "must be between 0 and 1000000"),
        ({"low_stock_threshold": "-1"}, "must be between 0 and 1000000"),
    ],
)
def test_bad_variant_edit_changes_nothing(web, seller, data, message):
    product = make_product(seller, price_cents=1234, stock=5)
    before = _state(product.id)
    form = {"price": "20.00", "stock": "9", "low_stock_threshold": "", **data}
    response = _send(web, f"/vendor/variants/{product.variants[0].id}/edit", form)
    assert response.status_code == 422
    assert message in response.text
    assert _state(product.id) == before


def test_stock_below_reserved_is_refused(web, seller):
    product = make_product(seller, price_cents=1234, stock=5)
    variant_id = product.variants[0].id
    db.session.execute(update(Variant).where(Variant.id == variant_id).values(reserved=3))
    db.session.commit()
    before = _state(product.id)
    response = _send(web, f"/vendor/variants/{variant_id}/edit", {"price": "99.00", "stock": "2"})
    assert response.status_code == 409
    assert "Stock on hand cannot go below what is reserved for open checkouts." in response.text
    assert "3 reserved right now" in response.text
    assert _state(product.id) == before  # the price change was rolled back too
    ok = _send(web, f"/vendor/variants/{variant_id}/edit", {"price": "12.34", "stock": "3"})
    assert ok.status_code == 303
    db.session.rollback()  # end the read snapshot: see what requests committed
    assert _fresh().get(Variant, variant_id).on_hand == 3


# --- settings --------------------------------------------------------------------------------


def test_settings(web, seller):
    page = web.get("/vendor/settings").text
    assert f'value="{seller.vendor.display_name}"' in page and 'value="0.00"' in page
    response = _send(
        web,
        "/vendor/settings",
        {
            "display_name": "Seller Co",
            "shipping_flat": "4.95",
            "free_shipping_threshold": "50",
        },
    )
    assert response.status_code == 303
    assert _vendor_state(seller.vendor.id) == ("Seller Co", 495, 5000)
    assert 'value="50.00"' in web.get("/vendor/settings").text
    response = _send(
        web,
        "/vendor/settings",
        {"display_name": "Seller Co", "shipping_flat": "0", "free_shipping_threshold": ""},
    )
    assert response.status_code == 303
    assert _vendor_state(seller.vendor.id) == ("Seller Co", 0, None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"display_name": ""}, "This field is required."),
        ({"display_name": "   "}, "must be 1 to 120 characters long"),
        ({"shipping_flat": "-4"}, "Must not be negative."),
        ({"shipping_flat": "four"}, "Enter an amount like 12.34"),
        ({"shipping_flat": ""}, "This field is required."),
        ({"shipping_flat": "4.999"}, "at most 2 decimals"),
        ({"shipping_flat": "100000.01"}, "must be between $0.00 and $100,000.00"),
        ({"free_shipping_threshold": "-1"}, "Must not be negative."),
        ({"free_shipping_threshold": "9999999999999"}, "too large"),
    ],
)
def test_bad_settings_change_nothing(web, seller, data, message):
    catalog.update_vendor_settings(
        seller.vendor.id, shipping_flat_cents=300, free_shipping_threshold_cents=4000
    )
    before = _vendor_state(seller.vendor.id)
    form = {"display_name": "Changed", "shipping_flat": "1", "free_shipping_threshold": "2", **data}
    response = _send(web, "/vendor/settings", form)
    assert response.status_code == 422
    assert message in response.text
    assert _vendor_state(seller.vendor.id) == before


# --- other vendors' ids ----------------------------------------------------------------------


def test_every_page_with_another_vendors_ids_is_404(web, seller):
    mine = make_product(seller, title="Mine")
    other = make_vendor("Other")
    theirs = make_product(other, title="Theirs", price_cents=1000, stock=4)
    product_id, variant_id = theirs.id, theirs.variants[0].id
    before, mine_before = _state(product_id), _state(mine.id)
    valid_product = {"title": "Hacked", "description": "", "brand": "", "category": ""}
    valid_product["status"] = "archived"
    requests = [
        ("GET", f"/vendor/products/{product_id}/edit", None),
        ("POST", f"/vendor/products/{product_id}/edit", valid_product),
        ("POST", f"/vendor/products/{product_id}/edit", {"title": ""}),
        (
            "POST",
            f"/vendor/products/{product_id}/variants",
            {"sku": "X", "price": "1", "stock": "1"},
        ),
        ("POST", f"/vendor/products/{product_id}/variants", {"sku": ""}),
        ("GET", f"/vendor/variants/{variant_id}/edit", None),
        ("POST", f"/vendor/variants/{variant_id}/edit", {"price": "0.01", "stock": "0"}),
        ("POST", f"/vendor/variants/{variant_id}/edit", {"price": "-1", "stock": "x"}),
    ]
    for method, url, data in requests:
        # Deliberate: another vendor's ids, which none of this vendor's pages offer.
        response = web.open_raw(url, method=method, data=data)
        assert response.status_code == 404, (method, url, data)
        assert "Theirs" not in response.text
    assert _state(product_id) == before and _state(mine.id) == mine_before
    listing = web.get("/vendor/products").text
    assert "Mine" in listing and "Theirs" not in listing


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/vendor/products/999999/edit"),
        ("POST", "/vendor/products/999999/edit"),
        ("POST", "/vendor/products/999999/variants"),
        ("GET", "/vendor/variants/999999/edit"),
        ("POST", "/vendor/variants/999999/edit"),
        ("GET", "/vendor/products/abc/edit"),
    ],
)
def test_unknown_ids_are_404(web, seller, method, url):
    data = {"title": "T", "status": "draft", "sku": "S", "price": "1", "stock": "1"}
    # Deliberate: ids no page offers.
    response = web.open_raw(url, method=method, data=data if method == "POST" else None)
    assert response.status_code == 404
    assert _products() == 0


# --- CSRF ------------------------------------------------------------------------------------


def test_vendor_forms_need_the_csrf_token(app):
    account = make_vendor()
    product = make_product(account, price_cents=1000)
    before = _state(product.id)
    with page_app(WTF_CSRF_ENABLED=True) as csrf_app:
        web = csrf_app.test_client()
        assert login(web, account.user.email).status_code == 302
        url = f"/vendor/variants/{product.variants[0].id}/edit"
        # Deliberate: posts without the page's CSRF token.
        response = web.post_raw(url, data={"price": "1.00", "stock": "1"})
        assert response.status_code == 400
        assert web.post_raw("/vendor/products/new", data=_new_product_form()).status_code == 400
        assert _state(product.id) == before and _products() == 1
        page = web.get(url)
        assert csrf_token_in(page)
        response = submit(web, page, url, price="1.00", stock="1")
        assert response.status_code == 303
        assert _state(product.id) != before


# --- Stripe Connect onboarding from the dashboard -------------------------------------------


def test_dashboard_button_onboards_the_vendor_through_stripe(web):
    from tests.conftest import stripe_emulator_server
    from tests.functional.money import emulator_post

    account = make_vendor("Newcomer", payable=False)
    assert login(web, account.user.email).status_code == 302
    dashboard_page = web.get("/vendor/")
    dashboard = dashboard_page.get_data(as_text=True)
    assert "Connect with Stripe" in dashboard

    started = submit(web, dashboard_page, "/vendor/onboarding/start")
    emulator = stripe_emulator_server()
    assert started.status_code == 302 and started.location.startswith(emulator.url)
    account_id = _fresh().get(Vendor, account.vendor.id).stripe_account_id
    assert account_id and account_id.startswith("acct_")

    not_yet = web.get("/vendor/onboarding/return", follow_redirects=True)
    assert "Stripe still needs some details" in not_yet.get_data(as_text=True)
    assert not _fresh().get(Vendor, account.vendor.id).payouts_enabled

    emulator_post(emulator, f"/_emulator/accounts/{account_id}/complete_onboarding")
    done = web.get("/vendor/onboarding/return", follow_redirects=True)
    page = done.get_data(as_text=True)
    assert "you can receive payouts" in page and "Connect with Stripe" not in page
    assert _fresh().get(Vendor, account.vendor.id).payouts_enabled


def test_expired_link_refresh_never_creates_a_stripe_account(web):
    account = make_vendor("Newcomer", payable=False)
    assert login(web, account.user.email).status_code == 302
    response = web.get("/vendor/onboarding/refresh")
    assert response.status_code == 302 and urlsplit(response.location).path == "/vendor/"
    assert _fresh().get(Vendor, account.vendor.id).stripe_account_id is None


def test_the_product_forms_set_the_tax_category(web, seller):
    from marketplace.catalog.models import TaxCategory

    assert "Tax category" in web.get("/vendor/products/new").text
    response = _send(web, "/vendor/products/new", _new_product_form(tax_category="reduced"))
    assert response.status_code == 303
    product = _fresh().scalar(select(Product).where(Product.vendor_id == seller.vendor.id))
    assert product.tax_category is TaxCategory.REDUCED
    edit = f"/vendor/products/{product.id}/edit"
    chosen = r'<option selected value="reduced"|value="reduced" selected'
    assert re.search(chosen, web.get(edit).text)
    assert _send(web, edit, {"tax_category": "exempt"}).status_code == 303
    product = _fresh().get(Product, product.id)
    assert product.tax_category is TaxCategory.EXEMPT
