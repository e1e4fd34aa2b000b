"""A broken search index never fails a checkout, a cancel, a refund, a return or an expiry
(issue 15), and search itself recovers by itself or answers 503 — never 500.

Each fault is done to the real index directory: its generation deleted, the writer lock
held, its segment files overwritten, a generation swapped in while a stock move runs, the
cached reader closed, a refresh that fails half-way (what Whoosh's `Searcher.refresh` did to
the web worker in the acceptance run). Jobs go to the queue (as with a real worker), and the
test plays the worker: everything but the index jobs runs while the index is broken, the
index jobs once it was repaired (by itself, or by `search reindex`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from whoosh import index as whoosh_index
from whoosh.index import FileIndex

from marketplace.catalog.models import Variant
from marketplace.db import db, transaction, utcnow
from marketplace.inventory import services as inventory
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from marketplace.orders import services as orders
from marketplace.orders.models import Order, OrderStatus
from marketplace.search import index as storage
from marketplace.search import indexing
from marketplace.search import services as search
from tests.functional.money import checkout, onboarded_vendor, pay
from tests.helpers import assert_error, make_buyer, make_product, make_vendor, page_app

# Whoosh leaves a corrupt segment's file open when it fails to open it; the file is closed
# when the failure is dropped, with a ResourceWarning (ignored outside tests).
LEAKS_A_FILE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def clean_index(app: Flask) -> Iterator[None]:
    base = storage.base_dir(app)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    yield
    storage.close_searcher(app)
    shutil.rmtree(base, ignore_errors=True)


# --- playing the worker ----------------------------------------------------------------------


def _pending(search_jobs: bool) -> list[int]:
    db.session.rollback()
    rows = db.session.execute(
        select(OutboxMessage.id, OutboxMessage.job)
        .where(OutboxMessage.status == OutboxStatus.PENDING)
        .order_by(OutboxMessage.id)
    ).all()
    return [i for i, job in rows if job.startswith("marketplace.search.") == search_jobs]


def run_jobs(*, search_jobs: bool) -> int:
    """Run the pending outbox rows of one kind as the RQ worker would; returns how many ran.
    Every job must succeed (the search ones are run only once the index is readable)."""
    ran = 0
    for _ in range(5):  # a job may add rows of its own
        ids = _pending(search_jobs)
        if not ids:
            break
        for message_id in ids:
            outbox.run_message(message_id)
            ran += 1
    db.session.rollback()
    return ran


# --- the faults ----------------------------------------------------------------------------


def _live(app: Flask) -> Path:
    live = storage.current_dir(storage.base_dir(app))
    assert live is not None
    return live


def _swap_in_a_copy(app: Flask) -> None:
    """What a rebuild does: a complete new generation, switched to, the old ones removed."""
    base = storage.base_dir(app)
    live = _live(app)
    copy = base / f"{storage.GENERATION_PREFIX}99999999T999999999999-{os.urandom(3).hex()}"
    shutil.copytree(live, copy)
    storage.switch_to(copy, base)
    shutil.rmtree(live, ignore_errors=True)


class Fault:
    """Breaks the index on `start`, repairs it on `stop`; says what search answers meanwhile."""

    search_status = 200  # what GET /api/v1/products?q= answers while broken
    needs_reindex = False  # repaired only by `search reindex`

    def start(self, app: Flask, stack: ExitStack, monkeypatch: pytest.MonkeyPatch) -> None: ...

    def stop(self) -> None: ...

    def check(self) -> None:
        """Assert the fault really happened while the stock moved."""


class Deleted(Fault):
    needs_reindex = True

    def start(self, app, stack, monkeypatch):
        shutil.rmtree(_live(app))


class WriterLocked(Fault):
    """The rebuild (or a job) holds both locks: ours and Whoosh's own."""

    def start(self, app, stack, monkeypatch):
        stack.enter_context(storage.writer_lock(timeout=1))
        writer = whoosh_index.open_dir(str(_live(app))).writer()
        stack.callback(writer.cancel)


class Corrupt(Fault):
    search_status = 503
    needs_reindex = True

    def start(self, app, stack, monkeypatch):
        storage.close_searcher(app)  # a worker that opens the index now
        for path in _live(app).iterdir():
            if path.is_file() and not path.name.startswith("_MAIN_"):  # segments, not the TOC
                path.write_bytes(b"\x00garbage\xff" * 64)


class SwappedMidRequest(Fault):
    """A new generation goes live while every stock move runs, the old one is deleted."""

    swaps = 0

    def start(self, app, stack, monkeypatch):
        assert storage.searcher() is not None  # this thread holds a searcher on the old one
        for name in ("reserve", "_settle", "restock"):
            real = getattr(inventory, name)

            def swapping(*args: Any, _real: Callable[..., Any] = real, **kwargs: Any) -> Any:
                _swap_in_a_copy(app)
                self.swaps += 1
                return _real(*args, **kwargs)

            monkeypatch.setattr(inventory, name, swapping)

    def check(self):
        assert self.swaps >= 4  # 3 checkouts, a cancel, an expiry


class ReaderClosed(Fault):
    """The cached searcher's reader was closed under it (a refresh that died half-way)."""

    def start(self, app, stack, monkeypatch):
        opened = storage.searcher()
        assert opened is not None
        opened.reader().close()


class RefreshFails(Fault):
    """Whoosh's refresh marks the searcher closed, then opening the new reader fails once."""

    def start(self, app, stack, monkeypatch):
        assert storage.searcher() is not None
        # the index moves on (a job wrote), so the next call refreshes
        writer = whoosh_index.open_dir(str(_live(app))).writer()
        writer.commit(merge=False)
        real = FileIndex.reader
        calls = {"n": 0}

        def failing_once(self: FileIndex, *args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise FileNotFoundError("segment merged away by the writer")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(FileIndex, "reader", failing_once)


FAULTS = {
    "deleted": Deleted,
    "writer-locked": WriterLocked,
    "corrupt-segment": pytest.param(Corrupt, marks=LEAKS_A_FILE),
    "generation-swapped-mid-request": SwappedMidRequest,
    "cached-reader-closed": ReaderClosed,
    "refresh-fails-half-way": RefreshFails,
}


def _stock(variant_id: int) -> tuple[int, int]:
    db.session.rollback()
    variant = db.session.get(Variant, variant_id)
    return variant.on_hand, variant.reserved


def _titles(api: Any, **params: Any) -> list[str]:
    response = api.get("/products", query_string=params)
    assert response.status_code == 200, response.get_json()
    return sorted(item["title"] for item in response.get_json()["items"])


def _order(api: Any, buyer: Any, variant_id: int, quantity: int, key: str) -> int:
    item = {"variant_id": variant_id, "quantity": quantity}
    added = api.post("/cart/items", buyer.token, json=item)
    assert added.status_code in (200, 201), added.get_json()
    return checkout(api, buyer, key)["order"]["id"]


def _search_answers(api: Any, web: Any, expected: int) -> None:
    """API and storefront search while the index is broken: `expected`, never a 500."""
    response = api.get("/products", query_string={"q": "kayak"})
    assert response.status_code == expected, response.get_data(as_text=True)
    page = web.get("/products?q=kayak")
    assert page.status_code == expected
    if expected == 503:
        assert_error(response, 503, "search_unavailable")
        assert_error(api.get("/search/suggest", query_string={"q": "kay"}), 503)
        assert "data-search-unavailable" in page.text
    else:
        assert "data-search-unavailable" not in page.text


@pytest.mark.parametrize("make_fault", FAULTS.values(), ids=FAULTS.keys())
def test_stock_moves_succeed_with_a_broken_index_and_search_recovers(
    api, app, runner, monkeypatch, make_fault
):
    kayak = make_product(make_vendor(), title="Kayak", stock=2).variants[0].id
    paddle = make_product(make_vendor(), title="Paddle", stock=1).variants[0].id
    assert _titles(api, in_stock="true") == ["Kayak", "Paddle"]
    app.config["JOBS_SYNCHRONOUS"] = False  # a worker runs the jobs: the test, below
    fault = make_fault()
    with ExitStack() as stack, page_app() as web_app:
        web = web_app.test_client()
        fault.start(app, stack, monkeypatch)

        first, second, third = make_buyer(), make_buyer(), make_buyer()
        sold_out = _order(api, first, kayak, 2, "a")  # the kayak sells out
        expiring = _order(api, second, paddle, 1, "b")  # so does the paddle
        cancelled = api.post(f"/orders/{sold_out}/cancel", first.token)
        assert cancelled.status_code == 200, cancelled.get_json()
        assert cancelled.get_json()["status"] == "cancelled"
        assert orders.expire_order(expiring, now=utcnow() + timedelta(days=1))
        kept = _order(api, third, paddle, 1, "c")  # sold out again, for good
        assert run_jobs(search_jobs=False) >= 0  # mail and the rest do not need the index

        assert _stock(kayak) == (2, 0)
        assert _stock(paddle) == (1, 1)
        for order_id, status in ((sold_out, "cancelled"), (expiring, "cancelled")):
            assert db.session.get(Order, order_id).status is OrderStatus(status)
        assert db.session.get(Order, kept).status is OrderStatus.PENDING_PAYMENT
        _search_answers(api, web, fault.search_status)
        fault.check()
        monkeypatch.undo()  # the mid-request swaps and failing reader stop here
        fault.stop()

    if fault.needs_reindex:
        result = runner.invoke(args=["search", "reindex", "--quiet"])
        assert result.exit_code == 0, result.output
    assert run_jobs(search_jobs=True) >= 1
    assert _titles(api, in_stock="true") == ["Kayak"]
    assert _titles(api, q="paddle") == ["Paddle"]
    assert indexing.check().ok


@LEAKS_A_FILE
def test_the_searcher_recovers_by_itself_once_the_index_is_readable_again(api, app, caplog):
    make_product(make_vendor(), title="Kayak", stock=2)
    assert _titles(api, q="kayak") == ["Kayak"]
    live = _live(app)
    hidden = live.with_name(live.name + ".away")
    storage.close_searcher(app)
    files = sorted(p for p in live.iterdir() if p.is_file() and not p.name.startswith("_MAIN_"))
    shutil.copytree(live, hidden)
    for path in files:
        path.write_bytes(b"not a segment")

    caplog.set_level(logging.ERROR, logger="marketplace.search.services")
    assert_error(api.get("/products", query_string={"q": "kayak"}), 503, "search_unavailable")
    failures = [r for r in caplog.records if r.name == "marketplace.search.services"]
    assert len(failures) == 1  # one request, one log record (and no "unhandled error")
    assert not [r for r in caplog.records if "unhandled" in r.getMessage()]

    for path in files:  # readable again: the same files, as before
        shutil.copyfile(hidden / path.name, path)
    assert _titles(api, q="kayak") == ["Kayak"]
    assert search.suggest("kay") == ["Kayak"]


@LEAKS_A_FILE
def test_a_paid_order_is_cancelled_refunded_and_returned_with_the_index_corrupt(
    api, app, webhooks, runner, monkeypatch
):
    from marketplace.payouts import ledger, reconciliation

    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, title="Kayak", price_cents=2000, stock=5)
    other = make_product(vendor, title="Paddle", price_cents=1000, stock=5)
    variant_id, other_id = product.variants[0].id, other.variants[0].id
    buyer = make_buyer()
    for vid, quantity in ((variant_id, 3), (other_id, 1)):
        api.post("/cart/items", buyer.token, json={"variant_id": vid, "quantity": quantity})
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    order_id = body["order"]["id"]
    vo_id = body["order"]["vendor_orders"][0]["id"]
    items = {i["variant_id"]: i["id"] for i in body["order"]["vendor_orders"][0]["items"]}
    assert _titles(api, q="kayak") == ["Kayak"]

    app.config["JOBS_SYNCHRONOUS"] = False
    with ExitStack() as stack:
        Corrupt().start(app, stack, monkeypatch)
        for path, data in (("ship", {"carrier": "UPS", "tracking_number": "1"}), ("deliver", {})):
            response = api.post(f"/vendor/orders/{vo_id}/{path}", vendor.token, json=data)
            assert response.status_code == 200, response.get_json()
        run_jobs(search_jobs=False)
        refund = api.post(
            f"/vendor/orders/{vo_id}/refund",
            vendor.token,
            json={
                "reason": "scratched",
                "items": [{"order_item_id": items[other_id], "quantity": 1}],
                "restock": True,
            },
        )
        assert refund.status_code == 201, refund.get_json()
        returned = api.post(
            f"/orders/{order_id}/items/{items[variant_id]}/return",
            buyer.token,
            json={"quantity": 2, "reason": "Too heavy"},
        )
        assert returned.status_code == 201, returned.get_json()
        accepted = api.post(
            f"/vendor/returns/{returned.get_json()['id']}/accept",
            vendor.token,
            json={"restock": True},
        )
        assert accepted.status_code == 200, accepted.get_json()
        assert accepted.get_json()["status"] == "accepted"
        run_jobs(search_jobs=False)
        webhooks.flush_webhooks()
        run_jobs(search_jobs=False)
        assert_error(api.get("/products", query_string={"q": "kayak"}), 503, "search_unavailable")

    assert _stock(variant_id) == (5 - 3 + 2, 0)
    assert _stock(other_id) == (5 - 1 + 1, 0)  # a refund by item puts it back on the shelf
    db.session.rollback()
    assert ledger.balance_all() == 0
    report = reconciliation.reconcile()
    assert report["mismatches"] == [] and report["ok"] is True
    assert runner.invoke(args=["search", "reindex", "--quiet"]).exit_code == 0
    run_jobs(search_jobs=True)
    assert _titles(api, q="kayak") == ["Kayak"]
    assert indexing.check().ok


def test_a_buyer_cancel_after_capture_restocks_with_the_index_directory_gone(
    api, app, webhooks, runner
):
    vendor = onboarded_vendor(api, webhooks)
    variant_id = make_product(vendor, title="Stove", price_cents=3000, stock=2).variants[0].id
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 2})
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    assert _titles(api, in_stock="true") == []

    app.config["JOBS_SYNCHRONOUS"] = False
    shutil.rmtree(storage.base_dir(app))  # the whole directory, lock file and all
    vo_id = body["order"]["vendor_orders"][0]["id"]
    response = api.post(f"/vendor/orders/{vo_id}/cancel", vendor.token, json={"reason": "none"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "cancelled"
    run_jobs(search_jobs=False)
    webhooks.flush_webhooks()
    assert _stock(variant_id) == (2, 0)
    assert _titles(api) == ["Stove"]  # no index: the listing comes from SQL

    assert runner.invoke(args=["search", "reindex", "--quiet"]).exit_code == 0
    run_jobs(search_jobs=True)
    assert _titles(api, in_stock="true") == ["Stove"]
    assert indexing.check().ok


def test_stock_moves_never_open_the_index(api, app, monkeypatch):
    """Checkout, cancel and expiry with every way into the index raising."""
    variant_id = make_product(make_vendor(), title="Lamp", stock=1).variants[0].id

    def untouchable(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a stock move opened the search index")

    app.config["JOBS_SYNCHRONOUS"] = False
    monkeypatch.setattr(storage, "searcher", untouchable)
    monkeypatch.setattr(whoosh_index, "open_dir", untouchable)
    monkeypatch.setattr(FileIndex, "reader", untouchable)
    first, second = make_buyer(), make_buyer()
    a = _order(api, first, variant_id, 1, "a")
    assert api.post(f"/orders/{a}/cancel", first.token).status_code == 200
    b = _order(api, second, variant_id, 1, "b")
    assert orders.expire_order(b, now=utcnow() + timedelta(days=1))
    assert _stock(variant_id) == (1, 0)


def test_checkout_records_a_stock_job_only_when_it_sells_out(api, app):
    """The checkout's share of search is one outbox row, and only when a variant sold out."""
    lamp = make_product(make_vendor(), title="Lamp", stock=2).variants[0].id
    app.config["JOBS_SYNCHRONOUS"] = False

    def stock_rows() -> list[list[Any]]:
        db.session.rollback()
        return list(
            db.session.scalars(
                select(OutboxMessage.args)
                .where(OutboxMessage.job == indexing.INDEX_STOCK_JOB)
                .order_by(OutboxMessage.id)
            )
        )

    first, second = make_buyer(), make_buyer()
    _order(api, first, lamp, 1, "a")
    assert stock_rows() == []  # one left: nothing for the index to learn
    sold_out = _order(api, second, lamp, 1, "b")
    assert stock_rows() == [[[lamp], []]]
    with transaction():
        assert inventory.commit(sold_out) == 1  # paid: on_hand and reserved drop together
    assert _stock(lamp) == (1, 1)
    assert stock_rows() == [[[lamp], []]]  # ... so the in-stock flag cannot flip
