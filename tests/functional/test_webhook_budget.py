"""The webhook that marks an order paid, held to a statement budget (issue 11).

Under load every confirmation's webhook queues for the web workers behind checkouts, so its
round trips are part of webhook → paid. Jobs are dispatched (not run inline) as in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from marketplace.db import db
from marketplace.payments.models import Payment
from tests.functional.money import checkout, emulator_events, pay, post_event
from tests.helpers import Api, make_buyer, make_product, make_vendor, statements_sent

# A two-vendor order of two lines: the event's dedupe row (one INSERT … ON CONFLICT DO NOTHING),
# the order locked with its vendor orders and items (one statement), its payment, the held stock
# committed (a claim and one batched stock move), the statuses and their history, the outbox
# rows (one batch) and their dispatch. Was 18.
PAID_WEBHOOK_BUDGET = 11


def test_the_paid_webhook_stays_within_its_budget(
    api: Api, client: Any, emulator: Any, app: Any
) -> None:
    sellers = make_vendor("Seller"), make_vendor("Other")
    variants = [make_product(s, price_cents=1500, stock=5).variants[0].id for s in sellers]
    buyer = make_buyer()
    for variant_id in variants:
        added = api.post("/cart/items", buyer.token, json={"variant_id": variant_id})
        assert added.status_code == 201, added.get_json()
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    (authorized,) = [
        e
        for e in emulator_events(emulator)
        if e["type"] == "payment_intent.amount_capturable_updated"
    ]
    app.config["JOBS_SYNCHRONOUS"] = False
    db.session.remove()
    with statements_sent() as sent:
        response = post_event(client, authorized)
    assert response.get_json() == {"received": True, "outcome": "paid"}
    assert len(sent) <= PAID_WEBHOOK_BUDGET, f"{len(sent)} statements:\n{sent}"
    with statements_sent() as again:
        response = post_event(client, authorized)
    assert response.get_json() == {"received": True, "outcome": "duplicate"}
    assert len(again) == 1, again  # the dedupe row's insert, which inserts nothing


def test_the_authorized_charges_webhook_is_two_statements(
    api: Api, client: Any, emulator: Any, app: Any
) -> None:
    """Every authorized payment's charge.succeeded keeps Stripe's capture deadline: its dedupe
    row and one UPDATE of the payment (it read the payment and flushed it; was 3)."""
    variant_id = make_product(make_vendor("Seller"), price_cents=1500, stock=5).variants[0].id
    buyer = make_buyer()
    assert api.post("/cart/items", buyer.token, json={"variant_id": variant_id}).status_code == 201
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    (charge,) = [e for e in emulator_events(emulator) if e["type"] == "charge.succeeded"]
    app.config["JOBS_SYNCHRONOUS"] = False
    db.session.remove()
    with statements_sent() as sent:
        response = post_event(client, charge)
    assert response.get_json() == {"received": True, "outcome": "capture_deadline"}
    assert len(sent) <= 2, f"{len(sent)} statements:\n{sent}"
    payment = db.session.scalar(select(Payment).where(Payment.order_id == body["order"]["id"]))
    deadline = charge["data"]["object"]["payment_method_details"]["card"]["capture_before"]
    assert payment.capture_before == datetime.fromtimestamp(deadline, UTC)
