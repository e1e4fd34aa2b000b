"""What the spawned processes of the search-index race run (see test_search_index_races).

Shoppers check out, search and cancel through the JSON API; the indexer rebuilds the index
into new generations, merges segments and runs the pending index jobs, in a loop, until every
shopper is done. Results are plain tuples (picklable).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Flask

from tests.integration.concurrency_workers import BARRIER_TIMEOUT

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def shop(app: Flask, barrier: Any, payload: dict[str, Any]) -> list[tuple[str, int, Any]]:
    """For each buyer: search, check out, search again, and cancel every other order.

    Returns `(what, status, detail)` per request; `detail` is the order id of a checkout, or
    the body of a 5xx answer.
    """
    client = app.test_client()
    answers: list[tuple[str, int, Any]] = []

    def note(what: str, response: Any, detail: Any = None) -> Any:
        body = response.get_json(silent=True)
        if response.status_code >= 500:
            detail = response.get_data(as_text=True)[:300]
        answers.append((what, response.status_code, detail))
        return body

    barrier.wait(BARRIER_TIMEOUT)
    try:
        for number, token in enumerate(payload["tokens"]):
            note("search", client.get("/api/v1/products?q=kayak&in_stock=true"))
            headers = {**_auth(token), "Idempotency-Key": f"race-{token[:12]}"}
            response = client.post(
                "/api/v1/checkout", json={"shipping_address": ADDRESS}, headers=headers
            )
            body = note("checkout", response)
            order_id = (body or {}).get("order", {}).get("id")
            answers[-1] = ("checkout", response.status_code, order_id or answers[-1][2])
            note("suggest", client.get("/api/v1/search/suggest?q=kay"))
            note("browse", client.get("/api/v1/products?sort=price_asc&in_stock=true"))
            if order_id and number % 2 == 0:
                cancel = f"/api/v1/orders/{order_id}/cancel"
                note("cancel", client.post(cancel, headers=_auth(token)))
    finally:
        Path(payload["done"]).touch()
    return answers


def churn_the_index(app: Flask, barrier: Any, payload: dict[str, Any]) -> dict[str, int]:
    """Rebuild into a new generation (switching `current`, deleting old ones), merge the live
    generation's segments and run the pending index jobs, round after round, until every
    shopper wrote its `done` file (or `limit` seconds passed). Returns what it did."""
    from sqlalchemy import select

    from marketplace.db import db
    from marketplace.jobs import outbox
    from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
    from marketplace.search import index as storage
    from marketplace.search import indexing

    done = [Path(p) for p in payload["done"]]
    counts = {"rebuilds": 0, "merges": 0, "jobs": 0}
    barrier.wait(BARRIER_TIMEOUT)
    deadline = time.monotonic() + payload["limit"]
    while not all(p.exists() for p in done) and time.monotonic() < deadline:
        indexing.reindex()
        counts["rebuilds"] += 1
        with storage.writer_lock():
            ix = storage.open_for_writing()
            writer = ix.writer()
            writer.commit(optimize=True)  # a merge into one segment, a new TOC generation
        counts["merges"] += 1
        pending = db.session.scalars(
            select(OutboxMessage.id).where(
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.job.like("marketplace.search.%"),
            )
        ).all()
        db.session.rollback()
        for message_id in pending:
            outbox.run_message(message_id)
            counts["jobs"] += 1
    return counts
