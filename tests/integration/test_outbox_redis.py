"""The outbox's claim, proven with a real Redis and real RQ worker processes.

ARCHITECTURE.md ("Jobs and outbox"): "a Redis outage delays side effects but loses none".
Orders are paid (through the emulator's webhooks), shipped and delivered while a private
redis-server is stopped; the requests still succeed and leave their outbox rows undispatched.
Redis comes back empty (no persistence: the jobs queued before the outage are gone too), the
periodic redispatch hands every row over, and a `flask --app wsgi worker --burst` process runs
them: every expected email is written exactly once, and a second round of dispatch (plus
every handler enqueued again directly) sends nothing twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from rq import Queue
from sqlalchemy import func, select

from marketplace import jobs
from marketplace.catalog.services import update_vendor_settings
from marketplace.db import db, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage
from marketplace.notifications.models import Notification, SentEmail
from marketplace.orders.models import VendorOrder
from tests.functional.money import checkout, emulator_state, objects, onboarded_vendor, pay
from tests.helpers import make_buyer, make_product
from tests.integration.redis_server import RedisServer, WorkerProcess, jobs_app, worker_env

LATER = timedelta(minutes=2)  # past outbox.STALE_AFTER: the periodic redispatch's view


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """`app` on a real loopback socket (for the emulator's webhooks); yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.daemon_threads = False  # server_close() then waits for requests still finishing
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_burst_worker(app: Flask, log: Path, timeout: float = 40.0) -> None:
    """`flask --app wsgi worker --burst` as a separate process, until the queue is empty."""
    db.session.rollback()  # hold no snapshot or lock while the worker writes
    worker = WorkerProcess(worker_env(app), log, burst=True)
    try:
        code = worker.wait(timeout)
        assert code == 0, worker.output()
    finally:
        worker.stop()


def mail_files(folder: Path) -> dict[str, int]:
    """Every .eml written, by file name, with its modification time (a rewrite changes it)."""
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.eml")}


def eml_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in key) + ".eml"


def rows() -> list[OutboxMessage]:
    """Every outbox row as committed now (a new snapshot: SQLite keeps a transaction's view)."""
    db.session.rollback()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_redis_outage_loses_no_email_and_sends_none_twice(
    app: Flask, api: Any, webhooks: Any, private_redis: RedisServer, tmp_path: Path
) -> None:
    emulator = webhooks
    books = onboarded_vendor(api, emulator, "Books")
    games = onboarded_vendor(api, emulator, "Games")
    update_vendor_settings(books.vendor.id, shipping_flat_cents=500)
    novel = make_product(books, price_cents=2500, stock=50)
    puzzle = make_product(games, price_cents=1800, stock=50)
    checkouts = []
    for n in range(3):
        buyer = make_buyer()
        for variant in (novel.variants[0], puzzle.variants[0]):
            added = api.post("/cart/items", buyer.token, json={"variant_id": variant.id})
            assert added.status_code in (200, 201), added.get_json()
        checkouts.append((buyer.id, checkout(api, buyer, key=f"outage-{n}")))
    assert emulator.flush_webhooks()
    db.session.rollback()
    done_before = {m.id for m in rows()}  # the test app ran these inline (JOBS_SYNCHRONOUS)
    assert all(m.completed_at is not None for m in rows())

    # Plain values only from here: objects of the test app's session, touched inside the
    # second app's context, would borrow a connection from that app's engine and outlive it.
    vendor_of = {v.vendor.id: (v.token, v.user.id) for v in (books, games)}
    mail_dir = tmp_path / "mail"
    with jobs_app(app, private_redis.url, mail_dir) as web, serving(web) as url:
        emulator.webhook_url = f"{url}/webhooks/stripe"
        client = web.test_client()

        def call(path: str, token: str, **kwargs: Any) -> None:
            db.session.rollback()
            response = client.post(
                f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
            assert response.status_code == 200, response.get_data(as_text=True)

        def ship(vo: dict[str, Any]) -> None:
            call(
                f"/vendor/orders/{vo['id']}/ship",
                vendor_of[vo["vendor_id"]][0],
                json={"carrier": "UPS", "tracking_number": f"1Z{vo['id']}"},
            )

        def deliver(vo: dict[str, Any]) -> None:
            call(f"/vendor/orders/{vo['id']}/deliver", vendor_of[vo["vendor_id"]][0])

        with web.app_context():
            # Order A is paid while Redis is up: its rows go to RQ, where no worker runs yet.
            (buyer_a, body_a), (buyer_b, body_b), (buyer_c, body_c) = checkouts
            assert pay(body_a)["status"] == "requires_capture"
            assert emulator.flush_webhooks()
            queued = [m for m in rows() if m.id not in done_before]
            assert queued and all(m.dispatched_at is not None for m in queued)
            assert Queue("default", connection=jobs.get_redis()).count == len(queued)

            # Redis goes down (and its queue with it: no persistence).
            private_redis.stop()
            assert not private_redis.ping()
            assert pay(body_b)["status"] == "requires_capture"
            assert pay(body_c)["status"] == "requires_capture"
            assert emulator.flush_webhooks()
            vos_a = body_a["order"]["vendor_orders"]
            vos_b = body_b["order"]["vendor_orders"]
            for vo in (*vos_a, *vos_b):
                ship(vo)
            for vo in (*vos_a, vos_b[0]):
                deliver(vo)
            db.session.rollback()
            statuses = {
                vo.id: vo.status.value
                for vo in db.session.scalars(select(VendorOrder).order_by(VendorOrder.id))
            }
            assert [statuses[vo["id"]] for vo in (*vos_a, *vos_b)] == [
                "delivered",
                "delivered",
                "delivered",
                "shipped",
            ]
            queued_ids = {m.id for m in queued}
            during = [m for m in rows() if m.id not in done_before | queued_ids]
            jobs_during = {m.job.rsplit(".", 1)[1] for m in during}
            assert {"order_paid", "vendor_order_shipped", "capture_order"} <= jobs_during
            assert {"vendor_order_delivered", "transfer_vendor_order"} <= jobs_during
            assert all(m.dispatched_at is None for m in during), "dispatched with Redis down?"
            assert all(m.completed_at is None for m in rows() if m.id not in done_before)
            assert mail_files(mail_dir) == {}

            # Redis is back, empty. The periodic job (its clock a couple of minutes on)
            # hands every unfinished row to RQ; a worker process runs them.
            private_redis.start()
            pending = [m.id for m in rows() if m.completed_at is None]
            assert outbox.redispatch_stale(now=utcnow() + LATER) == len(pending)
            assert all(m.dispatched_at is not None for m in rows() if m.id not in done_before)
            run_burst_worker(web, tmp_path / "worker-1.log")
            assert emulator.flush_webhooks()  # capture/transfer events back to the app

            unfinished = [(m.id, m.job, m.last_error) for m in rows() if m.completed_at is None]
            assert unfinished == []
            expected = set()
            for buyer_id, body in checkouts:
                order = body["order"]
                expected.add(f"order_paid:{order['id']}:user:{buyer_id}")
                for vo in order["vendor_orders"]:
                    user_id = vendor_of[vo["vendor_id"]][1]
                    expected.add(f"new_order:vo:{vo['id']}:user:{user_id}")
            expected |= {f"shipped:vo:{vo['id']}:user:{buyer_a}" for vo in vos_a}
            expected |= {f"shipped:vo:{vo['id']}:user:{buyer_b}" for vo in vos_b}
            expected |= {f"delivered:vo:{vo['id']}:user:{buyer_a}" for vo in vos_a}
            expected.add(f"delivered:vo:{vos_b[0]['id']}:user:{buyer_b}")
            assert len(expected) == 3 + 6 + 4 + 3
            sent = mail_files(mail_dir)
            assert set(sent) == {eml_name(key) for key in expected}
            emails = list(db.session.scalars(select(SentEmail)))
            assert sorted(e.key for e in emails) == sorted(expected)
            assert all(e.sent_at is not None and e.attempts == 1 for e in emails)
            notifications = db.session.scalar(select(func.count()).select_from(Notification))
            assert notifications == len(expected)
            transfers = objects(emulator_state(emulator), "transfers")
            assert sorted(int(t["metadata"]["vendor_order_id"]) for t in transfers) == sorted(
                vo["id"] for vo in (*vos_a, vos_b[0])
            )

            # A second round: the redispatch finds nothing, and even every row and every
            # handler enqueued again (a duplicated delivery) sends nothing twice.
            assert outbox.redispatch_stale(now=utcnow() + 5 * LATER) == 0
            all_rows = rows()
            outbox.dispatch([m.id for m in all_rows])
            for m in all_rows:
                jobs.enqueue(m.job, *m.args)
            run_burst_worker(web, tmp_path / "worker-2.log")
            assert emulator.flush_webhooks()
            assert mail_files(mail_dir) == sent
            db.session.rollback()
            assert sorted(e.key for e in db.session.scalars(select(SentEmail))) == sorted(expected)
            assert db.session.scalar(select(func.count()).select_from(Notification)) == len(
                expected
            )
            assert len(objects(emulator_state(emulator), "transfers")) == len(transfers)
            assert [m.completed_at for m in rows()] == [m.completed_at for m in all_rows]
            db.session.rollback()
        emulator.webhook_url = None
