"""Vendor bulk import page: upload a CSV of products and variants, see every row's outcome.

The view only hands the file's bytes to `catalog.csv_import.import_products_csv`, which owns
the (all-or-nothing) transaction; the sample file is served from the same column list.
"""

from __future__ import annotations

from typing import Any

from flask import Response, render_template

from marketplace.catalog import csv_import
from marketplace.vendors import bp
from marketplace.vendors.csv_forms import CsvImportForm
from marketplace.vendors.routes import current_vendor

SAMPLE = (
    "product_key,title,description,category,brand,status,sku,price,stock,attributes,"
    "weight_grams,tax_category\r\n"
    'tee,Basic Tee,"Soft cotton tee",Clothing/Tops,Acme,active,TEE-BLK-M,19.99,12,'
    "colour=Black; size=M,180,standard\r\n"
    "tee,Basic Tee,,,,,TEE-BLK-L,19.99,8,colour=Black; size=L,200,\r\n"
    "mug,Enamel Mug,,Kitchen,,draft,MUG-1,9.50,40,,350,\r\n"
)


@bp.route("/products/import", methods=["GET", "POST"])
def import_products() -> Any:
    vendor = current_vendor()
    form = CsvImportForm()
    result = None
    status = 200
    if form.validate_on_submit():
        result = csv_import.import_products_csv(vendor.id, form.file.data.read())
        status = 200 if result.imported else 422
    elif form.is_submitted():
        status = 422
    return render_template(
        "vendors/products_import.html",
        vendor=vendor,
        form=form,
        result=result,
        columns=csv_import.COLUMNS,
        max_rows=csv_import.MAX_ROWS,
    ), status


@bp.get("/products/import/sample.csv")
def import_sample() -> Any:
    current_vendor()
    return Response(
        SAMPLE,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="products-sample.csv"'},
    )
