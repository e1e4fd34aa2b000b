"""Stripe webhooks: signatures checked, every event applied once, in any order."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import func, select

from marketplace.catalog.models import Variant, Vendor
from marketplace.db import db, utcnow
from marketplace.orders import services as orders
from marketplace.orders.models import Order
from marketplace.payments.models import StripeEvent
from marketplace.settlement.webhooks import HANDLED_EVENTS
from stripe_emulator import sign_payload
from tests.functional.money import (
    checkout,
    emulator_events,
    emulator_post,
    emulator_state,
    objects,
    pay,
    post_event,
)
from tests.helpers import assert_error, make_buyer, make_product, make_vendor, statements_sent


def _variant(variant_id: int) -> tuple[int, int]:
    variant = db.session.get(Variant, variant_id)
    db.session.refresh(variant)
    return variant.on_hand, variant.reserved


def _order(order_id: int) -> Order:
    db.session.rollback()
    return db.session.get(Order, order_id)


def _event_rows(ids: list[str] | None = None) -> int:
    query = select(func.count()).select_from(StripeEvent)
    if ids is not None:
        query = query.where(StripeEvent.id.in_(ids))
    return int(db.session.scalar(query) or 0)


def _add_to_cart(api: Any, buyer: Any, variant_id: int, quantity: int) -> None:
    response = api.post(
        "/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": quantity}
    )
    assert response.status_code == 201, response.get_json()


# --- signatures ----------------------------------------------------------------------------


def test_forged_webhooks_are_rejected_and_change_nothing(api, client, emulator, app):
    seller = make_vendor("Seller")
    product = make_product(seller, price_cents=1500, stock=2)
    variant_id = product.variants[0].id
    buyer = make_buyer()
    _add_to_cart(api, buyer, variant_id, 1)
    body = checkout(api, buyer)
    order_id = body["order"]["id"]
    assert pay(body)["status"] == "requires_capture"
    (event,) = [e for e in emulator_events(emulator) if e["type"].endswith("capturable_updated")]
    raw = json.dumps(event).encode()
    secret = app.config["STRIPE_WEBHOOK_SECRET"]
    tampered = json.loads(raw)
    tampered["data"]["object"]["amount"] = 1

    attempts = {
        "wrong secret": post_event(client, raw, "whsec_not_the_secret"),
        "tampered body": post_event(
            client, json.dumps(tampered).encode(), signature=sign_payload(raw, secret)
        ),
        "missing header": post_event(client, raw, signature=""),
        "garbage header": post_event(client, raw, signature="t=now,v1=deadbeef"),
        "stale timestamp": post_event(client, raw, timestamp=int(time.time()) - 301),
        "not json": post_event(client, b"{not json", signature=sign_payload(b"{not json", secret)),
        "not an event": post_event(client, b"[1, 2]", signature=sign_payload(b"[1, 2]", secret)),
    }
    for name, response in attempts.items():
        assert response.status_code == 400, name
        assert_error(response, 400, "invalid_signature")

    order = _order(order_id)
    assert order.status.value == "pending_payment"
    assert {vo.status.value for vo in order.vendor_orders} == {"pending_payment"}
    assert _variant(variant_id) == (2, 1)
    assert _event_rows() == 0

    # The genuine delivery (recently signed with the right secret) still goes through.
    assert post_event(client, raw, timestamp=int(time.time()) - 200).status_code == 200
    assert _order(order_id).status.value == "paid"
    assert _variant(variant_id) == (1, 0)
    assert _event_rows() == 1


def test_events_the_saga_does_not_act_on_write_nothing_and_lock_nothing(api, client, emulator):
    """payment_intent.created arrives while the checkout that made the intent may still hold
    its order: it must answer at once, without a dedupe row or the order's lock."""
    seller = make_vendor("Seller")
    variant_id = make_product(seller, price_cents=1500, stock=2).variants[0].id
    buyer = make_buyer()
    _add_to_cart(api, buyer, variant_id, 1)
    body = checkout(api, buyer)
    (created,) = [
        e
        for e in emulator_events(emulator)
        if e["type"] == "payment_intent.created"
        and e["data"]["object"]["id"] == body["payment"]["payment_intent_id"]
    ]
    assert created["type"] not in HANDLED_EVENTS
    with statements_sent() as sent:
        response = post_event(client, created)
    assert response.status_code == 200
    assert response.get_json() == {"received": True, "outcome": "ignored"}
    assert len(sent) == 0, sent
    assert _event_rows([created["id"]]) == 0
    assert _order(body["order"]["id"]).status.value == "pending_payment"


# --- at least once, in any order -----------------------------------------------------------


@dataclass
class Scenario:
    """Two orders (one paid at once, one declined then paid) and a vendor onboarded, with
    every webhook held back at the emulator."""

    order_ids: list[int]
    variant_ids: list[int]
    buyer_ids: list[int]
    newcomer_id: int
    events: list[dict[str, Any]] = field(default_factory=list)


def _run_scenario(api: Any, emulator: Any, seller: Any) -> Scenario:
    assert emulator.webhook_url is None
    seen = {e["id"] for e in emulator_events(emulator)}
    mug = make_product(seller, price_cents=1500, stock=3).variants[0].id
    tea = make_product(seller, price_cents=900, stock=4).variants[0].id
    first, second = make_buyer(), make_buyer()
    _add_to_cart(api, first, mug, 1)
    _add_to_cart(api, first, tea, 2)
    paid_at_once = checkout(api, first)
    _add_to_cart(api, second, mug, 2)
    declined_first = checkout(api, second)
    assert pay(paid_at_once)["status"] == "requires_capture"
    assert pay(declined_first, "pm_card_chargeDeclined")["error"] == "card_declined"
    assert pay(declined_first)["status"] == "requires_capture"

    newcomer = make_vendor("Newcomer", payable=False)
    started = api.post("/vendor/onboarding", newcomer.token).get_json()
    emulator_post(
        emulator, f"/_emulator/accounts/{started['stripe_account_id']}/complete_onboarding"
    )

    events = [e for e in emulator_events(emulator) if e["id"] not in seen]
    types = [e["type"] for e in events]
    assert types.count("payment_intent.amount_capturable_updated") == 2
    assert types.count("payment_intent.payment_failed") == 1
    assert types.count("account.updated") == 1
    return Scenario(
        order_ids=[paid_at_once["order"]["id"], declined_first["order"]["id"]],
        variant_ids=[mug, tea],
        buyer_ids=[first.id, second.id],
        newcomer_id=newcomer.vendor.id,
        events=events,
    )


def _end_state(api: Any, scenario: Scenario) -> dict[str, Any]:
    db.session.rollback()
    orders_now = [db.session.get(Order, i) for i in scenario.order_ids]
    return {
        "orders": [o.status.value for o in orders_now],
        "vendor_orders": [sorted(vo.status.value for vo in o.vendor_orders) for o in orders_now],
        "stock": [_variant(v) for v in scenario.variant_ids],
        "payouts_enabled": db.session.get(Vendor, scenario.newcomer_id).payouts_enabled,
        "event_rows": _event_rows([e["id"] for e in scenario.events]),
    }


def _deliver(client: Any, events: list[dict[str, Any]]) -> None:
    for event in events:
        response = post_event(client, event)
        assert response.status_code == 200, (event["type"], response.get_json())


def test_duplicated_shuffled_events_reach_the_same_end_state(api, client, emulator):
    seller = make_vendor("Seller")
    in_order = _run_scenario(api, emulator, seller)
    _deliver(client, in_order.events)
    expected = _end_state(api, in_order)
    assert expected == {
        "orders": ["paid", "paid"],
        "vendor_orders": [["paid"], ["paid"]],
        "stock": [(0, 0), (2, 0)],
        "payouts_enabled": True,
        "event_rows": sum(e["type"] in HANDLED_EVENTS for e in in_order.events),
    }

    orderings: list[tuple[str, Any]] = [("reversed", None)] + [
        (f"seed {seed}", random.Random(seed)) for seed in (1, 7, 42)
    ]
    for name, rng in orderings:
        scenario = _run_scenario(api, emulator, seller)
        doubled = scenario.events * 2
        if rng is None:
            doubled.reverse()
        else:
            rng.shuffle(doubled)
        _deliver(client, doubled)
        assert _end_state(api, scenario) == expected, name


# --- payment after the reservation expired -------------------------------------------------


def _expire(order_id: int) -> None:
    assert orders.expire_order(order_id, now=utcnow() + timedelta(hours=1))
    assert _order(order_id).cancel_reason == "reservation_expired"


def test_payment_after_expiry_with_stock_gone_is_voided(api, webhooks):
    emulator = webhooks
    seller = make_vendor("Seller")
    variant_id = make_product(seller, price_cents=1200, stock=2).variants[0].id
    late, early = make_buyer("Late"), make_buyer("Early")
    _add_to_cart(api, late, variant_id, 2)
    late_body = checkout(api, late)
    late_id = late_body["order"]["id"]
    _expire(late_id)
    assert _variant(variant_id) == (2, 0)
    _add_to_cart(api, early, variant_id, 1)
    early_id = checkout(api, early)["order"]["id"]
    assert _variant(variant_id) == (2, 1)

    assert pay(late_body)["status"] == "requires_capture"
    assert emulator.flush_webhooks()

    order = _order(late_id)
    assert order.status.value == "cancelled"
    assert order.cancel_reason == "paid_after_expiry_out_of_stock"
    assert {vo.status.value for vo in order.vendor_orders} == {"cancelled"}
    assert _variant(variant_id) == (2, 1)  # only the early buyer's hold
    assert _order(early_id).status.value == "pending_payment"
    state = emulator_state(emulator)
    (intent,) = [
        i
        for i in objects(state, "payment_intents")
        if i["id"] == late_body["payment"]["payment_intent_id"]
    ]
    assert intent["status"] == "canceled"
    assert intent["amount_received"] == 0
    assert not any(c["captured"] for c in objects(state, "charges"))


def test_payment_after_expiry_with_stock_left_is_reserved_again(api, webhooks):
    emulator = webhooks
    seller = make_vendor("Seller")
    variant_id = make_product(seller, price_cents=1200, stock=3).variants[0].id
    buyer = make_buyer()
    _add_to_cart(api, buyer, variant_id, 2)
    body = checkout(api, buyer)
    order_id = body["order"]["id"]
    _expire(order_id)
    assert _variant(variant_id) == (3, 0)

    assert pay(body)["status"] == "requires_capture"
    assert emulator.flush_webhooks()

    order = _order(order_id)
    assert order.status.value == "paid"
    assert order.cancel_reason is None
    assert {vo.status.value for vo in order.vendor_orders} == {"paid"}
    assert _variant(variant_id) == (1, 0)
    (intent,) = objects(emulator_state(emulator), "payment_intents")
    assert intent["status"] == "requires_capture"


# --- failures and strangers ----------------------------------------------------------------


def test_payment_failed_releases_stock_and_restores_the_cart(api, webhooks):
    emulator = webhooks
    seller = make_vendor("Seller")
    variant_id = make_product(seller, price_cents=1200, stock=3).variants[0].id
    buyer = make_buyer()
    _add_to_cart(api, buyer, variant_id, 2)
    body = checkout(api, buyer)
    assert api.get("/cart", buyer.token).get_json()["items"] == []
    assert _variant(variant_id) == (3, 2)

    assert pay(body, "pm_card_chargeDeclinedInsufficientFunds")["error"] == "card_declined"
    assert emulator.flush_webhooks()

    order = _order(body["order"]["id"])
    assert order.status.value == "payment_failed"
    assert _variant(variant_id) == (3, 0)
    cart = api.get("/cart", buyer.token).get_json()
    assert [(i["variant_id"], i["quantity"]) for i in cart["items"]] == [(variant_id, 2)]

    # Another card for the same order: reserved again and paid.
    assert pay(body)["status"] == "requires_capture"
    assert emulator.flush_webhooks()
    assert _order(body["order"]["id"]).status.value == "paid"
    assert _variant(variant_id) == (1, 0)
    # Bought after all: the units the failure put back in the cart are gone from it again.
    assert api.get("/cart", buyer.token).get_json()["items"] == []


@pytest.mark.parametrize("payable", [True, False])
def test_account_updated_for_an_unknown_account_is_ignored(api, client, emulator, payable):
    vendor = make_vendor("Known", payable=False)
    event = {
        "id": f"evt_unknown_{payable}",
        "object": "event",
        "type": "account.updated",
        "created": int(time.time()),
        "livemode": False,
        "account": "acct_nobody",
        "data": {
            "object": {
                "id": "acct_nobody",
                "object": "account",
                "payouts_enabled": payable,
                "charges_enabled": payable,
                "capabilities": {"transfers": "active" if payable else "inactive"},
            }
        },
    }
    response = post_event(client, event)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["outcome"] == "unknown_account"
    assert post_event(client, event).get_json()["outcome"] == "duplicate"
    db.session.rollback()
    assert db.session.get(Vendor, vendor.vendor.id).payouts_enabled is False


def _intent(emulator: Any, intent_id: str) -> dict[str, Any]:
    (intent,) = [
        i for i in objects(emulator_state(emulator), "payment_intents") if i["id"] == intent_id
    ]
    return intent


def test_cancelling_an_unpaid_order_cancels_its_payment_intent(api, webhooks):
    variant_id = make_product(make_vendor(), price_cents=1200, stock=2).variants[0].id
    buyer = make_buyer()
    _add_to_cart(api, buyer, variant_id, 1)
    body = checkout(api, buyer)
    intent_id = body["payment"]["payment_intent_id"]

    cancelled = api.post(f"/orders/{body['order']['id']}/cancel", buyer.token)
    assert cancelled.get_json()["status"] == "cancelled"
    assert _intent(webhooks, intent_id)["status"] == "canceled"
    with pytest.raises(stripe.InvalidRequestError, match="status of canceled"):
        pay(body)  # the pay page left open can no longer charge the card
    webhooks.flush_webhooks()
    order = _order(body["order"]["id"])
    assert order.status.value == "cancelled" and _variant(variant_id) == (2, 0)
    assert not objects(emulator_state(webhooks), "charges")


def test_an_authorization_for_an_order_cancelled_meanwhile_is_voided(api, webhooks):
    from marketplace.db import transaction
    from marketplace.orders import fulfilment

    variant_id = make_product(make_vendor(), price_cents=1200, stock=2).variants[0].id
    buyer = make_buyer()
    _add_to_cart(api, buyer, variant_id, 1)
    body = checkout(api, buyer)
    order_id, intent_id = body["order"]["id"], body["payment"]["payment_intent_id"]
    with transaction():  # cancelled by a path that does not void (say, an operator's fix)
        fulfilment.cancel_unpaid(_order(order_id), actor="admin", reason="fraud_check")

    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    order = _order(order_id)
    assert order.status.value == "cancelled" and order.cancel_reason == "fraud_check"
    assert _variant(variant_id) == (2, 0)
    intent = _intent(webhooks, intent_id)
    assert intent["status"] == "canceled" and intent["amount_received"] == 0
    assert intent["cancellation_reason"] == "requested_by_customer"
