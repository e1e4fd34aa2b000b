"""When Stripe says no: refused captures, refunds and reversals, lapsed authorizations.

Each test reproduces one finding of the money review (issue 9): Stripe refuses (a 4xx) or an
authorization lapses, and nothing may stay booked, shown or sent as done that Stripe did not do;
the books still match Stripe afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import select, update

from marketplace.catalog.models import Variant, Vendor
from marketplace.db import db, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage
from marketplace.notifications.models import Notification
from marketplace.payments import gateway
from marketplace.payments.models import CaptureStatus, Payment, PaymentStatus
from marketplace.payments.services import payment_of
from marketplace.payouts import ledger, reconciliation
from marketplace.payouts.models import Refund, RefundStatus, Transfer, TransferStatus
from marketplace.settlement import capture, payout
from tests.functional.money import (
    REFUSED,
    SHIP,
    add_fault,
    assert_books_match_stripe,
    checkout,
    clear_faults,
    close_dispute,
    emulator_post,
    onboarded_vendor,
    open_dispute,
    paid_order,
    pay,
    post_event,
    stripe_objects,
)
from tests.helpers import make_admin, make_buyer, make_product


def _vo(paid: dict[str, Any], index: int) -> tuple[int, Any]:
    return paid["vendor_orders"][index]["id"], paid["sellers"][index]


def _ship(api: Any, paid: dict[str, Any], index: int = 0) -> Any:
    vo_id, seller = _vo(paid, index)
    return api.post(f"/vendor/orders/{vo_id}/ship", seller.token, json=SHIP)


def _deliver(api: Any, paid: dict[str, Any], index: int = 0) -> Any:
    vo_id, seller = _vo(paid, index)
    return api.post(f"/vendor/orders/{vo_id}/deliver", seller.token)


def _vendor_order(api: Any, paid: dict[str, Any], index: int) -> dict[str, Any]:
    vo_id, seller = _vo(paid, index)
    return api.get(f"/vendor/orders/{vo_id}", seller.token).get_json()


def _on_hand(variant_id: int) -> int:
    db.session.rollback()
    return db.session.get(Variant, variant_id).on_hand


def _run_pending_jobs() -> None:
    """Run the queued outbox rows oldest first, as one worker would (new rows included)."""
    while True:
        db.session.rollback()
        pending = db.session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.completed_at.is_(None))
            .order_by(OutboxMessage.id)
        ).all()
        ran = False
        for message_id in pending:
            try:
                outbox.run_message(message_id)
                ran = True
            except Exception:
                db.session.rollback()
        if not ran:
            return


def _mismatch_kinds() -> list[str]:
    db.session.rollback()
    return sorted(m["kind"] for m in reconciliation.reconcile()["mismatches"])


def _notification_kinds(user_id: int) -> list[str]:
    db.session.rollback()
    return list(
        db.session.scalars(select(Notification.kind).where(Notification.user_id == user_id))
    )


def _payment(order_id: int) -> Payment:
    db.session.rollback()
    return payment_of(order_id)


# --- 1. a part cancelled while the capture is queued ----------------------------------------


def test_a_part_cancelled_while_the_capture_waits_in_the_queue_is_never_refunded(
    api, webhooks, app
):
    paid = paid_order(api, webhooks, vendors=2)
    first, second = paid["vendor_orders"]
    app.config["JOBS_SYNCHRONOUS"] = False  # the worker is busy: jobs wait in the queue
    assert _ship(api, paid, 0).status_code == 200
    vo_id, seller = _vo(paid, 1)
    cancelled = api.post(f"/vendor/orders/{vo_id}/cancel", seller.token, json={"reason": "late"})
    assert cancelled.status_code == 200, cancelled.get_json()

    _run_pending_jobs()  # the capture (first part only), then the cancellation's settlement

    (charge,) = [c for c in stripe_objects(webhooks, "charges") if c["captured"]]
    assert charge["amount_captured"] == first["total_cents"]
    assert stripe_objects(webhooks, "refunds") == []  # the second part was never charged
    db.session.rollback()
    assert db.session.scalars(select(Refund)).all() == []
    assert_books_match_stripe()


# --- 2. an authorization that lapses --------------------------------------------------------


def test_a_lapsed_authorization_cancels_what_has_not_shipped_and_stops_shipping(api, webhooks):
    paid = paid_order(api, webhooks, vendors=2)
    admin = make_admin()
    stock_before = [_on_hand(v) for v in paid["variant_ids"]]
    emulator_post(webhooks, f"/_emulator/payment_intents/{paid['payment_intent_id']}/expire")
    assert webhooks.flush_webhooks()

    order = api.get(f"/orders/{paid['order']['id']}", paid["buyer"].token).get_json()
    assert order["status"] == "cancelled"
    assert [vo["status"] for vo in order["vendor_orders"]] == ["cancelled", "cancelled"]
    assert {vo["cancel_reason"] for vo in order["vendor_orders"]} == {"authorization_lapsed"}
    assert _payment(paid["order"]["id"]).status is PaymentStatus.CANCELED
    # the committed stock is back on sale
    assert [_on_hand(v) for v in paid["variant_ids"]] == [s + 2 for s in stock_before]
    refused = _ship(api, paid, 0)
    assert refused.status_code == 409
    assert "payment_lapsed" in _notification_kinds(paid["buyer"].id)
    assert "payment_lapsed" in _notification_kinds(admin.id)
    assert_books_match_stripe()


def test_the_capture_deadline_comes_from_stripe_not_from_when_the_webhook_arrived(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    (charge,) = stripe_objects(webhooks, "charges")
    payment = _payment(paid["order"]["id"])
    capture_before = charge["payment_method_details"]["card"]["capture_before"]
    assert int(payment.capture_before.timestamp()) == capture_before
    assert abs(payment.authorized_at.timestamp() - charge["created"]) <= 1

    assert capture.capture_expiring_authorizations() == 0  # six days left: not yet
    db.session.execute(
        update(Payment)
        .where(Payment.id == payment.id)
        .values(capture_before=utcnow() + timedelta(hours=12))
    )
    db.session.commit()
    assert capture.capture_expiring_authorizations() == 1
    assert _payment(paid["order"]["id"]).status is PaymentStatus.CAPTURED


# --- 3. a capture Stripe refuses ------------------------------------------------------------


def test_a_capture_refused_because_the_authorization_lapsed_unwedges_the_order(api, webhooks, app):
    paid = paid_order(api, webhooks, vendors=2)
    webhooks.webhook_url = None  # the lapse's webhook never reaches us
    emulator_post(webhooks, f"/_emulator/payment_intents/{paid['payment_intent_id']}/expire")
    assert _ship(api, paid, 0).status_code == 200  # the capture that follows is refused

    payment = _payment(paid["order"]["id"])
    assert payment.status is PaymentStatus.CANCELED  # not `capturing` forever
    assert _vendor_order(api, paid, 1)["status"] == "cancelled"
    assert _vendor_order(api, paid, 1)["cancel_reason"] == "authorization_lapsed"
    db.session.rollback()
    pending = db.session.scalars(
        select(OutboxMessage.job).where(OutboxMessage.completed_at.is_(None))
    ).all()
    assert pending == []
    assert_books_match_stripe()


def test_a_capture_refused_for_another_reason_goes_back_to_authorized(api, webhooks, app):
    paid = paid_order(api, webhooks, vendors=2)
    admin = make_admin()
    add_fault(webhooks, f"/v1/payment_intents/{paid['payment_intent_id']}/capture", **REFUSED)
    assert _ship(api, paid, 0).status_code == 200

    payment = _payment(paid["order"]["id"])
    assert payment.status is PaymentStatus.AUTHORIZED
    (refused,) = capture.captures_of(paid["order"]["id"])  # answered, none left in flight
    assert refused.status is CaptureStatus.FAILED and refused.failure_reason
    assert "capture_refused" in _notification_kinds(admin.id)
    vo_id, seller = _vo(paid, 1)
    cancelled = api.post(f"/vendor/orders/{vo_id}/cancel", seller.token, json={"reason": "x"})
    assert cancelled.status_code == 200, cancelled.get_json()  # not 409 forever

    clear_faults(webhooks)
    assert capture.capture_order(paid["order"]["id"]).status is PaymentStatus.CAPTURED
    (charge,) = [c for c in stripe_objects(webhooks, "charges") if c["captured"]]
    assert charge["amount_captured"] == paid["vendor_orders"][0]["total_cents"]
    assert_books_match_stripe()


def test_one_refused_capture_does_not_stop_the_hourly_job_for_the_others(api, webhooks):
    lapsed = paid_order(api, webhooks, vendors=1)
    healthy = paid_order(api, webhooks, vendors=1)
    webhooks.webhook_url = None
    emulator_post(webhooks, f"/_emulator/payment_intents/{lapsed['payment_intent_id']}/expire")
    db.session.execute(update(Payment).values(capture_before=utcnow() + timedelta(hours=1)))
    db.session.commit()

    assert capture.capture_expiring_authorizations() == 2
    assert _payment(lapsed["order"]["id"]).status is PaymentStatus.CANCELED
    assert _payment(healthy["order"]["id"]).status is PaymentStatus.CAPTURED


# --- 4. a refund Stripe refuses -------------------------------------------------------------


def test_a_refund_stripe_refuses_books_nothing_and_can_be_tried_again(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    assert _ship(api, paid, 0).status_code == 200
    vo_id, seller = _vo(paid, 0)
    variant_id = paid["variant_ids"][0]
    (item,) = _vendor_order(api, paid, 0)["items"]
    on_hand = _on_hand(variant_id)
    add_fault(webhooks, "/v1/refunds", **REFUSED)
    body = {
        "items": [{"order_item_id": item["id"], "quantity": 2}],
        "reason": "broken",
        "include_shipping": True,
        "restock": True,
    }

    refused = api.post(f"/vendor/orders/{vo_id}/refund", seller.token, json=body)

    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "refund_refused"
    vendor_order = _vendor_order(api, paid, 0)
    assert vendor_order["status"] == "shipped"
    assert [i["refunded_quantity"] for i in vendor_order["items"]] == [0]
    assert _on_hand(variant_id) == on_hand
    db.session.rollback()
    (refund,) = db.session.scalars(select(Refund)).all()
    assert refund.status is RefundStatus.FAILED
    report = reconciliation.reconcile()
    assert report["ok"] is True  # nothing happened at Stripe, nothing in the books
    assert [(s["kind"], s["id"]) for s in report["failed_steps"]] == [("refund_refused", refund.id)]
    assert "refund" not in _notification_kinds(paid["buyer"].id)
    assert (
        db.session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.completed_at.is_(None))
        ).all()
        == []
    )

    clear_faults(webhooks)
    retried = api.post(f"/vendor/orders/{vo_id}/refund", seller.token, json=body)
    assert retried.status_code == 201, retried.get_json()
    assert retried.get_json()["status"] == "succeeded"
    assert _vendor_order(api, paid, 0)["status"] == "refunded"
    assert _on_hand(variant_id) == on_hand + 2
    assert "refund" in _notification_kinds(paid["buyer"].id)
    assert_books_match_stripe()


def test_a_refused_refund_does_not_lower_the_vendors_transfer(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    assert _ship(api, paid, 0).status_code == 200
    vo_id, seller = _vo(paid, 0)
    add_fault(webhooks, "/v1/refunds", **REFUSED)
    refused = api.post(
        f"/vendor/orders/{vo_id}/refund", seller.token, json={"amount_cents": 1000, "reason": "x"}
    )
    assert refused.status_code == 409
    assert _deliver(api, paid, 0).status_code == 200
    (transfer,) = stripe_objects(webhooks, "transfers")
    assert transfer["amount"] == paid["vendor_orders"][0]["vendor_earnings_cents"]
    assert_books_match_stripe()


# --- 5. returns after a refusal -------------------------------------------------------------


def _return_one(api: Any, paid: dict[str, Any]) -> int:
    (item,) = paid["vendor_orders"][0]["items"]
    asked = api.post(
        f"/orders/{paid['order']['id']}/items/{item['id']}/return",
        paid["buyer"].token,
        json={"quantity": 1, "reason": "broken"},
    )
    assert asked.status_code == 201, asked.get_json()
    return asked.get_json()["id"]


def test_accepting_a_return_after_a_refused_refund_refunds_and_restocks_once(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    assert _ship(api, paid, 0).status_code == 200
    assert _deliver(api, paid, 0).status_code == 200
    return_id = _return_one(api, paid)
    seller = paid["sellers"][0]
    on_hand = _on_hand(paid["variant_ids"][0])
    add_fault(webhooks, "/v1/refunds", **REFUSED)
    accept = f"/vendor/returns/{return_id}/accept"
    assert api.post(accept, seller.token, json={"restock": True}).status_code == 409
    assert _on_hand(paid["variant_ids"][0]) == on_hand

    clear_faults(webhooks)
    accepted = api.post(accept, seller.token, json={"restock": True})
    assert accepted.status_code == 200, accepted.get_json()
    assert api.post(accept, seller.token, json={"restock": True}).status_code == 409
    unit = paid["vendor_orders"][0]["items"][0]["unit_price_cents"]
    assert [r["amount"] - unit for r in stripe_objects(webhooks, "refunds")] == [
        0
    ]  # one unit, once
    assert _on_hand(paid["variant_ids"][0]) == on_hand + 1


def test_accepting_a_return_whose_reversal_is_refused_still_accepts_it_once(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    assert _ship(api, paid, 0).status_code == 200
    assert _deliver(api, paid, 0).status_code == 200
    return_id = _return_one(api, paid)
    seller = paid["sellers"][0]
    (transfer,) = stripe_objects(webhooks, "transfers")
    add_fault(webhooks, f"/v1/transfers/{transfer['id']}/reversals", **REFUSED)
    accept = f"/vendor/returns/{return_id}/accept"
    accepted = api.post(accept, seller.token, json={"restock": True})
    assert accepted.status_code == 200, accepted.get_json()
    assert api.post(accept, seller.token, json={"restock": True}).status_code == 409
    assert len(stripe_objects(webhooks, "refunds")) == 1
    assert "reversal_refused" in _mismatch_kinds()


# --- 6. a reversal Stripe refuses -----------------------------------------------------------


def test_a_refused_reversal_answers_with_the_refund_and_is_reported(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    admin = make_admin()
    assert _ship(api, paid, 0).status_code == 200
    assert _deliver(api, paid, 0).status_code == 200
    vo_id, seller = _vo(paid, 0)
    (transfer,) = stripe_objects(webhooks, "transfers")
    add_fault(webhooks, f"/v1/transfers/{transfer['id']}/reversals", **REFUSED)

    response = api.post(
        f"/vendor/orders/{vo_id}/refund", seller.token, json={"amount_cents": 1000, "reason": "x"}
    )

    assert response.status_code == 201, response.get_json()  # the buyer has the money back
    assert response.get_json()["status"] == "succeeded"
    assert response.get_json()["reversal_status"] == "failed"
    assert _mismatch_kinds() == ["reversal_refused"]
    assert "reversal_refused" in _notification_kinds(admin.id)
    db.session.rollback()
    assert (
        db.session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.completed_at.is_(None))
        ).all()
        == []
    )  # not retried forever

    # what the vendor still owes is held back from its next transfer, then it is settled
    clear_faults(webhooks)
    owed = response.get_json()["transfer_reversal_cents"]
    assert api.get("/vendor/earnings", seller.token).get_json()["owed_cents"] == owed
    variant_id = make_product(seller, price_cents=3000, stock=5).variants[0].id
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    body = checkout(api, buyer, key="next")
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    (next_part,) = body["order"]["vendor_orders"]
    shipped = api.post(f"/vendor/orders/{next_part['id']}/ship", seller.token, json=SHIP)
    assert shipped.status_code == 200
    assert api.post(f"/vendor/orders/{next_part['id']}/deliver", seller.token).status_code == 200
    second = [t for t in stripe_objects(webhooks, "transfers") if t["id"] != transfer["id"]]
    assert [t["amount"] for t in second] == [next_part["vendor_earnings_cents"] - owed]
    earnings = api.get("/vendor/earnings", seller.token).get_json()
    assert (earnings["owed_cents"], earnings["pending_cents"]) == (0, 0)
    assert_books_match_stripe()  # the refused reversal is settled: nothing left to report


# --- 12. restocking only what came back -----------------------------------------------------


def test_refunding_a_shipped_part_does_not_restock_unless_asked(api, webhooks):
    paid = paid_order(api, webhooks, vendors=2)
    assert _ship(api, paid, 0).status_code == 200
    shipped_stock = _on_hand(paid["variant_ids"][0])
    unshipped_stock = _on_hand(paid["variant_ids"][1])
    for index in (0, 1):
        vo_id, seller = _vo(paid, index)
        refunded = api.post(f"/vendor/orders/{vo_id}/refund", seller.token, json={"reason": "x"})
        assert refunded.status_code == 201, refunded.get_json()
    assert _on_hand(paid["variant_ids"][0]) == shipped_stock  # the buyer still has them
    assert _on_hand(paid["variant_ids"][1]) == unshipped_stock + 2  # never left the shelf
    assert_books_match_stripe()


# --- 10. suspended vendors ------------------------------------------------------------------


def test_a_suspended_vendor_can_neither_ship_nor_be_paid_until_reinstated(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    admin = make_admin()
    vendor_id = paid["sellers"][0].vendor.id
    suspend, approve = (f"/admin/vendors/{vendor_id}/{action}" for action in ("suspend", "approve"))
    assert api.post(suspend, admin.token).status_code == 200
    refused = _ship(api, paid, 0)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "vendor_suspended"

    assert api.post(approve, admin.token).status_code == 200
    assert _ship(api, paid, 0).status_code == 200
    assert api.post(suspend, admin.token).status_code == 200
    assert _deliver(api, paid, 0).status_code == 200  # the parcel arrived all the same
    assert stripe_objects(webhooks, "transfers") == []  # ... but a suspended vendor is not paid

    assert api.post(approve, admin.token).status_code == 200
    payout.transfer_vendor_order(paid["vendor_orders"][0]["id"])
    (transfer,) = stripe_objects(webhooks, "transfers")
    assert transfer["amount"] == paid["vendor_orders"][0]["vendor_earnings_cents"]
    assert_books_match_stripe()


@pytest.fixture(autouse=True)
def _no_leftover_faults(emulator):
    yield
    clear_faults(emulator)


# --- 7. paying after a decline --------------------------------------------------------------


def test_paying_after_a_decline_buys_only_the_parts_still_for_sale(api, webhooks):
    buyer = make_buyer()
    sellers, variant_ids = [], []
    for n in range(2):
        seller = onboarded_vendor(api, webhooks, f"Seller{n}")
        variant_id = make_product(seller, price_cents=1500, stock=5).variants[0].id
        api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 2})
        sellers.append(seller)
        variant_ids.append(variant_id)
    body = checkout(api, buyer)
    order_id = body["order"]["id"]
    cancelled_part = body["order"]["vendor_orders"][1]["id"]
    cancelled = api.post(
        f"/vendor/orders/{cancelled_part}/cancel", sellers[1].token, json={"reason": "gone"}
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    assert pay(body, "pm_card_chargeDeclined")["error"] == "card_declined"
    assert webhooks.flush_webhooks()

    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()

    order = api.get(f"/orders/{order_id}", buyer.token).get_json()
    assert order["status"] == "paid"
    assert [vo["status"] for vo in order["vendor_orders"]] == ["paid", "cancelled"]
    assert [_on_hand(v) for v in variant_ids] == [3, 5]  # the cancelled part sold nothing


# --- 8. disputes and refunds made outside the marketplace -----------------------------------


def _dispute(api: Any, emulator: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A delivered-to-be order (shipped, so captured) whose charge the buyer disputes."""
    paid = paid_order(api, emulator, vendors=1)
    assert _ship(api, paid, 0).status_code == 200
    return paid, open_dispute(emulator)


def test_a_dispute_is_booked_blocks_refunds_and_holds_the_payout_until_won(api, webhooks, client):
    admin = make_admin()
    paid, dispute = _dispute(api, webhooks)
    total = paid["order"]["total_cents"]
    assert ledger.balance(ledger.DISPUTED) == total
    assert "dispute_opened" in _notification_kinds(admin.id)
    report = api.get("/admin/reconciliation", admin.token).get_json()
    assert [d["stripe_dispute_id"] for d in report["open_disputes"]] == [dispute["id"]]
    assert report["ok"] is True  # money on hold, but the books match Stripe

    vo_id, seller = _vo(paid, 0)
    refused = api.post(f"/vendor/orders/{vo_id}/refund", seller.token, json={"reason": "x"})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "charge_disputed"
    assert stripe_objects(webhooks, "refunds") == []
    assert _deliver(api, paid, 0).status_code == 200
    assert stripe_objects(webhooks, "transfers") == []  # not paid out of a disputed charge yet

    close_dispute(client, dispute, "won")
    close_dispute(client, dispute, "lost")  # a decision is final: a later event does not flip it
    db.session.rollback()
    assert ledger.balance(ledger.DISPUTED) == 0
    assert ledger.balance(ledger.DISPUTE_LOSSES) == 0
    (transfer,) = stripe_objects(webhooks, "transfers")  # the held payout went
    assert transfer["amount"] == paid["vendor_orders"][0]["vendor_earnings_cents"]
    allowed = api.post(
        f"/vendor/orders/{vo_id}/refund", seller.token, json={"amount_cents": 500, "reason": "x"}
    )
    assert allowed.status_code == 201, allowed.get_json()
    assert api.get("/admin/reconciliation", admin.token).get_json()["open_disputes"] == []
    assert_books_match_stripe()


def test_a_lost_dispute_is_the_platforms_loss_and_keeps_refunds_blocked(api, webhooks, client):
    paid, dispute = _dispute(api, webhooks)
    close_dispute(client, dispute, "lost")
    db.session.rollback()
    assert ledger.balance(ledger.DISPUTED) == 0
    assert ledger.balance(ledger.DISPUTE_LOSSES) == paid["order"]["total_cents"]
    vo_id, seller = _vo(paid, 0)
    refused = api.post(f"/vendor/orders/{vo_id}/refund", seller.token, json={"reason": "x"})
    assert refused.get_json()["error"]["code"] == "charge_disputed"
    assert_books_match_stripe()


def test_a_refund_made_outside_the_marketplace_is_reported(api, webhooks):
    admin = make_admin()
    paid = paid_order(api, webhooks, vendors=1)
    assert _ship(api, paid, 0).status_code == 200
    (charge,) = [c for c in stripe_objects(webhooks, "charges") if c["captured"]]
    gateway.client().v1.refunds.create(params={"charge": charge["id"], "amount": 700})
    assert webhooks.flush_webhooks()

    assert "refunded_outside" in _notification_kinds(admin.id)
    assert _mismatch_kinds() == ["charge_refunded", "refund_unknown"]  # by total and one by one


# --- 13 / 23. webhook edge cases -------------------------------------------------------------


def test_a_connected_accounts_own_payment_events_are_not_the_platforms(api, webhooks, client):
    buyer = make_buyer()
    seller = onboarded_vendor(api, webhooks)
    variant_id = make_product(seller, price_cents=1500).variants[0].id
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    body = checkout(api, buyer)
    intent = {
        "id": body["payment"]["payment_intent_id"],
        "object": "payment_intent",
        "amount": body["order"]["total_cents"],
        "amount_capturable": body["order"]["total_cents"],
        "status": "requires_capture",
        "metadata": {"order_id": str(body["order"]["id"])},
    }
    event = {
        "id": "evt_connected_1",
        "object": "event",
        "type": "payment_intent.amount_capturable_updated",
        "account": seller.vendor.stripe_account_id,
        "created": int(utcnow().timestamp()),
        "data": {"object": intent},
    }
    response = post_event(client, event)
    assert response.get_json()["outcome"] == "ignored_connected_account"
    order = api.get(f"/orders/{body['order']['id']}", buyer.token).get_json()
    assert order["status"] == "pending_payment"


def test_an_older_account_event_does_not_undo_a_newer_one(api, webhooks, client):
    seller = onboarded_vendor(api, webhooks)  # the newest event made it payable
    db.session.rollback()
    applied_at = db.session.get(Vendor, seller.vendor.id).stripe_account_event_at
    stale = {
        "id": "evt_account_stale",
        "object": "event",
        "type": "account.updated",
        "account": seller.vendor.stripe_account_id,
        "created": int(applied_at.timestamp()) - 60,
        "data": {
            "object": {
                "id": seller.vendor.stripe_account_id,
                "object": "account",
                "charges_enabled": False,
                "payouts_enabled": False,
                "details_submitted": False,
                "capabilities": {"transfers": "inactive"},
            }
        },
    }
    assert post_event(client, stale).get_json()["outcome"] == "ignored_out_of_order"
    db.session.rollback()
    assert db.session.get(Vendor, seller.vendor.id).payouts_enabled is True


def test_one_cart_cannot_be_paid_twice_after_a_decline(api, webhooks):
    buyer = make_buyer()
    seller = onboarded_vendor(api, webhooks)
    variant_id = make_product(seller, price_cents=1500, stock=10).variants[0].id
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 2})
    declined = checkout(api, buyer, key="first")
    assert pay(declined, "pm_card_chargeDeclined")["error"] == "card_declined"
    assert webhooks.flush_webhooks()  # the lines are back in the cart

    again = checkout(api, buyer, key="second")  # the restored cart, checked out again
    assert pay(again)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    with pytest.raises(stripe.InvalidRequestError):  # its intent was voided: Stripe refuses
        pay(declined)  # the first order's pay page, left open in another tab

    first = api.get(f"/orders/{declined['order']['id']}", buyer.token).get_json()
    assert (first["status"], first["cancel_reason"]) == ("cancelled", "checked_out_again")
    assert _stripe_intent_status(webhooks, declined["payment"]["payment_intent_id"]) == "canceled"
    held = [
        i for i in stripe_objects(webhooks, "payment_intents") if i["status"] == "requires_capture"
    ]
    assert [i["id"] for i in held] == [again["payment"]["payment_intent_id"]]
    assert _on_hand(variant_id) == 8  # two units sold once


def _stripe_intent_status(emulator: Any, intent_id: str) -> str:
    (intent,) = [i for i in stripe_objects(emulator, "payment_intents") if i["id"] == intent_id]
    return intent["status"]


# --- a transfer Stripe refuses --------------------------------------------------------------


def test_a_refused_transfer_stops_is_reported_and_can_be_tried_again(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    admin = make_admin()
    assert _ship(api, paid, 0).status_code == 200
    add_fault(webhooks, "/v1/transfers", **REFUSED)
    assert _deliver(api, paid, 0).status_code == 200  # the delivery stands

    assert stripe_objects(webhooks, "transfers") == []
    db.session.rollback()
    (transfer,) = db.session.scalars(select(Transfer)).all()
    assert transfer.status is TransferStatus.REFUSED and transfer.failure_reason
    assert "transfer_refused" in _notification_kinds(admin.id)
    pending = db.session.scalars(
        select(OutboxMessage.id).where(OutboxMessage.completed_at.is_(None))
    ).all()
    assert pending == []  # not retried forever
    report = reconciliation.reconcile()
    assert report["ok"] is True
    assert ("transfer_refused", transfer.id) in [
        (s["kind"], s["id"]) for s in report["failed_steps"]
    ]

    clear_faults(webhooks)
    retried = api.post(f"/admin/transfers/{transfer.id}/retry", admin.token)
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["status"] == "sent"
    (theirs,) = stripe_objects(webhooks, "transfers")
    assert theirs["amount"] == paid["vendor_orders"][0]["vendor_earnings_cents"]
    again = api.post(f"/admin/transfers/{transfer.id}/retry", admin.token)
    assert again.status_code == 409
    assert_books_match_stripe()


def test_a_transfer_retried_after_the_cause_was_fixed_is_asked_with_a_new_key(api, webhooks):
    """Stripe stores a refusal under its key for 24 h: the retry must not replay it."""
    paid = paid_order(api, webhooks, vendors=1)
    admin = make_admin()
    account = paid["sellers"][0].vendor.stripe_account_id
    assert _ship(api, paid, 0).status_code == 200
    emulator_post(webhooks, f"/_emulator/accounts/{account}/restrict")  # a real 4xx, stored
    assert _deliver(api, paid, 0).status_code == 200
    db.session.rollback()
    (transfer,) = db.session.scalars(select(Transfer)).all()
    assert transfer.status is TransferStatus.REFUSED and transfer.attempt == 1
    assert stripe_objects(webhooks, "transfers") == []

    emulator_post(webhooks, f"/_emulator/accounts/{account}/complete_onboarding")  # fixed
    retried = api.post(f"/admin/transfers/{transfer.id}/retry", admin.token)

    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["status"] == "sent"
    (theirs,) = stripe_objects(webhooks, "transfers")  # exactly one at Stripe
    assert theirs["amount"] == paid["vendor_orders"][0]["vendor_earnings_cents"]
    db.session.rollback()
    assert db.session.get(Transfer, transfer.id).attempt == 2
    assert_books_match_stripe()
