"""RQ jobs behind the search outbox rows: take ids, read the committed state, write the index."""

from __future__ import annotations

from marketplace.search import indexing


def index_product(product_id: int) -> None:
    """Update (or delete) one product's document. Idempotent."""
    indexing.apply_products([product_id])


def index_vendor(vendor_id: int) -> None:
    """Re-index every product of a vendor (approved, suspended or renamed). Idempotent."""
    indexing.apply_products(indexing.vendor_product_ids(vendor_id))


def index_stock(variant_ids: list[int], product_ids: list[int] | None = None) -> None:
    """Stock moved for these variants/products: rewrite the documents whose in-stock flag (or
    anything else) disagrees with the committed database. Idempotent; a retry after the index
    was broken, rebuilt or swapped simply compares again."""
    indexing.apply_products(indexing.stock_product_ids(variant_ids, product_ids or ()))
