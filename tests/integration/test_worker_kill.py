"""A worker killed mid-job (SIGKILL), then a new one: the job ends done exactly once.

ARCHITECTURE.md ("Jobs and outbox"): jobs are idempotent and an unfinished outbox row is
handed to RQ again. Each test runs a real `flask --app wsgi worker` process on a private
redis-server, holds it inside the job (the Stripe emulator delays the transfer; a local SMTP
stub never greets), kills it, starts a new worker and lets the periodic redispatch (its clock
moved on) hand the row over again: one transfer at Stripe, one Transfer row, one ledger
journal; one email.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from rq.registry import StartedJobRegistry
from sqlalchemy import select, update

from marketplace import jobs
from marketplace.db import db, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage
from marketplace.notifications import services as notifications
from marketplace.notifications.models import Notification, SentEmail
from marketplace.orders import fulfilment
from marketplace.payouts.models import LedgerEntry, Transfer, TransferStatus
from tests.functional.money import (
    add_fault,
    checkout,
    emulator_state,
    objects,
    onboarded_vendor,
    pay,
)
from tests.helpers import make_buyer, make_product
from tests.integration.redis_server import (
    RedisServer,
    WorkerProcess,
    jobs_app,
    wait_for,
    worker_env,
)

LATER = timedelta(minutes=2)  # past outbox.STALE_AFTER: the periodic redispatch's view
TRANSFER_JOB = "marketplace.settlement.jobs.transfer_vendor_order"
SHIPPED_JOB = "marketplace.notifications.jobs.vendor_order_shipped"
DELIVERED_JOB = "marketplace.notifications.jobs.vendor_order_delivered"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Sale:
    """Plain ids (no ORM objects: those of the test app's session, touched inside the second
    app's context, would borrow a connection from that app's engine and outlive it)."""

    vendor_id: int
    vendor_token: str
    vendor_name: str
    buyer_id: int
    order_id: int
    vo_id: int


def paid_order(api: Any, webhooks: Any) -> Sale:
    """An onboarded vendor's order, paid (through the test app: jobs inline)."""
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=2500, stock=50)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    db.session.rollback()
    order = body["order"]
    return Sale(
        vendor_id=vendor.vendor.id,
        vendor_token=vendor.token,
        vendor_name=vendor.vendor.display_name,
        buyer_id=buyer.id,
        order_id=order["id"],
        vo_id=order["vendor_orders"][0]["id"],
    )


def outbox_row(job: str, arg: int) -> OutboxMessage:
    """The row as committed now (a new snapshot: SQLite keeps a read transaction's view)."""
    db.session.rollback()
    found = [
        m for m in db.session.scalars(select(OutboxMessage)) if (m.job, m.args) == (job, [arg])
    ]
    assert len(found) == 1, found
    return found[0]


def expire_lease(message_id: int) -> None:
    """The killed worker's lease on the row runs out (as it would OUTBOX_LEASE_SECONDS on)."""
    with transaction():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )


def started_jobs() -> list[str]:
    return list(StartedJobRegistry("default", connection=jobs.get_redis()).get_job_ids())


def faults(emulator: Any) -> list[dict[str, Any]]:
    return requests.get(f"{emulator.url}/_emulator/faults", timeout=10).json()["faults"]


def test_worker_killed_during_transfer_pays_the_vendor_once(
    app: Flask, api: Any, webhooks: Any, private_redis: RedisServer, tmp_path: Path
) -> None:
    emulator = webhooks
    sale = paid_order(api, webhooks)
    vo_id = sale.vo_id
    shipped = api.post(
        f"/vendor/orders/{vo_id}/ship",
        sale.vendor_token,
        json={"carrier": "UPS", "tracking_number": "1"},
    )
    assert shipped.status_code == 200, shipped.get_json()  # captured inline
    add_fault(emulator, "/v1/transfers", method="POST", delay_ms=5000, count=1)

    def emulator_transfers() -> list[dict[str, Any]]:
        return [
            t
            for t in objects(emulator_state(emulator), "transfers")
            if t["metadata"].get("vendor_order_id") == str(vo_id)
        ]

    with jobs_app(app, private_redis.url, tmp_path / "mail") as web, web.app_context():
        fulfilment.deliver(sale.vendor_id, vo_id)  # outbox rows → RQ
        row = outbox_row(TRANSFER_JOB, vo_id)
        assert row.dispatched_at is not None and row.completed_at is None
        env = worker_env(web)
        first = WorkerProcess(env, tmp_path / "worker-1.log")
        second: WorkerProcess | None = None
        try:
            # The transfer request reached Stripe and is held there: kill the worker now.
            wait_for(lambda: not faults(emulator), 20, message="the transfer request")
            assert f"outbox-{row.id}" in started_jobs(), first.output()
            first.kill()
            # Stripe finishes what it received: the killed attempt did create the transfer,
            # and the worker never recorded it.
            wait_for(emulator_transfers, 10, message="the first attempt's transfer at Stripe")
            db.session.rollback()
            (pending,) = db.session.scalars(
                select(Transfer).where(Transfer.vendor_order_id == vo_id)
            )
            assert pending.status is TransferStatus.SENDING and pending.stripe_transfer_id is None
            assert outbox_row(TRANSFER_JOB, vo_id).completed_at is None

            assert outbox_row(TRANSFER_JOB, vo_id).lease_until is not None
            second = WorkerProcess(env, tmp_path / "worker-2.log")
            expire_lease(row.id)
            assert outbox.redispatch_stale(now=utcnow() + LATER) >= 1
            wait_for(
                lambda: outbox_row(TRANSFER_JOB, vo_id).completed_at,
                30,
                message="the transfer row to complete",
            )
            wait_for(
                lambda: outbox_row(DELIVERED_JOB, vo_id).completed_at,
                30,
                message="the delivered email row to complete",
            )
        finally:
            if second is not None:
                second.stop()
            first.stop()

        assert emulator.flush_webhooks()
        (at_stripe,) = emulator_transfers()
        db.session.rollback()
        (sent,) = db.session.scalars(select(Transfer).where(Transfer.vendor_order_id == vo_id))
        assert sent.status is TransferStatus.SENT
        assert sent.stripe_transfer_id == at_stripe["id"]
        assert sent.amount_cents == at_stripe["amount"]
        legs = list(db.session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "transfer")))
        assert {leg.journal for leg in legs} == {f"transfer:{vo_id}"}
        assert sum(leg.amount_cents for leg in legs) == 0 and len(legs) == 2
        delivered_key = f"delivered:vo:{vo_id}:user:{sale.buyer_id}"
        assert [p.name for p in (tmp_path / "mail").glob("*.eml")] == [
            delivered_key.replace(":", "_") + ".eml"
        ]
        db.session.rollback()


# --- email -----------------------------------------------------------------------------------


class SmtpStub(socketserver.ThreadingTCPServer):
    """A tiny SMTP server on loopback. The first connection is held without a greeting until
    `release` is set (a mail server hanging mid-send); later ones accept every message."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.messages: list[bytes] = []
        self.held = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._connections = 0
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> SmtpStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()  # joins the handler threads
        self._thread.join(5)

    def first_connection(self) -> bool:
        with self._lock:
            self._connections += 1
            return self._connections == 1

    def subjects(self) -> list[str]:
        return [str(message_from_bytes(m)["Subject"]) for m in self.messages]


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpStub
    timeout = 15

    def handle(self) -> None:
        if self.server.first_connection():
            self.server.held.set()
            self.server.release.wait(30)
            return
        self.reply("220 stub ESMTP")
        while line := self.rfile.readline():
            command = line.strip().upper()
            if command.startswith((b"EHLO", b"HELO")):
                self.reply("250 stub")
            elif command.startswith((b"MAIL", b"RCPT", b"RSET", b"NOOP")):
                self.reply("250 OK")
            elif command == b"DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while (data := self.rfile.readline()) not in (b"", b".\r\n"):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                self.server.messages.append(b"".join(lines))
                self.reply("250 OK queued")
            elif command == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()


def test_worker_killed_while_sending_an_email_sends_it_once(
    app: Flask, api: Any, webhooks: Any, private_redis: RedisServer, tmp_path: Path
) -> None:
    sale = paid_order(api, webhooks)
    vo_id = sale.vo_id
    key = f"shipped:vo:{vo_id}:user:{sale.buyer_id}"
    title = f"Your items from {sale.vendor_name} are on their way"
    with (
        SmtpStub() as smtp,
        jobs_app(app, private_redis.url, tmp_path / "mail", MAIL_URL=smtp.url) as web,
        web.app_context(),
    ):
        fulfilment.ship(sale.vendor_id, vo_id, "UPS", "1Z1")  # capture + email rows → RQ
        row = outbox_row(SHIPPED_JOB, vo_id)
        env = worker_env(web)
        first = WorkerProcess(env, tmp_path / "worker-1.log")
        second: WorkerProcess | None = None
        try:
            # The worker claimed the email and is connected to the mail server: kill it.
            wait_for(smtp.held.is_set, 20, message="the SMTP connection")
            assert f"outbox-{row.id}" in started_jobs(), first.output()
            first.kill()
            smtp.release.set()
            db.session.rollback()
            claim = db.session.scalar(select(SentEmail).where(SentEmail.key == key))
            assert claim is not None and claim.sent_at is None
            assert outbox_row(SHIPPED_JOB, vo_id).completed_at is None

            # A new worker, and the periodic redispatch a couple of minutes on: the claim is
            # recent (the killed attempt might still be sending), so the row must stay open.
            second = WorkerProcess(env, tmp_path / "worker-2.log")
            expire_lease(row.id)
            assert outbox.redispatch_stale(now=utcnow() + LATER) == 1
            wait_for(
                lambda: (m := outbox_row(SHIPPED_JOB, vo_id)).completed_at or m.last_error,
                20,
                message="the redispatched job to run",
            )
            assert smtp.messages == []
            assert outbox_row(SHIPPED_JOB, vo_id).completed_at is None, (
                "the outbox row was completed though its email was never sent"
            )

            # Later, past the claim's reclaim window: the retry sends it.
            with transaction():
                db.session.execute(
                    update(SentEmail)
                    .where(SentEmail.key == key, SentEmail.sent_at.is_(None))
                    .values(
                        claimed_at=utcnow() - notifications.RECLAIM_AFTER - timedelta(seconds=1)
                    )
                )
            outbox.redispatch_stale(now=utcnow() + 3 * LATER)
            wait_for(
                lambda: outbox_row(SHIPPED_JOB, vo_id).completed_at,
                30,
                message="the email row to complete",
            )
        finally:
            if second is not None:
                second.stop()
            first.stop()

        assert smtp.subjects() == [title]
        db.session.rollback()
        (email,) = db.session.scalars(select(SentEmail).where(SentEmail.key == key))
        assert email.sent_at is not None
        notes = list(db.session.scalars(select(Notification).where(Notification.key == key)))
        assert len(notes) == 1
        assert list((tmp_path / "mail").glob("*.eml")) == []  # SMTP, not files
        db.session.rollback()
