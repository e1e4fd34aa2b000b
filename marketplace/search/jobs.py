"""RQ jobs behind the search outbox rows: take ids, read the committed state, write the index."""

from __future__ import annotations

from marketplace.search import indexing


def index_product(product_id: int) -> None:
    """Update (or delete) one product's document. Idempotent."""
    indexing.apply_products([product_id])


def index_vendor(vendor_id: int) -> None:
    """Re-index every product of a vendor (approved, suspended or renamed). Idempotent."""
    indexing.apply_products(indexing.vendor_product_ids(vendor_id))
