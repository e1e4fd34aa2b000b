"""Coupons along the whole money path (pay → ship → deliver → transfer → refund) through the
real SDK and the emulator: a platform coupon leaves every transfer as it would be without it, a
vendor coupon lowers that vendor's; refunds return what each unit was paid; the ledger and
reconciliation balance."""

from __future__ import annotations

import pytest

from marketplace.catalog.services import update_vendor_settings
from marketplace.coupons import services as coupons
from marketplace.orders.tax import set_rate
from tests.functional.money import (
    ADDRESS,
    SHIP,
    assert_books_match_stripe,
    emulator_state,
    onboarded_vendor,
    pay,
)
from tests.helpers import make_buyer, make_product


def _objects(state, kind):
    return state[kind] if isinstance(state[kind], list) else list(state[kind].values())


def _shop(api, emulator):
    books = onboarded_vendor(api, emulator, "Books")
    games = onboarded_vendor(api, emulator, "Games")
    update_vendor_settings(books.vendor.id, shipping_flat_cents=500)
    update_vendor_settings(games.vendor.id, shipping_flat_cents=700)
    set_rate("US", "CA", 1000)
    novel = make_product(books, price_cents=2500, stock=5)
    puzzle = make_product(games, price_cents=1800, stock=5)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": novel.variants[0].id, "quantity": 1})
    api.post("/cart/items", buyer.token, json={"variant_id": puzzle.variants[0].id, "quantity": 2})
    return books, games, buyer


# Each case: who funds it, its terms, then per vendor (Books, Games): discount, tax, commission,
# vendor earnings (= the transfer), and the refund of one puzzle: amount, commission returned.
CASES = {
    "platform": (
        None,
        {"code": "PLAT5", "kind": "percent", "percent_bps": 500},
        # 5 % of 61.00 = 3.05, split by commission 250 : 360 → 1.25 : 1.80
        ((125, 238, 125, 2750), (180, 342, 180, 3940)),
        (1710 + 171, 90),
    ),
    "vendor": (
        "games",
        {"code": "GAMES3", "kind": "fixed", "amount_cents": 300},
        # Games' lines only; commission 10 % of 33.00
        ((0, 250, 250, 2750), (300, 330, 330, 3670)),
        (1650 + 165, 165),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_coupon_order_through_transfer_and_refunds_balances(api, webhooks, case):
    emulator = webhooks
    funder, terms, expected, (refund_amount, refund_commission) = CASES[case]
    books, games, buyer = _shop(api, emulator)
    vendor_id = games.vendor.id if funder == "games" else None
    coupons.create(coupons.input_from(terms, set(terms)), vendor_id=vendor_id)

    placed = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": ADDRESS, "coupon_code": terms["code"].lower()},
        headers={"Idempotency-Key": "k1"},
    )
    assert placed.status_code == 201, placed.get_json()
    body = placed.get_json()
    order = body["order"]
    parts = order["vendor_orders"]
    got = tuple(
        (p["discount_cents"], p["tax_cents"], p["platform_fee_cents"], p["vendor_earnings_cents"])
        for p in parts
    )
    assert got == expected
    assert order["total_cents"] == sum(p["total_cents"] for p in parts)
    assert pay(body)["status"] == "requires_capture"
    assert emulator.flush_webhooks()

    for part, seller in zip(parts, (books, games), strict=True):
        assert (
            api.post(f"/vendor/orders/{part['id']}/ship", seller.token, json=SHIP).status_code
            == 200
        )
        assert api.post(f"/vendor/orders/{part['id']}/deliver", seller.token).status_code == 200
    state = emulator_state(emulator)
    (charge,) = [c for c in _objects(state, "charges") if c["captured"]]
    assert charge["amount_captured"] == order["total_cents"]
    transfers = sorted(t["amount"] for t in _objects(state, "transfers"))
    assert transfers == sorted(e[3] for e in expected)
    assert_books_match_stripe()

    games_part = parts[1]
    item_id = games_part["items"][0]["id"]
    refund = api.post(
        f"/vendor/orders/{games_part['id']}/refund",
        games.token,
        json={"items": [{"order_item_id": item_id, "quantity": 1}], "reason": "damaged"},
    )
    assert refund.status_code == 201, refund.get_json()
    refund = refund.get_json()
    assert (refund["amount_cents"], refund["commission_returned_cents"]) == (
        refund_amount,
        refund_commission,
    )
    assert refund["status"] == "succeeded"
    assert_books_match_stripe()

    rest = api.post(f"/vendor/orders/{games_part['id']}/refund", games.token, json={})
    assert rest.status_code == 201, rest.get_json()
    # the two refunds return exactly what the part was charged, discount and tax included
    assert refund["amount_cents"] + rest.get_json()["amount_cents"] == games_part["total_cents"]
    (charge,) = [c for c in _objects(emulator_state(emulator), "charges") if c["captured"]]
    assert charge["amount_refunded"] == games_part["total_cents"]
    report = assert_books_match_stripe()
    assert report["totals"]["refunded_cents"] == games_part["total_cents"]
