"""Refunds, reversals and cancellations of VendorOrders, checked at Stripe to the cent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from marketplace.catalog.models import Variant
from marketplace.catalog.services import update_vendor_settings
from marketplace.db import db
from marketplace.orders.tax import set_rate
from marketplace.payments.models import PaymentStatus
from marketplace.payments.services import payment_of
from marketplace.payouts import ledger, reconciliation
from marketplace.payouts.models import Refund, Transfer
from marketplace.settlement import payout
from tests.functional.money import checkout, emulator_state, objects, onboarded_vendor, pay
from tests.helpers import assert_error, make_admin, make_buyer, make_product

SHIP = {"carrier": "UPS", "tracking_number": "1Z1"}
# Vendor 0 sells A (20.00 × 2) and B (10.00 × 1), vendor 1 sells C (15.00 × 1); shipping 5.00
# each, tax 8 % (CA), commission 10 % of items.
VO0 = {"total": 5900, "tax": 400, "fee": 500, "earnings": 5000}
VO1 = {"total": 2120, "tax": 120, "fee": 150, "earnings": 1850}


def _paid_order(api: Any, emulator: Any, vendors: int = 1) -> dict[str, Any]:
    set_rate("US", "CA", 800)
    buyer = make_buyer()
    sellers, variants = [], []
    for n, prices in enumerate([[(2000, 2), (1000, 1)], [(1500, 1)]][:vendors]):
        seller = onboarded_vendor(api, emulator, f"Seller{n}")
        update_vendor_settings(seller.vendor.id, shipping_flat_cents=500)
        sellers.append(seller)
        for price, quantity in prices:
            variant_id = make_product(seller, price_cents=price, stock=5).variants[0].id
            variants.append(variant_id)
            api.post(
                "/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": quantity}
            )
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    assert emulator.flush_webhooks()
    order = api.get(f"/orders/{body['order']['id']}", buyer.token).get_json()
    assert order["status"] == "paid"
    vos = order["vendor_orders"]
    assert [(vo["total_cents"], vo["tax_cents"]) for vo in vos] == [
        (v["total"], v["tax"]) for v in (VO0, VO1)[:vendors]
    ]
    items = {i["variant_id"]: i["id"] for vo in vos for i in vo["items"]}
    return {
        "order": order,
        "buyer": buyer,
        "sellers": sellers,
        "vos": vos,
        "variants": variants,
        "items": [items[v] for v in variants],
        "payment_intent_id": body["payment"]["payment_intent_id"],
    }


def _vo_url(paid: dict[str, Any], index: int = 0) -> str:
    return f"/vendor/orders/{paid['vos'][index]['id']}"


def _ship(api: Any, paid: dict[str, Any], index: int = 0, deliver: bool = False) -> None:
    token = paid["sellers"][index].token
    response = api.post(f"{_vo_url(paid, index)}/ship", token, json=SHIP)
    assert response.status_code == 200, response.get_json()
    if deliver:
        response = api.post(f"{_vo_url(paid, index)}/deliver", token)
        assert response.status_code == 200, response.get_json()


def _preview_and_refund(api: Any, paid: dict[str, Any], query: str, body: dict[str, Any]) -> dict:
    token = paid["sellers"][0].token
    preview = api.get(f"{_vo_url(paid)}/refund-preview?{query}", token)
    assert preview.status_code == 200, preview.get_json()
    preview = preview.get_json()
    response = api.post(f"{_vo_url(paid)}/refund", token, json={"reason": "return", **body})
    assert response.status_code == 201, response.get_json()
    refund = response.get_json()
    assert refund["status"] == "succeeded"
    for name in (
        "amount_cents",
        "tax_cents",
        "commission_returned_cents",
        "transfer_reversal_cents",
    ):
        assert refund[name] == preview[name], name
    db.session.rollback()
    assert db.session.get(Refund, refund["id"]).vendor_share_cents == preview["vendor_share_cents"]
    return {**refund, "restock": preview["restock"]}


def _assert_books_balance() -> None:
    db.session.rollback()
    assert ledger.balance_all() == 0
    report = reconciliation.reconcile()
    assert report["mismatches"] == [] and report["ok"] is True


def _stock(variant_id: int) -> tuple[int, int]:
    db.session.rollback()
    variant = db.session.get(Variant, variant_id)
    return variant.on_hand, variant.reserved


def test_refunds_after_transfer_by_items_amount_shipping_and_whole(api, webhooks):
    paid = _paid_order(api, webhooks)
    seller = paid["sellers"][0]
    item_a, item_b = paid["items"]
    _ship(api, paid, deliver=True)
    (transfer,) = objects(emulator_state(webhooks), "transfers")
    assert transfer["amount"] == VO0["earnings"]

    by_item = _preview_and_refund(
        api,
        paid,
        f"items={item_a}:1&restock=true",  # delivered: restocked only when asked
        {"items": [{"order_item_id": item_a, "quantity": 1}], "restock": True},
    )
    assert (by_item["amount_cents"], by_item["tax_cents"]) == (2000 + 160, 160)
    assert (by_item["commission_returned_cents"], by_item["transfer_reversal_cents"]) == (200, 1800)
    assert by_item["restock"] == [{"variant_id": paid["variants"][0], "quantity": 1}]
    assert _stock(paid["variants"][0]) == (5 - 2 + 1, 0)

    by_amount = _preview_and_refund(api, paid, "amount_cents=700", {"amount_cents": 700})
    assert (by_amount["amount_cents"], by_amount["tax_cents"]) == (700, 0)
    commission = by_amount["commission_returned_cents"]
    assert commission == 64  # the fee in proportion: 500 × 700 / 5500
    assert by_amount["transfer_reversal_cents"] == 700 - commission

    with_shipping = _preview_and_refund(
        api,
        paid,
        f"items={item_b}:1&include_shipping=true",
        {"items": [{"order_item_id": item_b, "quantity": 1}], "include_shipping": True},
    )
    assert (with_shipping["amount_cents"], with_shipping["tax_cents"]) == (1000 + 500 + 80, 80)
    assert with_shipping["transfer_reversal_cents"] == 1500 - 100

    vo = api.get(_vo_url(paid), seller.token).get_json()
    assert vo["status"] == "delivered"
    assert [i["refunded_quantity"] for i in vo["items"]] == [1, 1]

    whole = _preview_and_refund(api, paid, "", {})
    left_part = 5500 - 2000 - 700 - 1500
    assert (whole["amount_cents"], whole["tax_cents"]) == (left_part + 160, 160)
    assert whole["commission_returned_cents"] == 500 - 200 - commission - 100
    refunds = [by_item, by_amount, with_shipping, whole]
    assert sum(r["amount_cents"] for r in refunds) == VO0["total"]
    assert sum(r["transfer_reversal_cents"] for r in refunds) == VO0["earnings"]
    vo = api.get(_vo_url(paid), seller.token).get_json()
    assert vo["status"] == "refunded"
    assert [i["refunded_quantity"] for i in vo["items"]] == [2, 1]
    order = api.get(f"/orders/{paid['order']['id']}", paid["buyer"].token).get_json()
    assert order["status"] == "refunded"
    assert_error(
        api.post(f"{_vo_url(paid)}/refund", seller.token, json={"reason": "again"}),
        409,
        "nothing_to_refund",
    )

    state = emulator_state(webhooks)
    (charge,) = [c for c in objects(state, "charges") if c["captured"]]
    assert (charge["amount_captured"], charge["amount_refunded"]) == (VO0["total"], VO0["total"])
    assert sorted(r["amount"] for r in objects(state, "refunds")) == sorted(
        r["amount_cents"] for r in refunds
    )
    (transfer,) = objects(state, "transfers")
    assert transfer["amount_reversed"] == VO0["earnings"]
    assert len(objects(state, "transfer_reversals")) == 4

    earnings = api.get("/vendor/earnings", seller.token).get_json()
    assert earnings["transferred_cents"] == VO0["earnings"]
    assert earnings["reversed_cents"] == VO0["earnings"]
    assert earnings["pending_cents"] == 0
    assert [t["amount_cents"] for t in earnings["transfers"]] == [VO0["earnings"]]
    _assert_books_balance()


def test_over_refund_is_rejected_and_changes_nothing(api, webhooks):
    paid = _paid_order(api, webhooks)
    seller = paid["sellers"][0]
    item_a, _ = paid["items"]
    _ship(api, paid)
    url = f"{_vo_url(paid)}/refund"
    stock = _stock(paid["variants"][0])

    error = assert_error(
        api.post(url, seller.token, json={"amount_cents": 5501, "reason": "too much"}), 422
    )
    assert "amount_cents" in error["details"]["fields"]
    assert_error(api.post(url, seller.token, json={"amount_cents": 0, "reason": "zero"}), 422)
    error = assert_error(
        api.post(
            url,
            seller.token,
            json={"items": [{"order_item_id": item_a, "quantity": 3}], "reason": "three"},
        ),
        422,
    )
    assert "items[0].quantity" in error["details"]["fields"]
    assert_error(
        api.post(
            url,
            seller.token,
            json={"items": [{"order_item_id": 999999, "quantity": 1}], "reason": "ghost"},
        ),
        404,
    )
    assert_error(api.get(f"{_vo_url(paid)}/refund-preview?amount_cents=5501", seller.token), 422)

    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
    assert objects(emulator_state(webhooks), "refunds") == []
    assert _stock(paid["variants"][0]) == stock
    vo = api.get(_vo_url(paid), seller.token).get_json()
    assert vo["status"] == "shipped"
    assert all(i["refunded_quantity"] == 0 for i in vo["items"])
    _assert_books_balance()


def test_refund_permissions(api, webhooks):
    paid = _paid_order(api, webhooks, vendors=2)
    own, other = paid["sellers"]
    _ship(api, paid)
    body = {"amount_cents": 100, "reason": "goodwill"}
    assert_error(api.post(f"{_vo_url(paid)}/refund", other.token, json=body), 404)
    assert_error(api.get(f"{_vo_url(paid)}/refund-preview", other.token), 404)
    assert_error(api.post(f"{_vo_url(paid)}/refund", paid["buyer"].token, json=body), 403)
    assert_error(api.post(f"{_vo_url(paid)}/refund", None, json=body), 401)
    assert objects(emulator_state(webhooks), "refunds") == []

    admin = make_admin()
    preview = api.get(f"{_vo_url(paid)}/refund-preview?amount_cents=100", admin.token)
    assert preview.status_code == 200, preview.get_json()
    response = api.post(f"{_vo_url(paid)}/refund", admin.token, json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["amount_cents"] == 100
    assert [r["amount"] for r in objects(emulator_state(webhooks), "refunds")] == [100]
    _assert_books_balance()


def test_refund_before_transfer_reduces_the_transfer(api, webhooks, app, monkeypatch):
    monkeypatch.setitem(app.config, "PAYOUT_HOLD_SECONDS", 7 * 24 * 3600)
    paid = _paid_order(api, webhooks)
    seller = paid["sellers"][0]
    item_a, _ = paid["items"]
    _ship(api, paid, deliver=True)
    db.session.rollback()
    assert db.session.scalars(select(Transfer)).all() == []
    assert api.get("/vendor/earnings", seller.token).get_json()["pending_cents"] == 5000

    refund = _preview_and_refund(
        api, paid, f"items={item_a}:1", {"items": [{"order_item_id": item_a, "quantity": 1}]}
    )
    assert (refund["amount_cents"], refund["transfer_reversal_cents"]) == (2160, 0)
    earnings = api.get("/vendor/earnings", seller.token).get_json()
    assert (earnings["pending_cents"], earnings["transferred_cents"]) == (5000 - 1800, 0)

    monkeypatch.setitem(app.config, "PAYOUT_HOLD_SECONDS", 0)
    payout.transfer_vendor_order(paid["vos"][0]["id"])
    state = emulator_state(webhooks)
    (transfer,) = objects(state, "transfers")
    assert (transfer["amount"], transfer["amount_reversed"]) == (5000 - 1800, 0)
    assert objects(state, "transfer_reversals") == []
    earnings = api.get("/vendor/earnings", seller.token).get_json()
    assert earnings["transferred_cents"] == 3200
    assert (earnings["pending_cents"], earnings["reversed_cents"]) == (0, 0)
    _assert_books_balance()


def test_vendor_cancel_before_shipping_is_left_out_of_the_capture(api, webhooks):
    paid = _paid_order(api, webhooks, vendors=2)
    _, other = paid["sellers"]
    response = api.post(f"{_vo_url(paid, 1)}/cancel", other.token, json={"reason": "no stock"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "cancelled"
    assert _stock(paid["variants"][2]) == (5, 0)
    _ship(api, paid)

    state = emulator_state(webhooks)
    (intent,) = objects(state, "payment_intents")
    assert (intent["status"], intent["amount_received"]) == ("succeeded", VO0["total"])
    (charge,) = [c for c in objects(state, "charges") if c["captured"]]
    assert charge["amount_captured"] == VO0["total"]
    assert objects(state, "refunds") == []
    _assert_books_balance()


def test_cancelling_every_part_voids_the_authorization(api, webhooks):
    paid = _paid_order(api, webhooks)
    response = api.post(
        f"{_vo_url(paid)}/cancel", paid["sellers"][0].token, json={"reason": "closed"}
    )
    assert response.status_code == 200, response.get_json()
    assert webhooks.flush_webhooks()

    (intent,) = objects(emulator_state(webhooks), "payment_intents")
    assert (intent["status"], intent["amount_received"]) == ("canceled", 0)
    assert payment_of(paid["order"]["id"]).status is PaymentStatus.CANCELED
    order = api.get(f"/orders/{paid['order']['id']}", paid["buyer"].token).get_json()
    assert order["status"] == "cancelled"
    assert [_stock(v) for v in paid["variants"]] == [(5, 0), (5, 0)]
    _assert_books_balance()


def test_buyer_cancel_after_capture_refunds_the_unshipped_part(api, webhooks):
    paid = _paid_order(api, webhooks, vendors=2)
    _ship(api, paid)  # captures both parts
    response = api.post(f"/orders/{paid['order']['id']}/cancel", paid["buyer"].token)
    assert response.status_code == 200, response.get_json()
    statuses = [vo["status"] for vo in response.get_json()["vendor_orders"]]
    assert statuses == ["shipped", "cancelled"]

    state = emulator_state(webhooks)
    (charge,) = [c for c in objects(state, "charges") if c["captured"]]
    total = VO0["total"] + VO1["total"]
    assert (charge["amount_captured"], charge["amount_refunded"]) == (total, VO1["total"])
    assert [r["amount"] for r in objects(state, "refunds")] == [VO1["total"]]
    assert objects(state, "transfer_reversals") == []
    db.session.rollback()
    (refund,) = db.session.scalars(select(Refund)).all()
    assert (refund.reason, refund.tax_cents, refund.amount_cents) == ("cancelled", 120, 2120)
    assert refund.commission_returned_cents == VO1["fee"]
    assert _stock(paid["variants"][2]) == (5, 0)
    _assert_books_balance()


def test_a_part_cancelled_before_the_capture_cannot_be_refunded_out_of_the_others(api, webhooks):
    paid = _paid_order(api, webhooks, vendors=2)
    other = paid["sellers"][1]
    cancelled = api.post(f"{_vo_url(paid, 1)}/cancel", other.token, json={"reason": "no stock"})
    assert cancelled.status_code == 200, cancelled.get_json()
    _ship(api, paid)  # captures the first vendor's part only
    db.session.rollback()
    stock_before = [db.session.get(Variant, v).on_hand for v in paid["variants"]]

    body = {"reason": "goodwill"}
    for request in (body, {**body, "amount_cents": 100}):
        assert_error(
            api.post(f"{_vo_url(paid, 1)}/refund", other.token, json=request),
            409,
            "nothing_to_refund",
        )
    assert_error(api.get(f"{_vo_url(paid, 1)}/refund-preview", other.token), 409)
    assert objects(emulator_state(webhooks), "refunds") == []
    db.session.rollback()
    assert [db.session.get(Variant, v).on_hand for v in paid["variants"]] == stock_before
    _assert_books_balance()


def _refund(api: Any, paid: dict[str, Any], body: dict[str, Any]) -> Any:
    return api.post(f"{_vo_url(paid)}/refund", paid["sellers"][0].token, json=body)


def test_refunds_never_give_back_more_than_was_charged(api, webhooks):
    paid = _paid_order(api, webhooks)
    item_a, item_b = paid["items"]
    _ship(api, paid, deliver=True)
    a_with_shipping = {
        "items": [{"order_item_id": item_a, "quantity": 1}],
        "include_shipping": True,
    }
    first = _refund(api, paid, a_with_shipping).get_json()
    assert (first["amount_cents"], first["tax_cents"]) == (2000 + 500 + 160, 160)
    again = _refund(api, paid, a_with_shipping).get_json()
    assert (again["amount_cents"], again["tax_cents"]) == (2000 + 160, 160)  # shipping once
    # 1000 of the vendor's part is left (item B): a goodwill amount uses most of it ...
    assert _refund(api, paid, {"amount_cents": 900}).status_code == 201
    # ... so item B (worth 1000) can no longer be refunded as an item.
    response = _refund(api, paid, {"items": [{"order_item_id": item_b, "quantity": 1}]})
    assert_error(response, 422)
    assert _refund(api, paid, {"items": []}).status_code == 422
    last = _refund(api, paid, {}).get_json()  # what is left, and its tax
    assert (last["amount_cents"], last["tax_cents"]) == (100 + 80, 80)
    refunded = sum(r["amount"] for r in objects(emulator_state(webhooks), "refunds"))
    assert refunded == VO0["total"]
    assert_error(_refund(api, paid, {"amount_cents": 1}), 409, "nothing_to_refund")
    _assert_books_balance()


def test_a_refund_by_amount_of_all_that_is_left_returns_the_tax_too(api, webhooks):
    paid = _paid_order(api, webhooks)
    _ship(api, paid, deliver=True)
    whole_part = VO0["total"] - VO0["tax"]
    refund = _refund(api, paid, {"amount_cents": whole_part}).get_json()
    assert (refund["amount_cents"], refund["tax_cents"]) == (VO0["total"], VO0["tax"])
    order = api.get(f"/orders/{paid['order']['id']}", paid["buyer"].token).get_json()
    vo = order["vendor_orders"][0]
    assert vo["status"] == "refunded"
    assert all(i["refunded_quantity"] == i["quantity"] for i in vo["items"])
    _assert_books_balance()


def test_buyer_cannot_cancel_an_order_whose_parts_all_shipped(api, webhooks):
    paid = _paid_order(api, webhooks)
    _ship(api, paid)
    assert _refund(api, paid, {"amount_cents": 100}).status_code == 201
    order_url = f"/orders/{paid['order']['id']}"
    before = api.get(order_url, paid["buyer"].token).get_json()
    assert before["status"] == "partially_refunded"
    assert_error(api.post(f"{order_url}/cancel", paid["buyer"].token), 409, "illegal_transition")
    assert api.get(order_url, paid["buyer"].token).get_json() == before
    deliver = api.post(f"{_vo_url(paid)}/deliver", paid["sellers"][0].token)
    assert deliver.status_code == 200, deliver.get_json()


def test_a_part_cancelled_before_payment_leaves_the_rest_waiting_for_it(api, webhooks):
    buyer = make_buyer()
    sellers = [onboarded_vendor(api, webhooks, f"Seller{n}") for n in range(2)]
    variants = [make_product(s, price_cents=1000, stock=3).variants[0].id for s in sellers]
    for variant_id in variants:
        api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    body = checkout(api, buyer)
    first, second = body["order"]["vendor_orders"]
    cancelled = api.post(
        f"/vendor/orders/{second['id']}/cancel", sellers[1].token, json={"reason": "no stock"}
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    order_url = f"/orders/{body['order']['id']}"
    assert api.get(order_url, buyer.token).get_json()["status"] == "pending_payment"
    assert _stock(variants[1]) == (3, 0)  # released at once

    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    order = api.get(order_url, buyer.token).get_json()
    assert order["status"] == "paid"
    assert [vo["status"] for vo in order["vendor_orders"]] == ["paid", "cancelled"]
    assert _stock(variants[0]) == (2, 0)  # sold: reservation committed
    shipped = api.post(f"/vendor/orders/{first['id']}/ship", sellers[0].token, json=SHIP)
    assert shipped.status_code == 200, shipped.get_json()
    db.session.rollback()
    assert payment_of(body["order"]["id"]).amount_captured_cents == first["total_cents"]
    _assert_books_balance()


def test_a_vendor_refund_named_cancelled_does_not_stand_in_for_the_cancellation_refund(
    api, webhooks
):
    paid = _paid_order(api, webhooks, vendors=2)
    _ship(api, paid)  # captures both parts
    goodwill = {"amount_cents": 100, "reason": "cancelled"}
    response = api.post(f"{_vo_url(paid, 1)}/refund", paid["sellers"][1].token, json=goodwill)
    assert response.status_code == 201, response.get_json()
    cancel = api.post(f"/orders/{paid['order']['id']}/cancel", paid["buyer"].token)
    assert cancel.status_code == 200, cancel.get_json()
    amounts = [r["amount"] for r in objects(emulator_state(webhooks), "refunds")]
    assert amounts == [100, VO1["total"] - 100]  # the buyer gets all of that part back
    _assert_books_balance()


def test_reconciliation_sees_an_unrecorded_capture_and_an_overpaid_vendor(
    api, webhooks, monkeypatch
):
    from marketplace.payments import gateway
    from marketplace.settlement import refunds

    # A capture whose answer never reached us: Stripe took the money, we hold "authorized".
    unshipped = _paid_order(api, webhooks)
    intent_id = payment_of(unshipped["order"]["id"]).payment_intent_id
    db.session.rollback()
    gateway.capture_payment_intent(intent_id, VO0["total"], key="lost-answer")
    report = reconciliation.reconcile()
    kinds = [(m["kind"], m["object_id"], m["actual_cents"]) for m in report["mismatches"]]
    assert kinds == [("capture_unrecorded", intent_id, VO0["total"])]

    # A refund that books no reversal although the vendor was paid (as one planned while the
    # transfer was in flight did, before transfers were claimed): the vendor keeps it all.
    paid = _paid_order(api, webhooks)
    _ship(api, paid, deliver=True)
    monkeypatch.setattr(refunds, "started_transfer", lambda vendor_order_id: None)
    refund = _refund(api, paid, {"amount_cents": 1000}).get_json()
    assert refund["transfer_reversal_cents"] == 0
    db.session.rollback()
    overpaid = [
        m for m in reconciliation.reconcile()["mismatches"] if m["kind"] == "vendor_overpaid"
    ]
    (mismatch,) = overpaid
    vendor_share = refund["amount_cents"] - refund["commission_returned_cents"]
    assert (mismatch["expected_cents"], mismatch["actual_cents"]) == (
        VO0["earnings"] - vendor_share,
        VO0["earnings"],
    )
