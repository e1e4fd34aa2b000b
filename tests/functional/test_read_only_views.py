"""Views that only read run without BEGIN and ROLLBACK on PostgreSQL (issue 11).

Each transaction costs the request two extra round trips; a catalog read needs none, since
PostgreSQL's READ COMMITTED gives every statement its own snapshot anyway. SQLite is in-process
and keeps its transactions. The connection goes back to the pool in its usual mode, so the
next request that writes on it is atomic again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from marketplace.db import db
from tests.helpers import Api, make_buyer, make_product, make_vendor


@contextmanager
def autocommit_seen() -> Iterator[list[bool]]:
    """For each statement the block sends: did it run outside any transaction?"""
    seen: list[bool] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("BEGIN"):
            return
        dbapi = conn.connection.dbapi_connection
        if conn.dialect.name == "postgresql":
            seen.append(bool(dbapi.autocommit))
        else:
            seen.append(not dbapi.in_transaction)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def _expected_for_reads() -> bool:
    return db.engine.dialect.name == "postgresql"


def test_catalog_reads_run_outside_transactions_and_writes_inside(client: Any, api: Api) -> None:
    vendor = make_vendor()
    product = make_product(vendor, price_cents=1500, stock=5)
    product_id, variant_id, vendor_id = product.id, product.variants[0].id, vendor.vendor.id
    buyer = make_buyer()
    reads = [
        f"/api/v1/products/{product_id}",
        "/api/v1/products?q=",
        "/",
        "/products",
        f"/products/{product_id}",
        f"/sellers/{vendor_id}",
    ]
    for url in reads:
        db.session.remove()
        with autocommit_seen() as seen:
            response = client.get(url)
        assert response.status_code == 200, url
        assert seen, f"{url} sent no statement"
        assert set(seen) == {_expected_for_reads()}, f"{url}: {seen}"

    # The next write on the same pooled connection is one transaction again.
    db.session.remove()
    with autocommit_seen() as seen:
        added = api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    assert added.status_code == 201, added.get_json()
    assert seen and not any(seen), seen
