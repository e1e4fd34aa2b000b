"""Held stock leaves, comes back and is sold exactly once, on a database with RETURNING and on
one without (SQLite before 3.35, where each row is claimed by its own guarded UPDATE)."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.catalog.models import Variant
from marketplace.db import db
from tests.functional.money import checkout, emulator_events, pay, post_event
from tests.helpers import Api, make_buyer, make_product, make_vendor


def _stock(variant_id: int) -> tuple[int, int]:
    db.session.rollback()
    variant = db.session.get(Variant, variant_id)
    return variant.on_hand, variant.reserved


@pytest.fixture(params=["returning", "no returning"])
def dialect_returning(request: Any, app: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no returning":
        monkeypatch.setattr(db.engine.dialect, "update_returning", False)
    return request.param


def test_held_stock_is_committed_or_released_once(
    api: Api, emulator: Any, client: Any, dialect_returning: str
) -> None:
    vendor = make_vendor()
    lamp, mug = (make_product(vendor, price_cents=1000, stock=5) for _ in range(2))
    lamp_id, mug_id = lamp.variants[0].id, mug.variants[0].id
    paying, cancelling = make_buyer(), make_buyer()
    for buyer in (paying, cancelling):
        for variant_id, quantity in ((lamp_id, 2), (mug_id, 1)):
            added = api.post(
                "/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": quantity}
            )
            assert added.status_code == 201, added.get_json()
    paid = checkout(api, paying, "paying")
    cancelled = checkout(api, cancelling, "cancelling")
    assert _stock(lamp_id) == (5, 4) and _stock(mug_id) == (5, 2)

    cancel_url = f"/orders/{cancelled['order']['id']}/cancel"
    assert api.post(cancel_url, cancelling.token).status_code == 200
    assert _stock(lamp_id) == (5, 2) and _stock(mug_id) == (5, 1)

    assert pay(paid)["status"] == "requires_capture"
    intent = paid["payment"]["payment_intent_id"]
    (authorized,) = [
        e
        for e in emulator_events(emulator)
        if e["type"] == "payment_intent.amount_capturable_updated"
        and e["data"]["object"]["id"] == intent
    ]
    for _ in range(2):  # delivered twice: sold once
        assert post_event(client, authorized).status_code == 200
    assert _stock(lamp_id) == (3, 0) and _stock(mug_id) == (4, 0)
    assert api.post(cancel_url, cancelling.token).status_code == 409  # nothing left to release
    assert _stock(lamp_id) == (3, 0) and _stock(mug_id) == (4, 0)
