"""Vendor bulk CSV import, driven through the import page's form: rows create and update the
vendor's products and variants by SKU; a file with any error imports nothing and lists every
error (row, column, message); limits and bad files are explained."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from marketplace.catalog import csv_import
from marketplace.catalog.models import Product, ProductStatus, Variant
from marketplace.db import db
from tests.helpers import (
    VendorAccount,
    forms_in,
    login,
    make_product,
    make_vendor,
    page_app,
    submit,
)

ACTION = "/vendor/products/import"
HEADER = "product_key,title,description,category,brand,status,sku,price,stock,attributes\n"
GOOD = (
    HEADER
    + 'tee,Basic Tee,"Soft, cotton",Clothing/Tops,Acme,active,TEE-M,19.99,12,colour=Black; size=M\n'
    + "tee,Basic Tee,,,,,TEE-L,21.50,8,colour=Black; size=L\n"
    + "mug,Enamel Mug,,Kitchen,,draft,MUG-1,9.5,40,\n"
)


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


@pytest.fixture
def seller(web: FlaskClient) -> VendorAccount:
    account = make_vendor("Seller")
    assert login(web, account.user.email).status_code == 302
    return account


def _upload(web: FlaskClient, data: bytes | str, name: str = "products.csv") -> Any:
    page = web.get(ACTION)
    assert page.status_code == 200
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) < 400_000:
        return submit(web, page, ACTION, file=(io.BytesIO(raw), name))
    # Encoded in memory (the test client would spool a large body to a file it never closes),
    # so the page client cannot see the fields: they are the page's form's own, as submit sends.
    [form] = forms_in(page, ACTION)
    boundary, body = encode_multipart(form.data(file=FileStorage(io.BytesIO(raw), name)))
    return web.post_raw(  # type: ignore[attr-defined]
        ACTION, data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def _variants(vendor_id: int) -> dict[str, Variant]:
    db.session.rollback()  # end the read snapshot: see what the requests committed
    found = db.session.scalars(select(Variant).where(Variant.vendor_id == vendor_id))
    return {v.sku: v for v in found}


def _product_count(vendor_id: int) -> int:
    db.session.rollback()
    return (
        db.session.scalar(
            select(func.count()).select_from(Product).where(Product.vendor_id == vendor_id)
        )
        or 0
    )


def test_the_page_is_linked_and_offers_a_file_form_sample_and_columns(
    web: FlaskClient, seller: VendorAccount
) -> None:
    products = web.get("/vendor/products").get_data(as_text=True)
    assert f'href="{ACTION}"' in products
    page = web.get(ACTION)
    html = page.get_data(as_text=True)
    [form] = forms_in(page, ACTION)
    assert form.method == "post" and form.control("file")
    assert 'enctype="multipart/form-data"' in html and 'type="file"' in html
    assert 'id="columns"' in html and "colour=Black; size=M" in html
    sample = web.get("/vendor/products/import/sample.csv")
    assert sample.status_code == 200 and sample.mimetype == "text/csv"
    # the sample itself imports cleanly
    assert tuple(sample.get_data(as_text=True).splitlines()[0].split(",")) == csv_import.COLUMNS
    assert _upload(web, sample.get_data()).status_code == 200
    assert set(_variants(seller.vendor.id)) == {"TEE-BLK-M", "TEE-BLK-L", "MUG-1"}


def test_a_good_file_creates_products_and_variants(web: FlaskClient, seller: VendorAccount) -> None:
    done = _upload(web, GOOD)
    html = done.get_data(as_text=True)
    assert done.status_code == 200, html
    assert "3 variants created, 0 updated" in html and "Nothing was imported" not in html
    variants = _variants(seller.vendor.id)
    assert {sku: (v.price_cents, v.on_hand) for sku, v in variants.items()} == {
        "TEE-M": (1999, 12),
        "TEE-L": (2150, 8),
        "MUG-1": (950, 40),
    }
    assert variants["TEE-M"].attributes == {"colour": "Black", "size": "M"}
    tee = variants["TEE-M"].product
    assert variants["TEE-L"].product_id == tee.id and variants["MUG-1"].product_id != tee.id
    assert tee.title == "Basic Tee" and tee.description == "Soft, cotton"
    assert tee.status is ProductStatus.ACTIVE and tee.category.path == "Clothing/Tops"
    assert tee.brand.name == "Acme" and variants["MUG-1"].product.status is ProductStatus.DRAFT


def test_existing_skus_update_their_variant_and_product(
    web: FlaskClient, seller: VendorAccount
) -> None:
    product = make_product(seller, title="Old Title", price_cents=1000, stock=10, variants=1)
    [sku] = [v.sku for v in product.variants]
    text = (
        HEADER
        + f"p,New Title,New words,,,archived,{sku},12.00,3,colour=Red\n"
        + "p,New Title,,,,,NEW-SKU,5.00,,\n"
    )
    done = _upload(web, text)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "1 variant created, 1 updated" in done.get_data(as_text=True)
    variants = _variants(seller.vendor.id)
    old, new = variants[sku], variants["NEW-SKU"]
    assert (old.price_cents, old.on_hand, old.attributes) == (1200, 3, {"colour": "Red"})
    assert new.product_id == product.id and (new.price_cents, new.on_hand) == (500, 0)
    assert old.product.title == "New Title" and old.product.description == "New words"
    assert old.product.status is ProductStatus.ARCHIVED
    assert old.product.brand.name == "Acme"  # a blank cell keeps the product's field
    assert _product_count(seller.vendor.id) == 1


def test_a_file_with_errors_imports_nothing_and_lists_every_error(
    web: FlaskClient, seller: VendorAccount
) -> None:
    product = make_product(seller, price_cents=1000, stock=10)
    [sku] = [v.sku for v in product.variants]
    text = (
        HEADER
        + "a,Fine Product,,,,,OK-1,10.00,1,\n"  # row 2: fine on its own
        + f"b,Changed,,,,,{sku},20.00,5,\n"  # row 3: fine on its own
        + "c,Bad Price,,,,,BAD-1,ten,1,\n"  # row 4
        + "d,Bad Stock,,,,,BAD-2,1.00,lots,\n"  # row 5
        + "e,Bad Attr,,,,,BAD-3,1.00,1,colour\n"  # row 6
        + "f,Bad Status,,,,sold,BAD-4,1.00,1,\n"  # row 7
        + "g,,,,,,BAD-5,1.00,1,\n"  # row 8: no title (the service says)
        + "h,Zero,,,,,BAD-6,0,1,\n"  # row 9: price must be more than 0 (the service says)
    )
    refused = _upload(web, text)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "Nothing was imported" in html and "the file has 6 errors" in html
    for expected in (
        "Row 4, column price: Enter an amount like",
        "Row 5, column stock: Stock must be a whole number",
        "Row 6, column attributes: Write attributes as name=value pairs",
        "Row 7, column status: Status must be draft, active or archived.",
        "Row 8, column title: must be 1 to 200 characters long",
        "Row 9, column price: must be more than 0",
    ):
        assert expected in html
    assert "would be created" in html and "would be updated" in html
    variants = _variants(seller.vendor.id)
    assert set(variants) == {sku} and variants[sku].price_cents == 1000
    assert variants[sku].product.title != "Changed"
    assert _product_count(seller.vendor.id) == 1


def test_a_sku_twice_in_the_file_is_refused(web: FlaskClient, seller: VendorAccount) -> None:
    text = HEADER + "a,One,,,,,DUP,1.00,1,\nb,Two,,,,,DUP,2.00,1,\n"
    refused = _upload(web, text)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "Row 3, column sku: The SKU DUP is already on row 2." in html
    assert _variants(seller.vendor.id) == {}


def test_another_vendors_sku_is_a_new_variant_of_this_vendor(
    web: FlaskClient, seller: VendorAccount
) -> None:
    other = make_vendor("Other")
    theirs = make_product(other, price_cents=777)
    [sku] = [v.sku for v in theirs.variants]
    done = _upload(web, HEADER + f"a,Mine,,,,,{sku},3.00,2,\n")
    assert done.status_code == 200, done.get_data(as_text=True)
    mine = _variants(seller.vendor.id)[sku]
    assert mine.product_id != theirs.id and mine.price_cents == 300
    assert _variants(other.vendor.id)[sku].price_cents == 777


def test_a_file_that_is_not_utf8_is_explained(web: FlaskClient, seller: VendorAccount) -> None:
    refused = _upload(web, (HEADER + "a,Caf\xe9,,,,,C-1,1.00,1,\n").encode("latin-1"))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "not UTF-8 text (line 2)" in html and "Nothing was imported" in html
    assert _variants(seller.vendor.id) == {}


def test_missing_header_columns_are_named(web: FlaskClient, seller: VendorAccount) -> None:
    refused = _upload(web, "title,stock,colour\nTee,1,red\n")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "The header lacks the column(s) sku, price." in html
    assert "Unknown column(s) colour" in html
    assert _variants(seller.vendor.id) == {}


def test_a_file_over_the_size_limit_is_refused(web: FlaskClient, seller: VendorAccount) -> None:
    line = "a,Big,,,,,SKU-1,1.00,1,\n"
    data = (HEADER + line).encode()
    data += b" " * (csv_import.MAX_BYTES + 1 - len(data))
    refused = _upload(web, data)
    assert refused.status_code == 422
    assert "larger than 1,000 KB" in refused.get_data(as_text=True)
    assert _variants(seller.vendor.id) == {}


def test_a_file_over_the_row_limit_is_refused(web: FlaskClient, seller: VendorAccount) -> None:
    rows = "".join(f"p{n},T{n},,,,,S{n},1.00,1,\n" for n in range(csv_import.MAX_ROWS + 1))
    refused = _upload(web, HEADER + rows)
    assert refused.status_code == 422
    assert "The file has 2,001 rows; at most 2,000" in refused.get_data(as_text=True)
    assert _variants(seller.vendor.id) == {}


def test_no_file_chosen(web: FlaskClient, seller: VendorAccount) -> None:
    page = web.get(ACTION)
    refused = submit(web, page, ACTION)
    assert refused.status_code == 422
    assert "Choose a CSV file." in refused.get_data(as_text=True)


def test_the_service_rolls_back_everything_on_an_error(app: Flask) -> None:
    account = make_vendor("Service")
    product = make_product(account, price_cents=1000, stock=10)
    [sku] = [v.sku for v in product.variants]
    bad = HEADER + f"x,Renamed,,,,,{sku},2.00,1,\ny,New,,,,,N-1,1.00,-1,\n"
    result = csv_import.import_products_csv(account.vendor.id, bad.encode())
    assert not result.imported
    assert [(e.row, e.column) for e in result.errors] == [(3, "stock")]
    assert [r.action for r in result.rows] == ["updated", "error"]
    assert set(_variants(account.vendor.id)) == {sku}
    assert _variants(account.vendor.id)[sku].price_cents == 1000
    good = HEADER + f"x,Renamed,,,,,{sku},2.00,1,\ny,New,,,,,N-1,1.00,4,\n"
    result = csv_import.import_products_csv(account.vendor.id, good.encode())
    assert result.imported and (result.created, result.updated) == (1, 1)
    variants = _variants(account.vendor.id)
    assert variants[sku].price_cents == 200 and variants["N-1"].on_hand == 4


def test_weight_grams_is_imported_and_checked(web: FlaskClient, seller: VendorAccount) -> None:
    header = "title,sku,price,weight_grams\n"
    done = _upload(web, header + "Anvil,ANV-1,50.00,9000\nFeather,FTH-1,1.00,\n")
    assert done.status_code == 200, done.get_data(as_text=True)
    variants = _variants(seller.vendor.id)
    assert (variants["ANV-1"].weight_grams, variants["FTH-1"].weight_grams) == (9000, 0)
    kept = _upload(web, header + "Anvil,ANV-1,55.00,\n")  # blank: the weight stays
    assert kept.status_code == 200
    assert _variants(seller.vendor.id)["ANV-1"].weight_grams == 9000
    bad = _upload(web, header + "Anvil,ANV-1,55.00,heavy\nBrick,BRK-1,2.00,-5\n")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Nothing was imported" in html
    assert "whole number of grams" in html and "weight_grams" in html
    assert "BRK-1" not in _variants(seller.vendor.id)


def test_the_tax_category_column_sets_and_keeps_a_products_category(web, seller):
    from marketplace.catalog.models import TaxCategory

    header = HEADER.rstrip("\n") + ",tax_category\n"
    first = header + "book,A Book,,Books,,active,BOOK-1,12.00,3,,reduced\n"
    assert _upload(web, first).status_code in (200, 303)
    book = _variants(seller.vendor.id)["BOOK-1"].product
    assert book.tax_category is TaxCategory.REDUCED
    again = header + "book,A Book,,,,,BOOK-1,12.00,3,,\n"  # blank: unchanged
    _upload(web, again)
    assert _variants(seller.vendor.id)["BOOK-1"].product.tax_category is TaxCategory.REDUCED
    bad = header + "pen,A Pen,,,,active,PEN-1,1.00,3,,luxury\n"
    refused = _upload(web, bad)
    assert refused.status_code == 422
    assert "Tax category must be standard, reduced or exempt." in refused.get_data(as_text=True)
    assert "PEN-1" not in _variants(seller.vendor.id)
