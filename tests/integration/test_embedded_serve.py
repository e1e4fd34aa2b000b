"""The embedded default (`make run`) keeps the money right under concurrency and across restarts.

A real `flask --app wsgi serve` subprocess (embedded mode: SQLite, in-process worker, bundled
Stripe emulator with its state in the instance folder, webhooks back to the app), driven only
through the JSON API and the emulator's HTTP routes, as a newcomer's client would. Several buyers
pay, get shipped and delivered, have an item refunded or returned, all at once; afterwards the
app's books must agree with the emulator's objects, with no 5xx and no refusal that did not
happen (issue 17: concurrent POSTs raced on the emulator's state file and were answered 404).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.embedded_server import (
    ADMIN_EMAIL,
    PASSWORD,
    AnswerLog,
    EmbeddedServer,
    wait_for,
)

BUYERS = 8
ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}
_emails = itertools.count(1)


@pytest.fixture
def log() -> AnswerLog:
    return AnswerLog()


@pytest.fixture
def served(tmp_path: Path, log: AnswerLog) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path / "instance", log)
    server.instance_dir.mkdir()
    server.prepare()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Seller:
    token: str
    vendor_id: int
    account_id: str
    variant_ids: list[int]


@dataclass
class Purchase:
    """One buyer's order and what the test did to it (the expected books)."""

    buyer_token: str
    order: dict[str, Any]
    payment_intent_id: str
    refunded_cents: int = 0
    reversal_cents_by_vendor: dict[int, int] = field(default_factory=dict)


def token_for(server: EmbeddedServer, email: str) -> str:
    return server.ok("POST", "/auth/token", json={"email": email, "password": PASSWORD})["token"]


def register(server: EmbeddedServer, role: str) -> str:
    email = f"{role}{next(_emails)}@example.com"
    body = {"email": email, "password": PASSWORD, "name": f"{role} {email}", "role": role}
    return server.ok("POST", "/auth/register", json=body)["token"]


def onboarded_seller(server: EmbeddedServer, admin_token: str, name: str) -> Seller:
    """A vendor approved by the admin who finished Connect onboarding on the emulator."""
    token = register(server, "vendor")
    vendor_id = server.ok("GET", "/vendor", token)["id"]
    server.ok("POST", f"/admin/vendors/{vendor_id}/approve", admin_token)
    account_id = server.ok("POST", "/vendor/onboarding", token)["stripe_account_id"]
    server.emulator("POST", f"/_emulator/accounts/{account_id}/complete_onboarding")
    wait_for(lambda: server.ok("GET", "/vendor", token)["payouts_enabled"], timeout=30)
    product = server.ok(
        "POST",
        "/vendor/products",
        token,
        json={
            "title": f"{name} lamp",
            "description": "A lamp",
            "brand": name,
            "category": "Home",
            "status": "active",
            "variants": [
                {"sku": f"{name}-S", "price_cents": 1500, "stock": 100, "attributes": {}},
                {"sku": f"{name}-L", "price_cents": 2500, "stock": 100, "attributes": {}},
            ],
        },
    )
    return Seller(token, vendor_id, account_id, [v["id"] for v in product["variants"]])


def order_status(server: EmbeddedServer, token: str, order_id: int) -> str:
    return server.ok("GET", f"/orders/{order_id}", token)["status"]


def vendor_order(order: dict[str, Any], seller: Seller) -> dict[str, Any]:
    return next(vo for vo in order["vendor_orders"] if vo["vendor_id"] == seller.vendor_id)


def transferred(server: EmbeddedServer, seller: Seller, vendor_order_id: int) -> bool:
    earnings = server.ok("GET", "/vendor/earnings", seller.token)
    return any(
        t["vendor_order_id"] == vendor_order_id and t["stripe_transfer_id"]
        for t in earnings["transfers"]
    )


def buy(
    server: EmbeddedServer,
    sellers: list[Seller],
    number: int,
    together: threading.Barrier | None = None,
) -> Purchase:
    """Cart from both vendors, checkout, confirm on the emulator, wait for the webhook.

    With `together`, every buyer confirms at the same moment (the emulator's busiest case).
    """
    token = register(server, "buyer")
    first, second = sellers
    for variant_id, quantity in (
        (first.variant_ids[0], 2),
        (second.variant_ids[0], 1),
        (second.variant_ids[1], 1),
    ):
        line = {"variant_id": variant_id, "quantity": quantity}
        server.ok("POST", "/cart/items", token, json=line)
    placed = server.ok(
        "POST",
        "/checkout",
        token,
        json={"shipping_address": ADDRESS},
        headers={"Idempotency-Key": f"checkout-{number}"},
    )
    if together is not None:
        together.wait(timeout=120)
    intent = server.confirm_payment(placed["payment"])
    assert intent.status == "requires_capture", intent
    order_id = placed["order"]["id"]
    wait_for(lambda: order_status(server, token, order_id) == "paid", timeout=60)
    return Purchase(token, placed["order"], placed["payment"]["payment_intent_id"])


def ship_and_deliver(server: EmbeddedServer, seller: Seller, vendor_order_id: int) -> None:
    shipment = {"carrier": "UPS", "tracking_number": f"1Z{vendor_order_id}"}
    server.ok("POST", f"/vendor/orders/{vendor_order_id}/ship", seller.token, json=shipment)
    server.ok("POST", f"/vendor/orders/{vendor_order_id}/deliver", seller.token, json={})


def refund_one_item(server: EmbeddedServer, seller: Seller, purchase: Purchase) -> None:
    part = vendor_order(purchase.order, seller)
    item = part["items"][0]
    refund = server.ok(
        "POST",
        f"/vendor/orders/{part['id']}/refund",
        seller.token,
        json={"items": [{"order_item_id": item["id"], "quantity": 1}], "reason": "damaged"},
    )
    # the unit's price and its part of the line's tax (the seeded rates tax California)
    units = item["quantity"]
    unit_tax = (item["tax_cents"] * 2 + units) // (units * 2)
    assert refund["amount_cents"] == item["unit_price_cents"] + unit_tax, (refund, item)
    purchase.refunded_cents += refund["amount_cents"]
    reversals = purchase.reversal_cents_by_vendor
    reversals[seller.vendor_id] = (
        reversals.get(seller.vendor_id, 0) + refund["transfer_reversal_cents"]
    )


def return_one_item(server: EmbeddedServer, seller: Seller, purchase: Purchase) -> None:
    part = vendor_order(purchase.order, seller)
    item = part["items"][-1]
    plan = server.ok(
        "GET", f"/vendor/orders/{part['id']}/refund-preview?items={item['id']}:1", seller.token
    )
    requested = server.ok(
        "POST",
        f"/orders/{purchase.order['id']}/items/{item['id']}/return",
        purchase.buyer_token,
        json={"quantity": 1, "reason": "Does not fit"},
    )
    accepted = server.ok(
        "POST", f"/vendor/returns/{requested['id']}/accept", seller.token, json={"restock": True}
    )
    assert accepted["status"] == "accepted" and accepted["refund_id"], accepted
    purchase.refunded_cents += plan["amount_cents"]
    reversals = purchase.reversal_cents_by_vendor
    reversals[seller.vendor_id] = (
        reversals.get(seller.vendor_id, 0) + plan["transfer_reversal_cents"]
    )


def fulfil(
    server: EmbeddedServer,
    sellers: list[Seller],
    purchase: Purchase,
    number: int,
    together: threading.Barrier,
) -> None:
    """Both parts shipped and delivered; once paid out, one refund or one return."""
    together.wait(timeout=120)
    for seller in sellers:
        ship_and_deliver(server, seller, vendor_order(purchase.order, seller)["id"])
    for seller in sellers:
        vendor_order_id = vendor_order(purchase.order, seller)["id"]
        wait_for(lambda s=seller, v=vendor_order_id: transferred(server, s, v), timeout=60)
    first, second = sellers
    if number % 2 == 0:
        refund_one_item(server, first, purchase)
    else:
        return_one_item(server, second, purchase)


def settle(server: EmbeddedServer, admin_token: str) -> dict[str, Any]:
    """Wait for the webhooks and the worker; the reconciliation once it is clean."""
    flushed = server.emulator("POST", "/_emulator/webhooks/flush", {"timeout": 60})
    assert flushed["ok"], flushed

    def clean() -> dict[str, Any] | None:
        report = server.ok("GET", "/admin/reconciliation", admin_token)
        return report if report["ok"] else None

    try:
        return wait_for(clean, timeout=60, interval=1.0)
    except AssertionError:
        report = server.ok("GET", "/admin/reconciliation", admin_token)
        raise AssertionError(f"reconciliation never became ok: {report}") from None


def assert_books_match_the_emulator(
    server: EmbeddedServer, sellers: list[Seller], purchases: list[Purchase]
) -> None:
    state = server.emulator_state()
    charges = state["charges"]
    for purchase in purchases:
        (charge,) = [c for c in charges if c["payment_intent"] == purchase.payment_intent_id]
        assert charge["amount_captured"] - charge["amount_refunded"] == (
            purchase.order["total_cents"] - purchase.refunded_cents
        ), (purchase.order["id"], charge)
    for seller in sellers:
        transfers = [t for t in state["transfers"] if t["destination"] == seller.account_id]
        reversals = [
            r for r in state["transfer_reversals"] if r["transfer"] in {t["id"] for t in transfers}
        ]
        sent = sum(t["amount"] for t in transfers)
        reversed_ = sum(r["amount"] for r in reversals)
        assert reversed_ == sum(t["amount_reversed"] for t in transfers)
        earned = sum(vendor_order(p.order, seller)["vendor_earnings_cents"] for p in purchases)
        taken_back = sum(p.reversal_cents_by_vendor.get(seller.vendor_id, 0) for p in purchases)
        assert (sent, reversed_) == (earned, taken_back), seller
        earnings = server.ok("GET", "/vendor/earnings", seller.token)
        assert (earnings["transferred_cents"], earnings["reversed_cents"]) == (sent, reversed_)
        assert earnings["pending_cents"] == 0, earnings


def assert_nothing_failed(log: AnswerLog) -> None:
    assert log.server_errors() == []
    assert log.with_error_code("payment_provider_rejected") == []
    assert log.with_error_code("api_error") == []


def test_concurrent_money_flows_keep_the_books_equal_to_the_emulator(
    served: EmbeddedServer, log: AnswerLog
) -> None:
    admin_token = token_for(served, ADMIN_EMAIL)
    sellers = [onboarded_seller(served, admin_token, name) for name in ("North", "South")]

    paying, shipping = threading.Barrier(BUYERS), threading.Barrier(BUYERS)
    with ThreadPoolExecutor(BUYERS) as pool:
        purchases = list(pool.map(lambda n: buy(served, sellers, n, paying), range(BUYERS)))
    with ThreadPoolExecutor(BUYERS) as pool:
        list(pool.map(lambda n: fulfil(served, sellers, purchases[n], n, shipping), range(BUYERS)))

    report = settle(served, admin_token)
    assert report["mismatches"] == []
    assert report["totals"]["refunded_cents"] == sum(p.refunded_cents for p in purchases)
    assert_books_match_the_emulator(served, sellers, purchases)
    assert_nothing_failed(log)


def test_a_crashed_server_restarts_with_every_stripe_object_and_the_flow_continues(
    served: EmbeddedServer, log: AnswerLog
) -> None:
    admin_token = token_for(served, ADMIN_EMAIL)
    sellers = [onboarded_seller(served, admin_token, name) for name in ("East", "West")]
    purchase = buy(served, sellers, 0)
    first, second = sellers
    first_part = vendor_order(purchase.order, first)["id"]
    shipment = {"carrier": "UPS", "tracking_number": "1Z0"}
    served.ok("POST", f"/vendor/orders/{first_part}/ship", first.token, json=shipment)
    wait_for(lambda: [c["captured"] for c in served.emulator_state()["charges"]] == [True])
    served.emulator("POST", "/_emulator/webhooks/flush", {"timeout": 60})
    before = served.emulator_state()

    served.kill()
    served.start()

    after = served.emulator_state()
    for kind in ("accounts", "payment_intents", "charges", "balance_transactions", "events"):
        assert [o["id"] for o in after[kind]] == [o["id"] for o in before[kind]], kind
    assert after["charges"] == before["charges"]
    assert after["payment_intents"] == before["payment_intents"]

    served.ok("POST", f"/vendor/orders/{first_part}/deliver", first.token, json={})
    ship_and_deliver(served, second, vendor_order(purchase.order, second)["id"])
    for seller in sellers:
        vendor_order_id = vendor_order(purchase.order, seller)["id"]
        wait_for(lambda s=seller, v=vendor_order_id: transferred(served, s, v), timeout=60)
    refund_one_item(served, first, purchase)

    report = settle(served, admin_token)
    assert report["mismatches"] == []
    assert_books_match_the_emulator(served, sellers, [purchase])
    assert_nothing_failed(log)
