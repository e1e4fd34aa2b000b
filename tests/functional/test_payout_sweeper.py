"""Payouts after a hold survive a Redis flush: the transfer waits in RQ's scheduler, which a
flush or restart (or any restart of the embedded mode's in-process Redis) forgets, and the
periodic sweeper finds the delivered part in the database once its hold passed and pays it,
exactly once however often it runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from marketplace import jobs
from marketplace.db import db, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from marketplace.orders.models import VendorOrder
from marketplace.payouts.models import Transfer, TransferStatus
from marketplace.settlement import payout
from tests.functional.money import checkout, emulator_state, objects, onboarded_vendor, pay
from tests.helpers import make_buyer, make_product

HOLD = 3600
SHIP = {"carrier": "UPS", "tracking_number": "1Z999"}


@pytest.fixture
def held(app, monkeypatch):
    monkeypatch.setitem(app.config, "PAYOUT_HOLD_SECONDS", HOLD)
    return app


def _delivered(api: Any, emulator: Any, app: Any) -> dict[str, Any]:
    """A paid, captured and delivered part whose transfer is scheduled after the hold (in
    the in-process Redis: the delivery's outbox row ran as a worker would run it)."""
    vendor = onboarded_vendor(api, emulator)
    variant_id = make_product(vendor, price_cents=2500, stock=5).variants[0].id
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id})
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    assert emulator.flush_webhooks()
    vo = body["order"]["vendor_orders"][0]
    shipped = api.post(f"/vendor/orders/{vo['id']}/ship", vendor.token, json=SHIP)
    assert shipped.status_code == 200, shipped.get_json()  # captured inline
    app.config["JOBS_SYNCHRONOUS"] = False
    delivered = api.post(f"/vendor/orders/{vo['id']}/deliver", vendor.token)
    assert delivered.status_code == 200, delivered.get_json()
    db.session.rollback()
    (row,) = db.session.scalars(
        select(OutboxMessage.id).where(OutboxMessage.job == payout.TRANSFER_JOB)
    )
    outbox.run_message(row)
    scheduled = jobs.get_queue().scheduled_job_registry.get_job_ids()
    assert f"transfer-{vo['id']}" in scheduled
    return vo


def _time_passes(vo_id: int, by: timedelta) -> None:
    with transaction():
        vendor_order = db.session.get(VendorOrder, vo_id)
        vendor_order.delivered_at -= by


def _transfers_of(emulator: Any, vo_id: int) -> list[dict[str, Any]]:
    return [
        t
        for t in objects(emulator_state(emulator), "transfers")
        if t["metadata"].get("vendor_order_id") == str(vo_id)
    ]


def test_a_flushed_redis_loses_no_payout(api, webhooks, held):
    vo = _delivered(api, webhooks, held)
    jobs.get_redis().flushdb()  # the scheduled transfer is gone
    assert payout.sweep_due_transfers() == 0  # still on hold
    assert _transfers_of(webhooks, vo["id"]) == []

    _time_passes(vo["id"], timedelta(seconds=HOLD) + payout.SWEEP_GRACE)
    held.config["JOBS_SYNCHRONOUS"] = True  # the outbox row the sweeper writes runs inline
    assert payout.sweep_due_transfers() == 1
    (sent,) = _transfers_of(webhooks, vo["id"])
    assert sent["amount"] == vo["vendor_earnings_cents"]
    db.session.rollback()
    transfer = db.session.scalar(select(Transfer).where(Transfer.vendor_order_id == vo["id"]))
    assert transfer.status is TransferStatus.SENT and transfer.stripe_transfer_id == sent["id"]

    # Again, and the transfer job once more as a late duplicate: nothing more is sent.
    assert payout.sweep_due_transfers() == 0
    assert payout.sweep_due_transfers(now=utcnow() + timedelta(days=3)) == 0
    payout.transfer_vendor_order(vo["id"])
    assert len(_transfers_of(webhooks, vo["id"])) == 1


def test_the_sweeper_hands_each_part_to_the_outbox_once(api, webhooks, held):
    vo = _delivered(api, webhooks, held)
    jobs.get_redis().flushdb()
    _time_passes(vo["id"], timedelta(seconds=HOLD) + payout.SWEEP_GRACE)

    # Its outbox row waits (no worker runs): the next sweeps add no second one.
    assert payout.sweep_due_transfers() == 1
    assert payout.sweep_due_transfers() == 0

    def pending_rows() -> list[OutboxMessage]:
        db.session.rollback()
        return list(
            db.session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.job == payout.TRANSFER_JOB,
                    OutboxMessage.status != OutboxStatus.COMPLETED,
                )
            )
        )

    (row,) = pending_rows()
    assert row.args == [vo["id"]]
    # A dead letter is the admin's to retry: the sweeper does not go round it.
    with transaction():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(status=OutboxStatus.DEAD, dead_at=utcnow())
        )
    assert payout.sweep_due_transfers() == 0
    assert _transfers_of(webhooks, vo["id"]) == []

    outbox.retry_dead(row.id)
    outbox.run_message(row.id)
    assert len(_transfers_of(webhooks, vo["id"])) == 1
    assert payout.sweep_due_transfers() == 0
    assert pending_rows() == []


def test_the_sweeper_leaves_a_part_just_past_its_hold_to_its_scheduled_job(api, webhooks, held):
    vo = _delivered(api, webhooks, held)
    _time_passes(vo["id"], timedelta(seconds=HOLD + 1))
    assert payout.sweep_due_transfers() == 0  # the scheduled job may be running now
    assert payout.sweep_due_transfers(now=utcnow() + payout.SWEEP_GRACE) == 1
