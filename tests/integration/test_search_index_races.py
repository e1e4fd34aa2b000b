"""Issue 15 with real processes on PostgreSQL: the indexer rebuilding generations, merging
segments and running index jobs in a loop while several processes check out, search and
cancel. No answer is a 5xx, stock is conserved, and once the indexer has run the pending
jobs the index agrees with the database.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from marketplace.cart import services as carts
from marketplace.catalog.models import Variant
from marketplace.db import db
from marketplace.inventory.models import Reservation, ReservationStatus
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from marketplace.search import index as storage
from marketplace.search import indexing
from marketplace.search import services as search
from tests.helpers import make_buyer, make_product, make_vendor
from tests.integration import concurrency_workers as workers
from tests.integration import search_race_workers as race

SHOPPERS, BUYERS_EACH = 3, 6
STOCK = {"Kayak red": 1, "Kayak blue": 2, "Kayak green": 40}  # red and blue sell out


def _held(variant_id: int) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.variant_id == variant_id, Reservation.status == ReservationStatus.ACTIVE
        )
    )


def test_checkouts_and_cancels_while_the_indexer_swaps_generations(
    pg_app: Flask, pg_config_dict: dict, tmp_path: Path
):
    vendor = make_vendor()
    variants = {
        title: make_product(vendor, title=title, stock=stock).variants[0].id
        for title, stock in STOCK.items()
    }
    order = list(variants.values())
    tokens = []
    for n in range(SHOPPERS * BUYERS_EACH):
        buyer = make_buyer()
        carts.add_item(buyer.id, order[n % len(order)], 1)
        tokens.append(buyer.token)
    assert len(search.search("kayak", in_stock=True).product_ids) == 3  # indexed, all in stock

    config = {**pg_config_dict, "JOBS_SYNCHRONOUS": False}  # index jobs wait for the indexer
    pg_app.config["JOBS_SYNCHRONOUS"] = False
    done = [str(tmp_path / f"shopper-{i}.done") for i in range(SHOPPERS)]
    jobs = [(race.shop, {"tokens": tokens[i::SHOPPERS], "done": done[i]}) for i in range(SHOPPERS)]
    jobs.append((race.churn_the_index, {"done": done, "limit": 120}))
    *shopped, churned = workers.run_concurrently(config, jobs, timeout=240)

    answers = [answer for shopper in shopped for answer in shopper]
    assert [a for a in answers if a[1] >= 500] == []
    kinds = Counter((what, status) for what, status, _ in answers)
    assert kinds[("search", 200)] == kinds[("suggest", 200)] == SHOPPERS * BUYERS_EACH, kinds
    assert {(w, s) for w, s, _ in answers if w == "checkout"} <= {
        ("checkout", 201),
        ("checkout", 409),
    }
    assert kinds[("checkout", 409)] > 0, "nothing sold out: the in-stock flags never flipped"
    cancels = [status for what, status, _ in answers if what == "cancel"]
    assert cancels and set(cancels) == {200}
    assert churned["rebuilds"] >= 2 and churned["merges"] >= 2, churned

    db.session.rollback()
    for title, variant_id in variants.items():
        variant = db.session.get(Variant, variant_id)
        assert variant.on_hand == STOCK[title]  # nothing was paid for
        assert variant.reserved == _held(variant_id)
        assert 0 <= variant.reserved <= STOCK[title]

    # The indexer's last round may have missed the last stock moves: run what is pending.
    pending = db.session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.job.like("marketplace.search.%"),
        )
    ).all()
    db.session.rollback()
    for message_id in pending:
        outbox.run_message(message_id)
    assert indexing.check().ok
    in_stock = {
        variant_id
        for variant_id in variants.values()
        if (v := db.session.get(Variant, variant_id)).on_hand > v.reserved
    }
    found = search.search("kayak", in_stock=True).product_ids
    assert len(found) == len(in_stock)
    storage.close_searcher(pg_app)
    shutil.rmtree(storage.base_dir(pg_app), ignore_errors=True)
