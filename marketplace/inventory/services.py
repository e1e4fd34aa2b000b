"""Moving stock. Every change is one guarded UPDATE, so concurrent writers never oversell."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, insert, select, update
from sqlalchemy.orm.util import identity_key

from marketplace import metrics
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


def _merged(lines: list[tuple[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for variant_id, quantity in lines:
        merged[variant_id] = merged.get(variant_id, 0) + quantity
    return merged


def refuse_if_short(lines: list[tuple[Variant, int]]) -> None:
    """Refuse before anything is written when the rows just read already show too little stock.

    A read, not a hold: the guarded updates of `reserve` stay what decides. What it saves is
    the losers of a race for the last units (a hot SKU) inserting an order and rolling it back.

    :raises OutOfStock: with `details.variant_ids`, as `reserve` would.
    """
    available = {variant.id: variant.available for variant, _ in lines}
    asked = _merged([(variant.id, quantity) for variant, quantity in lines])
    short = sorted(v for v, quantity in asked.items() if available[v] < quantity)
    if short:
        raise OutOfStock(details={"variant_ids": short})


def reserve(order_id: int, lines: list[tuple[int, int]], expires_at: datetime) -> None:
    """Hold `quantity` of each `(variant_id, quantity)` for an order, in the caller's transaction.

    Guarded updates in variant-id order, so concurrent checkouts never oversell and never
    deadlock on each other's rows. They come after the reservation rows: a caller that reserves
    last holds the variants' row locks for no more than its commit.

    :raises OutOfStock: with `details.variant_ids`; the caller's transaction (or savepoint)
        must roll back, reservation rows with it.
    """
    merged = _merged(lines)
    now = utcnow()
    db.session.execute(
        _insert_reservation(),
        [
            {
                "order_id": order_id,
                "variant_id": variant_id,
                "quantity": merged[variant_id],
                "status": ReservationStatus.ACTIVE,
                "expires_at": expires_at,
                "created_at": now,
                "updated_at": now,
            }
            for variant_id in sorted(merged)
        ],
    )
    short: list[int] = []
    # Only a variant left with nothing available can take its product out of stock in the
    # search index; RETURNING says which, without a query per line (SQLite before 3.35 has no
    # RETURNING: then every line is recorded). The index job decides; nothing here reads it.
    returning = db.session.get_bind().dialect.update_returning
    sold_out: list[int] = []
    guarded = _guarded_hold(returning)
    for variant_id in sorted(merged):
        params = {"variant_id": variant_id, "quantity": merged[variant_id]}
        if returning:
            left = db.session.execute(guarded, params).scalar_one_or_none()
            if left is None:
                short.append(variant_id)
            elif left == 0:
                sold_out.append(variant_id)
        elif db.session.execute(guarded, params).rowcount != 1:
            short.append(variant_id)
    if short:
        raise OutOfStock(details={"variant_ids": short})
    for variant_id in merged:  # loaded copies of these rows are stale now
        loaded = db.session.identity_map.get(identity_key(Variant, variant_id))
        if loaded is not None:
            db.session.expire(loaded, ["reserved"])
    search_index.stock_changed(variant_ids=sold_out if returning else sorted(merged))
    metrics.reservations("created", len(merged))


@functools.cache
def _guarded_hold(returning: bool) -> Any:
    """The guarded UPDATE of one variant (`variant_id`, `quantity`), built once: it runs per
    line of every checkout."""
    table = Variant.__table__
    quantity = bindparam("quantity", type_=Integer)
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("variant_id"),
            table.c.on_hand - table.c.reserved >= quantity,
        )
        .values(reserved=table.c.reserved + quantity)
    )
    return statement.returning(table.c.on_hand - table.c.reserved) if returning else statement


@functools.cache
def _insert_reservation() -> Any:
    return insert(Reservation.__table__)


def _settle(
    order_id: int,
    to: ReservationStatus,
    variant_ids: list[int] | None = None,
    *,
    event: str | None = None,
) -> int:
    """Move the order's active reservations to `to`; stock moves only for rows that changed.

    One guarded UPDATE claims the rows still active (RETURNING what it claimed, so a row
    settled by someone else meanwhile keeps their stock move), then one batched UPDATE moves
    the stock, in variant-id order like `reserve`.
    """
    claim = (
        update(Reservation)
        .where(Reservation.order_id == order_id, Reservation.status == ReservationStatus.ACTIVE)
        .values(status=to, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if variant_ids is not None:
        claim = claim.where(Reservation.variant_id.in_(variant_ids))
    if db.session.get_bind().dialect.update_returning:
        claimed = sorted(
            (variant_id, quantity)
            for variant_id, quantity in db.session.execute(
                claim.returning(Reservation.variant_id, Reservation.quantity)
            )
        )
    else:  # SQLite before 3.35: claim row by row
        claimed = _claim_one_by_one(order_id, to, variant_ids)
    if claimed:
        stock = {"reserved": Variant.reserved - bindparam("units")}
        if to is ReservationStatus.COMMITTED:
            stock["on_hand"] = Variant.on_hand - bindparam("units")
        db.session.execute(
            update(Variant.__table__).where(Variant.id == bindparam("variant")).values(**stock),
            [{"variant": variant_id, "units": quantity} for variant_id, quantity in claimed],
        )
    moved = [variant_id for variant_id, _ in claimed]
    if to is ReservationStatus.RELEASED:
        # Committing leaves on_hand - reserved as it was: only a release can flip the flag.
        search_index.stock_changed(variant_ids=moved)
    _expire_stock_copies(moved)
    metrics.reservations(event or to.value, len(moved))
    return len(moved)


def _claim_one_by_one(
    order_id: int, to: ReservationStatus, variant_ids: list[int] | None
) -> list[tuple[int, int]]:
    query = (
        select(Reservation.id, Reservation.variant_id, Reservation.quantity)
        .where(Reservation.order_id == order_id, Reservation.status == ReservationStatus.ACTIVE)
        .order_by(Reservation.variant_id)
    )
    if variant_ids is not None:
        query = query.where(Reservation.variant_id.in_(variant_ids))
    claimed = []
    for reservation_id, variant_id, quantity in db.session.execute(query).all():
        moved = db.session.execute(
            update(Reservation)
            .where(Reservation.id == reservation_id, Reservation.status == ReservationStatus.ACTIVE)
            .values(status=to, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:
            claimed.append((variant_id, quantity))
    return claimed


def _expire_stock_copies(variant_ids: list[int]) -> None:
    """Loaded reservations and these variants are stale after the Core updates above; the
    rest of the session (the order, its parts and items) is not, and stays loaded."""
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Reservation):
            db.session.expire(obj)
    for variant_id in variant_ids:
        loaded = db.session.identity_map.get(identity_key(Variant, variant_id))
        if loaded is not None:
            db.session.expire(loaded)


def release(order_id: int, *, expired: bool = False) -> int:
    """Give the order's held stock back (expiry, cancellation, failed payment). Idempotent.
    `expired`: because the hold ran out (counted apart in the metrics)."""
    return _settle(order_id, ReservationStatus.RELEASED, event="expired" if expired else None)


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
    _expire_stock_copies([variant_id])


def commit(order_id: int) -> int:
    """The order is paid: held stock leaves on hand for good. Idempotent."""
    return _settle(order_id, ReservationStatus.COMMITTED)


def held_units_column(order_ids: Select[tuple[int]]) -> ColumnElement[int]:
    """Units these orders hold right now, as a column for a caller's statement."""
    return (
        select(func.coalesce(func.sum(Reservation.quantity), 0))
        .where(Reservation.order_id.in_(order_ids), Reservation.status == ReservationStatus.ACTIVE)
        .scalar_subquery()
    )


def active_reservations(order_id: int) -> list[Reservation]:
    return list(
        db.session.scalars(
            select(Reservation).where(
                Reservation.order_id == order_id, Reservation.status == ReservationStatus.ACTIVE
            )
        )
    )
