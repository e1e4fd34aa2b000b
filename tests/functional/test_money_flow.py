"""The whole money path through the real SDK and the emulator, checked to the cent."""

from __future__ import annotations

import requests

from marketplace.catalog.services import update_vendor_settings
from marketplace.db import db
from marketplace.payouts.models import LedgerEntry
from tests.functional.money import (
    checkout,
    emulator_post,
    emulator_state,
    onboarded_vendor,
    pay,
)
from tests.helpers import assert_error, make_admin, make_buyer, make_product


def _objects(state, kind):
    return state[kind] if isinstance(state[kind], list) else list(state[kind].values())


def test_two_vendors_pay_ship_deliver_refund_reconcile(api, webhooks):
    emulator = webhooks
    books = onboarded_vendor(api, emulator, "Books")
    games = onboarded_vendor(api, emulator, "Games")
    update_vendor_settings(books.vendor.id, shipping_flat_cents=500)
    update_vendor_settings(games.vendor.id, shipping_flat_cents=700)
    novel = make_product(books, price_cents=2500, stock=5)
    puzzle = make_product(games, price_cents=1800, stock=5)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": novel.variants[0].id, "quantity": 1})
    api.post("/cart/items", buyer.token, json={"variant_id": puzzle.variants[0].id, "quantity": 2})

    body = checkout(api, buyer)
    order = body["order"]
    vo_books, vo_games = order["vendor_orders"]
    assert order["total_cents"] == 2500 + 500 + 3600 + 700
    intent = pay(body)
    assert intent["status"] == "requires_capture"
    assert emulator.flush_webhooks()
    paid = api.get(f"/orders/{order['id']}", buyer.token).get_json()
    assert paid["status"] == "paid"
    assert {vo["status"] for vo in paid["vendor_orders"]} == {"paid"}

    # First shipment captures the whole authorization.
    shipped = api.post(
        f"/vendor/orders/{vo_books['id']}/ship",
        books.token,
        json={"carrier": "UPS", "tracking_number": "1Z999"},
    )
    assert shipped.status_code == 200, shipped.get_json()
    assert shipped.get_json()["status"] == "shipped"
    assert api.post(f"/vendor/orders/{vo_books['id']}/deliver", books.token).status_code == 200
    api.post(
        f"/vendor/orders/{vo_games['id']}/ship",
        games.token,
        json={"carrier": "DHL", "tracking_number": "JD0001"},
    )
    assert api.post(f"/vendor/orders/{vo_games['id']}/deliver", games.token).status_code == 200
    delivered = api.get(f"/orders/{order['id']}", buyer.token).get_json()
    assert delivered["status"] == "fulfilled"

    # Refund one of the two puzzles after the vendor was paid.
    games_vo = api.get(f"/vendor/orders/{vo_games['id']}", games.token).get_json()
    item_id = games_vo["items"][0]["id"]
    preview = api.get(
        f"/vendor/orders/{vo_games['id']}/refund-preview?items={item_id}:1", games.token
    ).get_json()
    refund = api.post(
        f"/vendor/orders/{vo_games['id']}/refund",
        games.token,
        json={"items": [{"order_item_id": item_id, "quantity": 1}], "reason": "damaged"},
    )
    assert refund.status_code == 201, refund.get_json()
    refund = refund.get_json()
    commission_on_item = 180  # 10% of 18.00
    assert refund["amount_cents"] == preview["amount_cents"] == 1800
    assert preview["commission_returned_cents"] == commission_on_item
    assert refund["transfer_reversal_cents"] == preview["transfer_reversal_cents"] == 1620
    assert refund["status"] == "succeeded"
    assert preview["restock"] == []  # delivered: nothing comes back unless restock is asked
    asked = api.get(
        f"/vendor/orders/{vo_games['id']}/refund-preview?items={item_id}:1&restock=true",
        games.token,
    ).get_json()
    assert asked["restock"] == [{"variant_id": puzzle.variants[0].id, "quantity": 1}]

    # Every amount at Stripe, to the cent.
    state = emulator_state(emulator)
    intents = _objects(state, "payment_intents")
    assert [(i["amount"], i["amount_received"], i["status"]) for i in intents] == [
        (7300, 7300, "succeeded")
    ]
    (charge,) = [c for c in _objects(state, "charges") if c["captured"]]
    assert (charge["amount_captured"], charge["amount_refunded"]) == (7300, 1800)
    transfers = sorted(_objects(state, "transfers"), key=lambda t: t["amount"])
    books_fee, games_fee = 250, 360
    assert [t["amount"] for t in transfers] == [
        2500 + 500 - books_fee,
        3600 + 700 - games_fee,
    ]
    assert all(t["source_transaction"] == charge["id"] for t in transfers)
    assert {t["transfer_group"] for t in transfers} == {f"order:{order['id']}"}
    assert [t["amount_reversed"] for t in transfers] == [0, 1620]
    (stripe_refund,) = _objects(state, "refunds")
    assert stripe_refund["amount"] == 1800

    earnings = api.get("/vendor/earnings", games.token).get_json()
    assert earnings["transferred_cents"] == 3940
    assert earnings["reversed_cents"] == 1620
    assert earnings["pending_cents"] == 0

    admin = make_admin()
    report = api.get("/admin/reconciliation", admin.token).get_json()
    assert report["mismatches"] == [] and report["ok"] is True
    assert report["totals"] == {
        "charged_cents": 7300,
        "refunded_cents": 1800,
        "platform_fee_cents": books_fee + games_fee - commission_on_item,
        "tax_cents": 0,
        "transferred_cents": 2750 + 3940,
        "reversed_cents": 1620,
    }
    total = sum(e.amount_cents for e in db.session.query(LedgerEntry).all())
    assert total == 0
    csv_text = api.get("/admin/payouts.csv", admin.token).get_data(as_text=True)
    assert len(csv_text.strip().splitlines()) == 1 + 2 + 1

    # Tampering with one transfer at Stripe is reported as exactly that mismatch.
    games_transfer = transfers[1]
    emulator_post(emulator, f"/_emulator/objects/{games_transfer['id']}", {"amount": 3000})
    report = api.get("/admin/reconciliation", admin.token).get_json()
    assert report["ok"] is False
    assert report["mismatches"] == [
        {
            "kind": "transfer_amount",
            "object_id": games_transfer["id"],
            "expected_cents": 3940,
            "actual_cents": 3000,
            "detail": f"vendor order {vo_games['id']}: transfer amount differs",
        }
    ]
    requests.delete(f"{emulator.url}/_emulator/objects/{transfers[0]['id']}", timeout=10)
    kinds = [
        m["kind"] for m in api.get("/admin/reconciliation", admin.token).get_json()["mismatches"]
    ]
    assert sorted(kinds) == ["transfer_amount", "transfer_missing"]


def test_refund_before_capture_is_refused_and_changes_nothing(api, webhooks):
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=2000, stock=3)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    body = checkout(api, buyer)
    pay(body)
    assert webhooks.flush_webhooks()
    vo_id = body["order"]["vendor_orders"][0]["id"]
    assert_error(
        api.post(f"/vendor/orders/{vo_id}/refund", vendor.token, json={"amount_cents": 100}),
        409,
        "not_captured",
    )
    assert api.get(f"/vendor/orders/{vo_id}", vendor.token).get_json()["status"] == "paid"
