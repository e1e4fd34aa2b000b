"""Each hot request's database round trips, held to a budget (issue 11).

A statement added to one of these paths (a lazy load, a flush that was not needed, a query per
line) fails here instead of slowing every buyer down. Each request starts from a fresh session,
as in production, so nothing is served from an earlier request's identity map.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from marketplace.accounts import services as accounts
from marketplace.accounts.models import ApiToken
from marketplace.catalog.models import Variant
from marketplace.db import db, transaction, utcnow
from marketplace.images import services as images
from marketplace.inventory.services import set_on_hand
from marketplace.orders.commission import set_category_bps
from marketplace.orders.models import Order
from marketplace.orders.tax import set_rate
from tests.helpers import Api, make_buyer, make_product, make_vendor, statements_sent
from tests.image_files import image_bytes

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}

BUDGETS = {
    # 12 for a one-line cart, and one guarded UPDATE per further line (each line's own answer
    # says whether it sold its variant out, which the search index must learn): this cart has 2.
    "checkout": 13,
    # the losers of a race for the last units: refused from the rows the cart's statement read,
    # before an order is inserted (then the Idempotency-Key is looked up for a replay)
    "out-of-stock checkout": 3,
    "add to cart": 4,
    "cart": 2,
    "product": 2,
    "order": 4,
    "search": 1,
}


def _within_budget(name: str, api_call: Any, status: int | None = None) -> Any:
    db.session.remove()
    with statements_sent() as sent:
        response = api_call()
    if status is None:
        assert response.status_code < 300, response.get_json()
    else:
        assert response.status_code == status, response.get_json()
    budget = BUDGETS[name]
    assert len(sent) <= budget, f"{name}: {len(sent)} statements, budget {budget}:\n{sent}"
    return response


@pytest.fixture
def shop(api: Api) -> dict[str, Any]:
    """Two vendors, a product each (one in a category with its own commission, two images;
    the other one image), a tax rate, and a buyer with one line of each vendor in the cart."""
    set_rate("US", "CA", 725)
    first, second = make_vendor(), make_vendor()
    shirt = make_product(first, price_cents=2500, stock=50, category="Clothing/Tops")
    mug = make_product(second, price_cents=1200, stock=50, category="Kitchen")
    set_category_bps("Clothing", 1500)
    for colour in ((200, 0, 0), (0, 200, 0)):
        images.add_image(first.vendor.id, shirt.id, image_bytes(colour=colour), alt_text="Shirt")
    images.add_image(second.vendor.id, mug.id, image_bytes("PNG"))
    buyer = make_buyer()
    ids = {
        "shirt": shirt.id,
        "mug": mug.id,
        "shirt_variant": shirt.variants[0].id,
        "mug_variant": mug.variants[0].id,
    }
    api.post("/cart/items", buyer.token, json={"variant_id": ids["shirt_variant"], "quantity": 2})
    return {"buyer": buyer, **ids}


def test_add_to_cart_and_cart(api: Api, shop: dict[str, Any]) -> None:
    token = shop["buyer"].token
    added = _within_budget(
        "add to cart",
        lambda: api.post("/cart/items", token, json={"variant_id": shop["mug_variant"]}),
    )
    assert [i["variant_id"] for i in added.get_json()["items"]] == [
        shop["shirt_variant"],
        shop["mug_variant"],
    ]
    cart = _within_budget("cart", lambda: api.get("/cart", token)).get_json()
    assert all(item["image"]["urls"]["320"] for item in cart["items"])
    assert all(item["image"] for item in added.get_json()["items"])
    assert cart["subtotal_cents"] == 2 * 2500 + 1200
    assert [v["subtotal_cents"] for v in cart["vendors"]] == [5000, 1200]


def test_adding_to_a_line_already_in_the_cart(api: Api, shop: dict[str, Any]) -> None:
    token = shop["buyer"].token
    added = _within_budget(
        "add to cart",
        lambda: api.post("/cart/items", token, json={"variant_id": shop["shirt_variant"]}),
    )
    assert added.get_json()["items"][0]["quantity"] == 3


def _checkout(api: Api, token: str, key: str) -> Any:
    return api.post(
        "/checkout", token, json={"shipping_address": ADDRESS}, headers={"Idempotency-Key": key}
    )


def test_checkout_and_the_order(api: Api, shop: dict[str, Any], webhooks: Any) -> None:
    token = shop["buyer"].token
    api.post("/cart/items", token, json={"variant_id": shop["mug_variant"]})
    placed = _within_budget("checkout", lambda: _checkout(api, token, "budget-1")).get_json()
    order = placed["order"]
    assert order["tax_cents"] == 363 + 87  # 7.25 % of each vendor's line, rounded half up
    assert order["total_cents"] == 6200 + 450
    assert [vo["platform_fee_cents"] for vo in order["vendor_orders"]] == [750, 120]
    assert placed["payment"]["client_secret"]
    shown = _within_budget("order", lambda: api.get(f"/orders/{order['id']}", token)).get_json()
    assert shown["id"] == order["id"]
    assert len(shown["vendor_orders"]) == 2


def test_an_out_of_stock_checkout_writes_nothing(api: Api, shop: dict[str, Any]) -> None:
    token = shop["buyer"].token
    with transaction():
        set_on_hand(shop["shirt_variant"], 1)  # the cart holds 2
    refused = _within_budget(
        "out-of-stock checkout", lambda: _checkout(api, token, "budget-short"), status=409
    ).get_json()
    assert refused["error"]["code"] == "out_of_stock"
    assert refused["error"]["details"]["variant_ids"] == [shop["shirt_variant"]]
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    assert db.session.get(Variant, shop["shirt_variant"]).reserved == 0


def test_product_and_search(api: Api, shop: dict[str, Any], runner: Any) -> None:
    product = _within_budget("product", lambda: api.get(f"/products/{shop['shirt']}")).get_json()
    assert product["category"] == "Clothing/Tops"
    assert [i["alt_text"] for i in product["images"]] == ["Shirt", "Shirt"]
    assert product["variants"][0]["available"] == 50
    runner.invoke(args=["search", "reindex"])
    found = _within_budget("search", lambda: api.get("/products?q=product")).get_json()
    assert {p["id"] for p in found["items"]} == {shop["shirt"], shop["mug"]}
    assert sorted(len(p["images"]) for p in found["items"]) == [1, 2]


def test_a_tokens_first_use_is_noted_without_reading_its_user_again(api: Api) -> None:
    """The first request with a token in TOKEN_USE_RESOLUTION writes its last use (one UPDATE,
    its own commit); the user read with the token is still the request's, not read back."""
    buyer = make_buyer()
    with transaction():  # its last use is as old as the resolution at which uses are noted
        db.session.execute(
            update(ApiToken).values(last_used_at=utcnow() - accounts.TOKEN_USE_RESOLUTION)
        )
    db.session.remove()
    with statements_sent() as sent:
        response = api.get("/notifications", buyer.token)
    assert response.status_code == 200, response.get_json()
    touches = [s for s in sent.sql if s.startswith("UPDATE api_tokens SET last_used_at")]
    assert len(touches) == 1, sent
    assert len([s for s in sent.sql if s.startswith("SELECT api_tokens.")]) == 1, sent
    assert not [s for s in sent.sql if s.startswith("SELECT users.")], sent  # not read back
    with statements_sent() as again:
        assert api.get("/notifications", buyer.token).status_code == 200
    assert not [s for s in again.sql if s.startswith("UPDATE api_tokens")], again
