"""Moving stock. Every change is one guarded UPDATE, so concurrent writers never oversell."""

from __future__ import annotations

from sqlalchemy import update

from marketplace.catalog.models import Variant
from marketplace.db import db
from marketplace.errors import Conflict


class StockBelowReserved(Conflict):
    code = "stock_below_reserved"
    message = "Stock on hand cannot go below what is reserved for open checkouts."


def set_on_hand(variant_id: int, on_hand: int) -> None:
    """Set a variant's stock on hand; runs inside the caller's transaction.

    :raises StockBelowReserved: `on_hand` is less than the units reserved right now.
    """
    result = db.session.execute(
        update(Variant)
        .where(Variant.id == variant_id, Variant.reserved <= on_hand)
        .values(on_hand=on_hand)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        reserved = db.session.get(Variant, variant_id).reserved
        raise StockBelowReserved(details={"variant_id": variant_id, "reserved": reserved})
    variant = db.session.get(Variant, variant_id)
    if variant is not None:
        db.session.refresh(variant)
