"""A paid order alerts each vendor of the variants it left at or below their low-stock
threshold, and of no other."""

from __future__ import annotations

from typing import Any

from tests.functional.money import checkout, pay
from tests.helpers import Api, make_buyer, make_product, make_vendor


def test_a_paid_order_alerts_its_vendor_only_of_variants_left_low(api: Api, webhooks: Any) -> None:
    vendor = make_vendor("Seller")
    scarce = make_product(vendor, title="Scarce lamp", stock=7)  # threshold 5: 2 bought, 5 left
    plenty = make_product(vendor, title="Plenty lamp", stock=50)
    other_vendor = make_vendor("Other")
    elsewhere = make_product(other_vendor, title="Other lamp", stock=6)  # 1 bought: 5 left
    buyer = make_buyer()
    for product, quantity in ((scarce, 2), (plenty, 2), (elsewhere, 1)):
        added = api.post(
            "/cart/items",
            buyer.token,
            json={"variant_id": product.variants[0].id, "quantity": quantity},
        )
        assert added.status_code == 201, added.get_json()
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    order = api.get(f"/orders/{body['order']['id']}", buyer.token).get_json()
    assert order["status"] == "paid"

    def low_stock_titles(account: Any) -> list[str]:
        notes = api.get("/notifications", account.token).get_json()["items"]
        return sorted(n["title"] for n in notes if n["kind"] == "low_stock")

    assert low_stock_titles(vendor) == [f"Low stock: Scarce lamp ({scarce.variants[0].sku})"]
    assert low_stock_titles(other_vendor) == [
        f"Low stock: Other lamp ({elsewhere.variants[0].sku})"
    ]
    assert low_stock_titles(buyer) == []
