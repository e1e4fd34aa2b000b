"""Helpers for money-flow tests: onboarding through the emulator, paying like Stripe.js."""

from __future__ import annotations

from typing import Any

import requests
import stripe

from marketplace.catalog.models import Vendor
from marketplace.db import db
from tests.helpers import VendorAccount, make_vendor

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def emulator_post(emulator: Any, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(f"{emulator.url}{path}", json=json or {}, timeout=10)
    response.raise_for_status()
    return response.json()


def emulator_state(emulator: Any) -> dict[str, Any]:
    return requests.get(f"{emulator.url}/_emulator/state", timeout=10).json()


def onboarded_vendor(api: Any, emulator: Any, name: str = "Vendor") -> VendorAccount:
    """A vendor who went through Connect onboarding; `account.updated` made it payable."""
    vendor = make_vendor(name, payable=False)
    started = api.post("/vendor/onboarding", vendor.token)
    assert started.status_code == 200, started.get_json()
    account_id = started.get_json()["stripe_account_id"]
    assert started.get_json()["onboarding_url"].startswith("http")
    emulator_post(emulator, f"/_emulator/accounts/{account_id}/complete_onboarding")
    assert emulator.flush_webhooks()
    db.session.rollback()  # end this session's snapshot: the webhook committed elsewhere
    assert db.session.get(Vendor, vendor.vendor.id).payouts_enabled
    return vendor


def pay(checkout_body: dict[str, Any], card: str = "pm_card_visa") -> dict[str, Any]:
    """Confirm the PaymentIntent with the publishable key, as Stripe.js would."""
    payment = checkout_body["payment"]
    client = stripe.StripeClient(
        payment["publishable_key"],
        base_addresses={"api": payment["api_base"]},
        http_client=stripe.RequestsClient(timeout=10),
    )
    try:
        intent = client.v1.payment_intents.confirm(
            payment["payment_intent_id"],
            params={"payment_method": card, "client_secret": payment["client_secret"]},
        )
        return intent.to_dict()
    except stripe.CardError as error:
        return {"error": error.code, "decline_code": getattr(error, "decline_code", None)}


def checkout(api: Any, buyer: Any, key: str = "k1") -> dict[str, Any]:
    response = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": ADDRESS},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def paid_order(api: Any, emulator: Any, vendors: int = 1, quantity: int = 2) -> dict[str, Any]:
    """One buyer's order from `vendors` onboarded vendors (flat $5 shipping each; the n-th sells
    at $20 + $10·n), `quantity` units each, authorized and marked paid by its webhook."""
    from marketplace.catalog.services import update_vendor_settings
    from tests.helpers import make_buyer, make_product

    buyer = make_buyer()
    sellers, variant_ids = [], []
    for n in range(vendors):
        seller = onboarded_vendor(api, emulator, f"Seller{n}")
        update_vendor_settings(seller.vendor.id, shipping_flat_cents=500)
        variant_id = make_product(seller, price_cents=2000 + 1000 * n, stock=5).variants[0].id
        added = api.post(
            "/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": quantity}
        )
        assert added.status_code in (200, 201), added.get_json()
        sellers.append(seller)
        variant_ids.append(variant_id)
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    assert emulator.flush_webhooks()
    order = api.get(f"/orders/{body['order']['id']}", buyer.token).get_json()
    assert order["status"] == "paid"
    return {
        "order": order,
        "buyer": buyer,
        "sellers": sellers,
        "variant_ids": variant_ids,
        "vendor_orders": order["vendor_orders"],
        "payment_intent_id": body["payment"]["payment_intent_id"],
    }


# --- webhook and fault helpers (test_webhooks, test_payment_faults, test_refunds) ----------


def emulator_events(emulator: Any) -> list[dict[str, Any]]:
    """Every event the emulator recorded, oldest first."""
    return list(emulator_state(emulator)["events"])


def post_event(
    client: Any,
    event: dict[str, Any] | bytes,
    secret: str | None = None,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
) -> Any:
    """POST one event to /webhooks/stripe through the test client, signed like Stripe does."""
    import json

    from flask import current_app

    from stripe_emulator import sign_payload

    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    if signature is None:
        signature = sign_payload(
            body, secret or current_app.config["STRIPE_WEBHOOK_SECRET"], timestamp=timestamp
        )
    headers = {"Stripe-Signature": signature} if signature else {}
    db.session.rollback()
    return client.post(
        "/webhooks/stripe", data=body, headers=headers, content_type="application/json"
    )


def add_fault(emulator: Any, path_prefix: str, **fault: Any) -> dict[str, Any]:
    """Inject a fault: `status`, `count`, `delay_ms`, `method`, `mode` ("before" / "after")."""
    return emulator_post(emulator, "/_emulator/faults", {"path_prefix": path_prefix, **fault})


def clear_faults(emulator: Any) -> None:
    requests.delete(f"{emulator.url}/_emulator/faults", timeout=10).raise_for_status()


def objects(state: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    value = state[kind]
    return value if isinstance(value, list) else list(value.values())


# --- the paid order's later steps and disputes (test_stripe_says_no, test_dispute_recovery,
# test_payment_faults) ------------------------------------------------------------------------

SHIP = {"carrier": "UPS", "tracking_number": "1Z1"}
# Stripe answers every POST with a 400 (a refusal) until the faults are cleared.
REFUSED = {"status": 400, "count": 100, "method": "POST"}


def stripe_objects(emulator: Any, kind: str) -> list[dict[str, Any]]:
    return objects(emulator_state(emulator), kind)


def deliver_all(api: Any, paid: dict[str, Any]) -> None:
    """Ship and deliver every part of a paid order (captured, then transferred)."""
    for part, seller in zip(paid["vendor_orders"], paid["sellers"], strict=True):
        shipped = api.post(f"/vendor/orders/{part['id']}/ship", seller.token, json=SHIP)
        assert shipped.status_code == 200, shipped.get_json()
        delivered = api.post(f"/vendor/orders/{part['id']}/deliver", seller.token)
        assert delivered.status_code == 200, delivered.get_json()


def set_dispute_mode(api: Any, admin: Any, mode: str) -> None:
    response = api.put("/admin/dispute-recovery", admin.token, json={"dispute_recovery": mode})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["dispute_recovery"] == mode


def open_dispute(emulator: Any, amount: int | None = None) -> dict[str, Any]:
    """The buyer disputes the captured charge; its webhooks are delivered."""
    (charge,) = [c for c in stripe_objects(emulator, "charges") if c["captured"]]
    body = {} if amount is None else {"amount": amount}
    dispute = emulator_post(emulator, f"/_emulator/charges/{charge['id']}/dispute", body)
    assert emulator.flush_webhooks()
    db.session.rollback()  # the webhook committed in the server's thread
    return dispute


def close_dispute(client: Any, dispute: dict[str, Any], status: str) -> None:
    """The bank decides (`won` / `lost`): Stripe's `charge.dispute.closed`."""
    from marketplace.db import utcnow

    event = {
        "id": f"evt_close_{dispute['id']}",
        "object": "event",
        "type": "charge.dispute.closed",
        "created": int(utcnow().timestamp()),
        "data": {"object": {**dispute, "status": status}},
    }
    response = post_event(client, event)
    assert response.status_code == 200, response.get_json()
    db.session.rollback()


def assert_books_match_stripe() -> dict[str, Any]:
    """The ledger sums to zero and reconciliation finds nothing: the report."""
    from marketplace.payouts import ledger, reconciliation

    db.session.rollback()
    assert ledger.balance_all() == 0
    report = reconciliation.reconcile()
    assert report["mismatches"] == [] and report["ok"] is True
    return report
