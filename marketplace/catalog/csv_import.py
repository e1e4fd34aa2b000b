"""Vendor bulk import: a CSV file of products and variants, all of it or nothing.

Rows are matched to the vendor's variants by SKU: a known SKU updates its variant (price, stock,
attributes) and its product's fields; a new SKU adds a variant to the row's product, creating
the product when none of its rows names a known SKU. Rows belong to one product by
`product_key` (or, without one, by title). Every change goes through the catalog services
(their validation, search-index hooks and stock rules) inside ONE outer transaction: a file
with any error is rolled back whole, and every error is reported with its row and column.
See docs/vendors-csv.md.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import select

from marketplace.catalog import services as catalog
from marketplace.catalog.models import ProductStatus, TaxCategory, Variant
from marketplace.db import db, transaction
from marketplace.errors import DomainError, ValidationFailed
from marketplace.inventory.services import StockBelowReserved
from marketplace.money import parse_money

MAX_BYTES = 1_000_000
MAX_ROWS = 2_000
COLUMNS = (
    "product_key",
    "title",
    "description",
    "category",
    "brand",
    "status",
    "sku",
    "price",
    "stock",
    "attributes",
    "weight_grams",
    "tax_category",
)
REQUIRED = ("title", "sku", "price")
PRODUCT_FIELDS = ("title", "description", "category", "brand", "status", "tax_category")
_COLUMN_OF = {"price_cents": "price", "low_stock_threshold": "stock", "variants": "sku"}


@dataclass
class RowError:
    row: int | None  # the file's line as a spreadsheet numbers it (header = 1); None: the file
    column: str | None
    message: str


@dataclass
class RowResult:
    row: int
    sku: str
    # "created", "updated" (rolled back again when the file had errors), "error", or
    # "unchecked": the row's product has a row with errors, so the services were not asked
    action: str
    errors: list[RowError] = field(default_factory=list)


@dataclass
class ImportResult:
    imported: bool
    rows: list[RowResult] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # every error, file-level ones first

    @property
    def created(self) -> int:
        return sum(1 for r in self.rows if r.action == "created")

    @property
    def updated(self) -> int:
        return sum(1 for r in self.rows if r.action == "updated")


@dataclass
class _Row:
    number: int
    cells: dict[str, str]
    sku: str = ""
    price_cents: int | None = None
    stock: int | None = None
    attributes: dict[str, str] | None = None
    weight_grams: int | None = None
    errors: list[RowError] = field(default_factory=list)

    def error(self, column: str | None, message: str) -> None:
        self.errors.append(RowError(self.number, column, message))


class _Rollback(Exception):
    """Raised inside the import's transaction so that a file with errors changes nothing."""


def parse_attributes(text: str) -> dict[str, str]:
    """'colour=Black; size=M' → {'colour': 'Black', 'size': 'M'}.

    :raises ValueError: a pair without '=', an empty name or a repeated name.
    """
    attributes: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ValueError("Write attributes as name=value pairs, e.g. colour=Black; size=M.")
        if name in attributes:
            raise ValueError(f"The attribute {name!r} is given twice.")
        attributes[name] = value
    return attributes


def _file_error(message: str, column: str | None = None) -> ImportResult:
    return ImportResult(imported=False, errors=[RowError(None, column, message)])


def _read(data: bytes) -> tuple[list[_Row], ImportResult | None]:
    if len(data) > MAX_BYTES:
        return [], _file_error(f"The file is larger than {MAX_BYTES // 1000:,} KB; split it.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return [], _file_error(
            f"The file is not UTF-8 text (line {line}); save it as “CSV UTF-8” and try again."
        )
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        lines = list(reader)
    except csv.Error as error:
        return [], _file_error(f"The file is not valid CSV: {error}.")
    if not lines or not any(cell.strip() for cell in lines[0]):
        return [], _file_error("The file is empty: the first line must name the columns.")
    header = [cell.strip().lower() for cell in lines[0]]
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in REQUIRED if name not in header]
    twice = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"The header lacks the column(s) {', '.join(missing)}.")
    if unknown:
        problems.append(
            f"Unknown column(s) {', '.join(unknown)}; the columns are {', '.join(COLUMNS)}."
        )
    if twice:
        problems.append(f"The column(s) {', '.join(twice)} appear more than once.")
    if problems:
        return [], ImportResult(imported=False, errors=[RowError(1, None, p) for p in problems])
    rows = []
    for index, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank lines (often at the end) are skipped
        if len(cells) > len(header):
            row = _Row(index, {})
            row.error(None, f"The row has {len(cells)} cells; the header names {len(header)}.")
            rows.append(row)
            continue
        padded = cells + [""] * (len(header) - len(cells))
        cells_by_name = {name: value.strip() for name, value in zip(header, padded, strict=True)}
        rows.append(_Row(index, cells_by_name))
    if len(rows) > MAX_ROWS:
        return [], _file_error(
            f"The file has {len(rows):,} rows; at most {MAX_ROWS:,} can be imported at once."
        )
    if not rows:
        return [], _file_error("The file has a header but no rows.")
    return rows, None


def _parse_row(row: _Row) -> None:
    if not row.cells:
        return
    config = current_app.config
    row.sku = row.cells.get("sku", "")
    if not row.sku:
        row.error("sku", "Every row needs a SKU.")
    price = row.cells.get("price", "")
    if not price:
        row.error("price", "Every row needs a price.")
    else:
        try:
            row.price_cents = parse_money(price, config["CURRENCY"], config["LOCALE"])
        except ValueError as error:
            row.error("price", str(error))
    stock = row.cells.get("stock", "")
    if stock:
        try:
            row.stock = int(stock)
        except ValueError:
            row.error("stock", "Stock must be a whole number, like 12.")
    weight = row.cells.get("weight_grams", "")
    if weight:
        try:
            row.weight_grams = int(weight)
        except ValueError:
            row.error("weight_grams", "The weight must be a whole number of grams, like 250.")
    if row.cells.get("attributes"):
        try:
            row.attributes = parse_attributes(row.cells["attributes"])
        except ValueError as error:
            row.error("attributes", str(error))
    status = row.cells.get("status", "")
    if status and status.lower() not in {s.value for s in ProductStatus}:
        row.error("status", "Status must be draft, active or archived.")
    tax_category = row.cells.get("tax_category", "")
    if tax_category and tax_category.lower() not in {c.value for c in TaxCategory}:
        row.error("tax_category", "Tax category must be standard, reduced or exempt.")


def _product_fields(rows: list[_Row]) -> dict[str, str]:
    """A product's fields: for each, the first non-blank value among its rows."""
    fields: dict[str, str] = {}
    for name in PRODUCT_FIELDS:
        fields[name] = next((r.cells[name] for r in rows if r.cells.get(name)), "")
    return fields


def _service_errors(error: DomainError, first: _Row, variant_rows: list[_Row]) -> None:
    """Put a service's refusal on the row and column it came from."""
    if isinstance(error, ValidationFailed):
        for key, message in error.fields.items():
            row, name = first, key
            if key.startswith("variants[") and "]." in key:
                index, _, name = key[len("variants[") :].partition("].")
                row = variant_rows[int(index)]
            column = _COLUMN_OF.get(name, name)
            if column == "price":
                message = f"must be more than 0 and at most {catalog.MAX_PRICE_CENTS:,} cents"
            row.error(column, message)
    elif isinstance(error, StockBelowReserved):
        reserved = error.details.get("reserved")
        first.error("stock", f"{error.message} ({reserved} reserved right now)")
    else:
        first.error(None, error.message)


def _apply(vendor_id: int, rows: list[_Row], existing: dict[str, Variant]) -> dict[int, str]:
    """Run the catalog services for every product group; the action taken for each row."""
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        key = row.cells.get("product_key") or row.cells.get("title", "")
        groups.setdefault(key.casefold(), []).append(row)
    actions: dict[int, str] = {}
    for group in groups.values():
        if any(row.errors for row in group):
            continue  # the services cannot be asked about a row that did not parse
        fields = _product_fields(group)
        status = ProductStatus(fields["status"].lower()) if fields["status"] else None
        named = fields["tax_category"].lower()
        tax_category = TaxCategory(named) if named else None
        known = [row for row in group if row.sku in existing]
        product_ids = {existing[row.sku].product_id for row in known}
        if len(product_ids) > 1:
            for row in known:
                row.error("sku", "These SKUs belong to different products; give them one each.")
            continue
        fresh = [row for row in group if row.sku not in existing]
        try:
            if not product_ids:
                catalog.create_product(
                    vendor_id,
                    catalog.ProductInput(
                        title=fields["title"],
                        description=fields["description"],
                        brand=fields["brand"] or None,
                        category=fields["category"] or None,
                        status=status or ProductStatus.DRAFT,
                        variants=[_variant_input(row) for row in fresh],
                        tax_category=tax_category or TaxCategory.STANDARD,
                    ),
                )
                actions.update({row.number: "created" for row in fresh})
                continue
            [product_id] = product_ids
            changes: dict[str, Any] = {"title": fields["title"], "status": status}
            if fields["description"]:
                changes["description"] = fields["description"]
            if fields["brand"]:
                changes["brand"] = fields["brand"]
            if fields["category"]:
                changes["category"] = fields["category"]
            if tax_category is not None:
                changes["tax_category"] = tax_category
            catalog.update_product(vendor_id, product_id, **changes)
        except DomainError as error:
            _service_errors(error, group[0], fresh)
            continue
        for row in known:
            try:
                catalog.update_variant(
                    vendor_id,
                    existing[row.sku].id,
                    price_cents=row.price_cents,
                    stock=row.stock,
                    attributes=row.attributes,
                    weight_grams=row.weight_grams,
                )
            except DomainError as error:
                _service_errors(error, row, [row])
            else:
                actions[row.number] = "updated"
        for row in fresh:
            try:
                catalog.add_variant(vendor_id, product_id, _variant_input(row))
            except DomainError as error:
                _service_errors(error, row, [row])
            else:
                actions[row.number] = "created"
    return actions


def _variant_input(row: _Row) -> catalog.VariantInput:
    return catalog.VariantInput(
        sku=row.sku,
        price_cents=row.price_cents or 0,
        stock=row.stock or 0,
        attributes=row.attributes or {},
        weight_grams=row.weight_grams or 0,
    )


def import_products_csv(vendor_id: int, data: bytes) -> ImportResult:
    """Create and update this vendor's products and variants from a CSV file's bytes.

    Nothing is changed unless every row is accepted; the result lists every row's outcome and
    every error. Never raises for what is in the file.
    """
    rows, refused = _read(data)
    if refused is not None:
        return refused
    seen: dict[str, int] = {}
    for row in rows:
        _parse_row(row)
        if row.sku:
            if row.sku in seen:
                row.error("sku", f"The SKU {row.sku} is already on row {seen[row.sku]}.")
            else:
                seen[row.sku] = row.number
    actions: dict[int, str] = {}
    try:
        with transaction():
            catalog.get_vendor(vendor_id)
            existing = {
                variant.sku: variant
                for variant in db.session.scalars(
                    select(Variant).where(
                        Variant.vendor_id == vendor_id, Variant.sku.in_(list(seen))
                    )
                )
            }
            actions = _apply(vendor_id, rows, existing)
            if any(row.errors for row in rows):
                raise _Rollback()
    except _Rollback:
        pass
    errors = [error for row in rows for error in row.errors]
    results = [
        RowResult(
            row.number,
            row.sku,
            "error" if row.errors else actions.get(row.number, "unchecked"),
            row.errors,
        )
        for row in rows
    ]
    return ImportResult(imported=not errors, rows=results, errors=errors)
