"""Moving stock. Every change is one guarded UPDATE, so concurrent writers never oversell."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm.util import identity_key

from marketplace.catalog.models import Variant
from marketplace.db import db, utcnow
from marketplace.errors import Conflict
from marketplace.inventory.models import Reservation, ReservationStatus
from marketplace.search import indexing as search_index


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


class OutOfStock(Conflict):
    code = "out_of_stock"
    message = "Some items are no longer available in the quantity asked for."


class _Short(OutOfStock):
    """Some guarded update found too little stock; which ones is read after the rollback."""

    def __init__(self, wanted: dict[int, int]):
        super().__init__()
        self.wanted = wanted


def shortage(error: OutOfStock) -> OutOfStock:
    """`error` with `details.variant_ids` filled in, read after the failed checkout's rollback
    (the batched update says only that some line was short, not which)."""
    if not isinstance(error, _Short):
        return error
    available = dict(
        db.session.execute(
            select(Variant.id, Variant.on_hand - Variant.reserved).where(
                Variant.id.in_(error.wanted)
            )
        ).all()
    )
    short = sorted(v for v, q in error.wanted.items() if available.get(v, 0) < q)
    return OutOfStock(details={"variant_ids": short or sorted(error.wanted)})


def reserve(order_id: int, lines: list[tuple[int, int]], expires_at: datetime) -> list[Reservation]:
    """Hold `quantity` of each `(variant_id, quantity)` for an order, in the caller's transaction.

    Guarded updates in variant-id order, so concurrent checkouts never oversell and never
    deadlock on each other's rows.

    :raises OutOfStock: the caller's transaction must roll back, then ask `shortage(error)`
        which variants were short.
    """
    merged: dict[int, int] = {}
    for variant_id, quantity in lines:
        merged[variant_id] = merged.get(variant_id, 0) + quantity
    held = sorted(merged)
    # One executemany in variant-id order: one round trip for the whole cart, and rows are
    # locked in the same order by every checkout, so two never deadlock on each other.
    variants = Variant.__table__.c
    result = db.session.connection().execute(
        update(Variant.__table__)
        .where(
            variants.id == bindparam("variant_id"),
            variants.on_hand - variants.reserved >= bindparam("quantity"),
        )
        .values(reserved=variants.reserved + bindparam("quantity")),
        [{"variant_id": v, "quantity": merged[v]} for v in held],
    )
    if result.rowcount != len(held):
        raise _Short(merged)
    for variant_id in held:  # loaded copies of these rows are stale now
        loaded = db.session.identity_map.get(identity_key(Variant, variant_id))
        if loaded is not None:
            db.session.expire(loaded, ["reserved"])
    search_index.stock_changed(variant_ids=held)
    reservations = [
        Reservation(
            order_id=order_id,
            variant_id=variant_id,
            quantity=merged[variant_id],
            expires_at=expires_at,
        )
        for variant_id in held
    ]
    db.session.add_all(reservations)
    return reservations


def _settle(order_id: int, to: ReservationStatus, variant_ids: list[int] | None = None) -> int:
    """Move the order's active reservations to `to`; stock moves only for rows that changed."""
    query = (
        select(Reservation)
        .where(Reservation.order_id == order_id, Reservation.status == ReservationStatus.ACTIVE)
        .order_by(Reservation.variant_id)
    )
    if variant_ids is not None:
        query = query.where(Reservation.variant_id.in_(variant_ids))
    reservations = db.session.scalars(query).all()
    moved = 0
    for reservation in reservations:
        claimed = db.session.execute(
            update(Reservation)
            .where(Reservation.id == reservation.id, Reservation.status == ReservationStatus.ACTIVE)
            .values(status=to, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            continue  # settled by someone else meanwhile: their stock move stands
        stock = {"reserved": Variant.reserved - reservation.quantity}
        if to is ReservationStatus.COMMITTED:
            stock["on_hand"] = Variant.on_hand - reservation.quantity
        db.session.execute(
            update(Variant)
            .where(Variant.id == reservation.variant_id)
            .values(**stock)
            .execution_options(synchronize_session=False)
        )
        moved += 1
    search_index.stock_changed(variant_ids=[r.variant_id for r in reservations])
    db.session.expire_all()
    return moved


def release(order_id: int) -> int:
    """Give the order's held stock back (expiry, cancellation, failed payment). Idempotent."""
    return _settle(order_id, ReservationStatus.RELEASED)


def release_variants(order_id: int, variant_ids: list[int]) -> int:
    """Release only these variants' holds of the order (one vendor's part is cancelled)."""
    return _settle(order_id, ReservationStatus.RELEASED, variant_ids)


def restock(variant_id: int, quantity: int) -> None:
    """Sold units come back on hand (a cancellation after payment, a return)."""
    if quantity <= 0:
        return
    db.session.execute(
        update(Variant)
        .where(Variant.id == variant_id)
        .values(on_hand=Variant.on_hand + quantity)
        .execution_options(synchronize_session=False)
    )
    search_index.stock_changed(variant_ids=[variant_id])
    db.session.expire_all()


def commit(order_id: int) -> int:
    """The order is paid: held stock leaves on hand for good. Idempotent."""
    return _settle(order_id, ReservationStatus.COMMITTED)


def active_reservations(order_id: int) -> list[Reservation]:
    return list(
        db.session.scalars(
            select(Reservation).where(
                Reservation.order_id == order_id, Reservation.status == ReservationStatus.ACTIVE
            )
        )
    )
