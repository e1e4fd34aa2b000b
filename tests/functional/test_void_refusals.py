"""Cancelling an uncaptured authorization (a void) that Stripe refuses (issue 9).

The hold stays on the buyer's card until Stripe lets it go, so nothing may say it is gone: the
payment stays `authorized`, the refusal is a recorded failed step that reconciliation lists and
admins are told of; it is tried again (the hourly sweeper, or an admin) until Stripe does it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from marketplace.db import db
from marketplace.jobs.outbox import OutboxMessage
from marketplace.notifications.models import Notification
from marketplace.payments.models import PaymentStatus
from marketplace.payments.services import payment_of
from marketplace.payouts import ledger, reconciliation
from marketplace.settlement import capture
from tests.functional.money import (
    add_fault,
    clear_faults,
    emulator_post,
    emulator_state,
    objects,
    paid_order,
)
from tests.helpers import make_admin

REFUSED = {"status": 400, "count": 100, "method": "POST"}


def _intent_status(emulator: Any, intent_id: str) -> str:
    (intent,) = [
        i for i in objects(emulator_state(emulator), "payment_intents") if i["id"] == intent_id
    ]
    return intent["status"]


def _failed(kind: str) -> list[int]:
    db.session.rollback()
    return [s["id"] for s in reconciliation.reconcile()["failed_steps"] if s["kind"] == kind]


def _kinds(user_id: int) -> list[str]:
    db.session.rollback()
    return list(
        db.session.scalars(select(Notification.kind).where(Notification.user_id == user_id))
    )


def _cancel_everything(api: Any, webhooks: Any) -> tuple[dict[str, Any], int]:
    """A paid order whose only part the vendor cancels before shipping, while Stripe refuses
    to cancel the PaymentIntent."""
    paid = paid_order(api, webhooks, vendors=1)
    intent_id = paid["payment_intent_id"]
    add_fault(webhooks, f"/v1/payment_intents/{intent_id}/cancel", **REFUSED)
    (part,) = paid["vendor_orders"]
    seller = paid["sellers"][0]
    cancelled = api.post(f"/vendor/orders/{part['id']}/cancel", seller.token, json={"reason": "x"})
    assert cancelled.status_code == 200, cancelled.get_json()
    return paid, paid["order"]["id"]


def test_a_refused_void_is_a_failed_step_not_a_cancelled_payment(api, webhooks):
    admin = make_admin()
    paid, order_id = _cancel_everything(api, webhooks)

    assert _intent_status(webhooks, paid["payment_intent_id"]) == "requires_capture"
    db.session.rollback()
    payment = payment_of(order_id)
    assert payment.status is PaymentStatus.AUTHORIZED  # the hold is still on the card
    assert payment.void_refused_at is not None and payment.last_error
    assert _failed("void_refused") == [order_id]
    assert "void_refused" in _kinds(admin.id)
    pending = db.session.scalars(
        select(OutboxMessage.id).where(OutboxMessage.completed_at.is_(None))
    ).all()
    assert pending == []  # a recorded refusal, not a job failing forever
    report = reconciliation.reconcile()
    assert report["ok"] is True and ledger.balance_all() == 0


def test_the_hourly_sweeper_tries_a_refused_void_again_once_stripe_allows_it(api, webhooks):
    paid, order_id = _cancel_everything(api, webhooks)
    assert capture.retry_refused_voids() == 1  # still refused: recorded again, nothing moves
    db.session.rollback()
    assert payment_of(order_id).status is PaymentStatus.AUTHORIZED
    assert _failed("void_refused") == [order_id]

    clear_faults(webhooks)
    assert capture.retry_refused_voids() == 1

    assert _intent_status(webhooks, paid["payment_intent_id"]) == "canceled"
    db.session.rollback()
    payment = payment_of(order_id)
    assert payment.status is PaymentStatus.CANCELED and payment.void_refused_at is None
    assert _failed("void_refused") == []
    assert capture.retry_refused_voids() == 0


def test_an_admin_retries_a_refused_void(api, webhooks):
    admin = make_admin()
    paid, order_id = _cancel_everything(api, webhooks)
    refused_again = api.post(f"/admin/orders/{order_id}/void/retry", admin.token)
    assert refused_again.status_code == 409
    assert refused_again.get_json()["error"]["code"] == "void_refused"
    clear_faults(webhooks)

    retried = api.post(f"/admin/orders/{order_id}/void/retry", admin.token)

    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["payment_status"] == "canceled"
    assert _intent_status(webhooks, paid["payment_intent_id"]) == "canceled"
    again = api.post(f"/admin/orders/{order_id}/void/retry", admin.token)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "void_not_refused"
    assert api.post("/admin/orders/999999/void/retry", admin.token).status_code == 404


def test_a_void_retried_after_the_cause_was_fixed_is_asked_with_a_new_key(api, webhooks):
    """Stripe stores its refusal under the key for 24 h: the retry asks as a new attempt."""
    admin = make_admin()
    paid = paid_order(api, webhooks, vendors=1)
    intent_id = paid["payment_intent_id"]
    # Stripe's own state refuses the cancel (a real 400, stored under the key) ...
    emulator_post(webhooks, f"/_emulator/objects/{intent_id}", {"status": "succeeded"})
    (part,) = paid["vendor_orders"]
    seller = paid["sellers"][0]
    cancelled = api.post(f"/vendor/orders/{part['id']}/cancel", seller.token, json={"reason": "x"})
    assert cancelled.status_code == 200, cancelled.get_json()
    db.session.rollback()
    payment = payment_of(paid["order"]["id"])
    assert payment.status is PaymentStatus.AUTHORIZED and payment.void_refused_at is not None
    assert payment.void_attempt == 2  # the refused attempt is over
    # ... until the cause is gone
    emulator_post(webhooks, f"/_emulator/objects/{intent_id}", {"status": "requires_capture"})

    retried = api.post(f"/admin/orders/{paid['order']['id']}/void/retry", admin.token)

    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["payment_status"] == "canceled"
    assert _intent_status(webhooks, intent_id) == "canceled"
