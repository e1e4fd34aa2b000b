"""The capture as its own intent row (issue 9): `Capture` requested → succeeded | failed.

Written with the payment's move to `capturing`, asked of Stripe with a key naming the row
(`capture:<id>`), answered by Stripe's reply or its webhook, whichever comes first; a refusal
is the row's `failed`, compensated in the transaction that records it; a later try is a new
row with a new key; a webhook never moves a capture back.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from sqlalchemy import select

from marketplace.db import db
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage
from marketplace.payments import gateway
from marketplace.payments.models import CaptureStatus, PaymentStatus
from marketplace.payments.services import payment_of
from marketplace.payments.state import IllegalCaptureMove, move_capture
from marketplace.payouts import ledger, reconciliation
from marketplace.settlement import capture
from tests.functional.money import (
    add_fault,
    clear_faults,
    emulator_events,
    emulator_post,
    paid_order,
    post_event,
)

SHIP = {"carrier": "UPS", "tracking_number": "1Z1"}
REFUSED = {"status": 400, "count": 100, "method": "POST"}


def _ship(api: Any, paid: dict[str, Any], index: int = 0) -> Any:
    vendor_order, seller = paid["vendor_orders"][index], paid["sellers"][index]
    return api.post(f"/vendor/orders/{vendor_order['id']}/ship", seller.token, json=SHIP)


def _capture_keys(emulator: Any, payment_intent_id: str) -> list[str]:
    """The idempotency keys of the requests that captured the intent at Stripe."""
    return [
        event["request"]["idempotency_key"]
        for event in emulator_events(emulator)
        if event["type"] == "payment_intent.succeeded"
        and event["data"]["object"]["id"] == payment_intent_id
    ]


def _capture_job() -> int:
    db.session.rollback()
    (message_id,) = db.session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.job == "marketplace.settlement.jobs.capture_order",
            OutboxMessage.completed_at.is_(None),
        )
    ).all()
    return message_id


def _failed_captures() -> list[tuple[str, int]]:
    db.session.rollback()
    return [
        (step["kind"], step["id"])
        for step in reconciliation.reconcile()["failed_steps"]
        if step["kind"] == "capture_refused"
    ]


def _assert_books_match_stripe() -> None:
    db.session.rollback()
    assert ledger.balance_all() == 0
    report = reconciliation.reconcile()
    assert report["mismatches"] == [] and report["ok"] is True


def test_the_first_shipment_captures_through_one_capture_row(api, webhooks):
    paid = paid_order(api, webhooks, vendors=2)
    order_id = paid["order"]["id"]
    assert _ship(api, paid, 0).status_code == 200
    webhooks.flush_webhooks()

    db.session.rollback()
    (step,) = capture.captures_of(order_id)
    payment = payment_of(order_id)
    assert step.status is CaptureStatus.SUCCEEDED
    assert step.amount_cents == step.amount_captured_cents == paid["order"]["total_cents"]
    assert step.charge_id == payment.charge_id and step.answered_at is not None
    assert payment.status is PaymentStatus.CAPTURED
    assert _capture_keys(webhooks, paid["payment_intent_id"]) == [f"capture:{step.id}"]
    _assert_books_match_stripe()


def test_a_refused_capture_is_a_failed_row_listed_and_the_next_try_a_new_one(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    order_id = paid["order"]["id"]
    add_fault(webhooks, f"/v1/payment_intents/{paid['payment_intent_id']}/capture", **REFUSED)
    assert _ship(api, paid, 0).status_code == 200

    db.session.rollback()
    (refused,) = capture.captures_of(order_id)
    assert refused.status is CaptureStatus.FAILED and refused.failure_reason
    assert payment_of(order_id).status is PaymentStatus.AUTHORIZED  # compensated
    assert capture.requested_capture(payment_of(order_id).id) is None
    assert _failed_captures() == [("capture_refused", refused.id)]
    assert ledger.total("capture", ledger.CASH, order_id=order_id) == 0

    clear_faults(webhooks)
    assert capture.capture_order(order_id).status is PaymentStatus.CAPTURED
    webhooks.flush_webhooks()
    db.session.rollback()
    first, second = capture.captures_of(order_id)
    assert (first.id, first.status) == (refused.id, CaptureStatus.FAILED)  # history stays
    assert second.status is CaptureStatus.SUCCEEDED
    # a new key: Stripe replays a refusal stored under the old one
    assert _capture_keys(webhooks, paid["payment_intent_id"]) == [f"capture:{second.id}"]
    assert _failed_captures() == []
    _assert_books_match_stripe()


def test_a_capture_refused_after_the_lapse_fails_and_cancels_the_payment(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    webhooks.webhook_url = None  # the lapse's webhook never reaches us

    emulator_post(webhooks, f"/_emulator/payment_intents/{paid['payment_intent_id']}/expire")
    assert _ship(api, paid, 0).status_code == 200

    db.session.rollback()
    (step,) = capture.captures_of(paid["order"]["id"])
    assert step.status is CaptureStatus.FAILED and step.failure_reason
    assert payment_of(paid["order"]["id"]).status is PaymentStatus.CANCELED
    assert _failed_captures() == []  # nothing to retry: the order lost its payment
    _assert_books_match_stripe()


@pytest.fixture
def answer_lost(app, monkeypatch):
    """The SDK does not retry: a 500 after Stripe captured loses the answer for good. Jobs
    are queued (run by the test), not run inline."""
    monkeypatch.setattr(stripe._http_client.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(gateway, "MAX_NETWORK_RETRIES", 0)
    monkeypatch.setitem(app.config, "JOBS_SYNCHRONOUS", False)
    gateway.close_client(app)
    yield
    gateway.close_client(app)


def test_the_capture_webhook_records_the_outcome_when_the_answer_is_lost(
    api, webhooks, client, answer_lost
):
    paid = paid_order(api, webhooks, vendors=2)
    order_id = paid["order"]["id"]
    webhooks.webhook_url = None  # held back: delivered by hand below
    add_fault(
        webhooks,
        f"/v1/payment_intents/{paid['payment_intent_id']}/capture",
        status=500,
        count=1,
        mode="after",
        method="POST",
    )
    assert _ship(api, paid, 0).status_code == 200
    with pytest.raises(gateway.PaymentProviderError):
        outbox.run_message(_capture_job())

    db.session.rollback()
    (step,) = capture.captures_of(order_id)
    assert step.status is CaptureStatus.REQUESTED  # Stripe captured, we never heard
    assert payment_of(order_id).status is PaymentStatus.CAPTURING
    (event,) = [
        e
        for e in emulator_events(webhooks)
        if e["type"] == "payment_intent.succeeded" and e["data"]["object"]["amount_received"]
    ]

    assert post_event(client, event).status_code == 200

    db.session.rollback()
    (step,) = capture.captures_of(order_id)
    payment = payment_of(order_id)
    assert step.status is CaptureStatus.SUCCEEDED and step.charge_id == payment.charge_id
    assert payment.status is PaymentStatus.CAPTURED
    assert payment.amount_captured_cents == paid["order"]["total_cents"]
    # the capture job, run again, finds the outcome recorded: nothing asked, nothing booked twice
    outbox.run_message(_capture_job())  # its retry, before any backoff
    db.session.rollback()
    assert [s.status for s in capture.captures_of(order_id)] == [CaptureStatus.SUCCEEDED]
    assert ledger.total("capture", ledger.CASH, order_id=order_id) == paid["order"]["total_cents"]
    _assert_books_match_stripe()


def test_a_stale_cancel_never_moves_a_succeeded_capture_back(api, webhooks, client):
    paid = paid_order(api, webhooks, vendors=1)
    order_id = paid["order"]["id"]
    assert _ship(api, paid, 0).status_code == 200
    webhooks.flush_webhooks()
    stale = {
        "id": "evt_stale_cancel",
        "type": "payment_intent.canceled",
        "created": 1,
        "data": {
            "object": {
                "id": paid["payment_intent_id"],
                "object": "payment_intent",
                "status": "canceled",
                "metadata": {"order_id": str(order_id)},
            }
        },
    }
    assert post_event(client, stale).status_code == 200

    db.session.rollback()
    assert [s.status for s in capture.captures_of(order_id)] == [CaptureStatus.SUCCEEDED]
    assert payment_of(order_id).status is PaymentStatus.CAPTURED
    with pytest.raises(IllegalCaptureMove):
        move_capture(1, CaptureStatus.SUCCEEDED, CaptureStatus.FAILED)
    _assert_books_match_stripe()
