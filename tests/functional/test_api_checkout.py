"""Cart and checkout through the API: totals, splits, idempotency and errors that change nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from marketplace.catalog.models import Variant
from marketplace.catalog.services import update_variant, update_vendor_settings
from marketplace.db import db
from marketplace.inventory.models import Reservation
from marketplace.orders.commission import set_category_bps, set_vendor_bps
from marketplace.orders.models import Order, OrderHistory, VendorOrder
from marketplace.orders.tax import set_rate
from tests.helpers import assert_error, make_buyer, make_product, make_vendor

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def _checkout(api, buyer, key="key-1", body=None):
    return api.post(
        "/checkout",
        buyer.token,
        json=body or {"shipping_address": ADDRESS},
        headers={"Idempotency-Key": key},
    )


def _counts():
    return (
        db.session.scalar(select(func.count()).select_from(Order)),
        db.session.scalar(select(func.count()).select_from(Reservation)),
        db.session.scalar(select(func.sum(Variant.reserved))),
    )


def test_cart_add_update_remove(api):
    vendor = make_vendor()
    product = make_product(vendor, price_cents=1250, stock=5)
    variant_id = product.variants[0].id
    buyer = make_buyer()

    response = api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 2})
    assert response.status_code == 201
    cart = response.get_json()
    assert cart["subtotal_cents"] == 2500
    assert cart["vendors"] == [{"vendor_id": vendor.vendor.id, "subtotal_cents": 2500}]
    item = cart["items"][0]
    assert item["unit_price_cents"] == 1250 and item["line_total_cents"] == 2500
    assert item["available"] == 5 and item["product_id"] == product.id

    again = api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    assert again.get_json()["items"][0]["quantity"] == 3

    patched = api.patch(f"/cart/items/{item['id']}", buyer.token, json={"quantity": 1})
    assert patched.get_json()["subtotal_cents"] == 1250
    removed = api.delete(f"/cart/items/{item['id']}", buyer.token)
    assert removed.get_json()["items"] == []


def test_cart_rejects_bad_input(api):
    vendor = make_vendor()
    product = make_product(vendor, stock=2)
    variant_id = product.variants[0].id
    buyer = make_buyer()
    assert_error(api.post("/cart/items", buyer.token, json={"variant_id": "x"}), 400)
    assert_error(api.post("/cart/items", buyer.token, json={"quantity": 1}), 422)
    assert_error(
        api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 0}), 422
    )
    assert_error(
        api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 3}),
        409,
        "out_of_stock",
    )
    assert_error(api.post("/cart/items", buyer.token, json={"variant_id": 999999}), 404)
    assert api.get("/cart", buyer.token).get_json()["items"] == []
    assert_error(api.get("/cart"), 401)
    assert_error(api.get("/cart", vendor.token), 403)


def test_someone_elses_cart_item_is_404(api):
    product = make_product(make_vendor())
    alice, bob = make_buyer(), make_buyer()
    cart = api.post(
        "/cart/items", alice.token, json={"variant_id": product.variants[0].id, "quantity": 1}
    ).get_json()
    item_id = cart["items"][0]["id"]
    assert_error(api.patch(f"/cart/items/{item_id}", bob.token, json={"quantity": 2}), 404)
    assert_error(api.delete(f"/cart/items/{item_id}", bob.token), 404)
    assert api.get("/cart", alice.token).get_json()["items"][0]["quantity"] == 1


def test_checkout_splits_per_vendor_with_shipping_tax_and_commission(api):
    shoes = make_vendor("Shoes")
    shirts = make_vendor("Shirts")
    update_vendor_settings(
        shoes.vendor.id, shipping_flat_cents=500, free_shipping_threshold_cents=5000
    )
    update_vendor_settings(shirts.vendor.id, shipping_flat_cents=399)
    set_rate("US", "CA", 725)
    boot = make_product(shoes, price_cents=3333, stock=10, category="Footwear")
    tee = make_product(shirts, price_cents=1999, stock=10, category="Clothing/Tops")
    set_category_bps("Clothing", 1500)  # inherited by Clothing/Tops
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": boot.variants[0].id, "quantity": 2})
    api.post("/cart/items", buyer.token, json={"variant_id": tee.variants[0].id, "quantity": 1})

    response = _checkout(api, buyer)
    assert response.status_code == 201, response.get_json()
    order = response.get_json()["order"]
    assert order["status"] == "pending_payment"
    first, second = order["vendor_orders"]
    # Shoes: 2 × 33.33 = 66.66 ≥ 50 → free shipping; 10% platform default commission.
    assert first["subtotal_cents"] == 6666 and first["shipping_cents"] == 0
    assert first["tax_cents"] == 483  # 7.25% of 66.66 = 4.83
    assert first["platform_fee_cents"] == 667 and first["vendor_earnings_cents"] == 5999
    # Shirts: category Clothing at 15%, flat shipping.
    assert second["subtotal_cents"] == 1999 and second["shipping_cents"] == 399
    assert second["tax_cents"] == 145
    assert second["platform_fee_cents"] == 300 and second["vendor_earnings_cents"] == 2098
    for vo in order["vendor_orders"]:
        assert vo["total_cents"] == (
            vo["subtotal_cents"] + vo["shipping_cents"] + vo["tax_cents"] - vo["discount_cents"]
        )
        assert vo["platform_fee_cents"] + vo["vendor_earnings_cents"] == (
            vo["subtotal_cents"] + vo["shipping_cents"] - vo["discount_cents"]
        )
    assert order["total_cents"] == sum(vo["total_cents"] for vo in order["vendor_orders"])
    assert order["total_cents"] == 6666 + 483 + 1999 + 399 + 145
    assert order["history"][0]["to"] == "pending_payment"
    assert api.get("/cart", buyer.token).get_json()["items"] == []
    boot_variant = db.session.get(Variant, boot.variants[0].id)
    db.session.refresh(boot_variant)
    assert (boot_variant.on_hand, boot_variant.reserved) == (10, 2)


def test_vendor_commission_override_beats_category(api):
    vendor = make_vendor()
    set_vendor_bps(vendor.vendor.id, 250)
    product = make_product(vendor, price_cents=10000, category="Clothing")
    set_category_bps("Clothing", 1500)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    vo = _checkout(api, buyer).get_json()["order"]["vendor_orders"][0]
    assert vo["platform_fee_cents"] == 250


def test_category_commission_names_one_category_without_wildcards(api):
    from marketplace.catalog.models import Category
    from marketplace.orders.commission import CategoryNotFound

    make_product(make_vendor(), category="Clothing/Tops")
    for pattern in ("C%", "clothing/to_s", "%"):
        try:
            set_category_bps(pattern, 700)
        except CategoryNotFound:
            pass
        else:
            raise AssertionError(f"{pattern!r} matched a category")
    set_category_bps("clothing/TOPS", 700)  # names match without case
    db.session.rollback()
    rules = {c.path: c.commission_bps for c in db.session.scalars(select(Category))}
    assert rules == {"Clothing": None, "Clothing/Tops": 700}


def test_same_key_same_body_replays_other_body_conflicts(api):
    product = make_product(make_vendor(), stock=5)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    first = _checkout(api, buyer, key="abc")
    assert first.status_code == 201
    replay = _checkout(api, buyer, key="abc")
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["order"]["id"] == first.get_json()["order"]["id"]
    other = {"shipping_address": {**ADDRESS, "city": "Elsewhere"}}
    assert_error(_checkout(api, buyer, key="abc", body=other), 409, "idempotency_key_reused")
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_checkout_needs_idempotency_key_and_valid_address(api):
    product = make_product(make_vendor())
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    before = _counts()
    response = api.post("/checkout", buyer.token, json={"shipping_address": ADDRESS})
    assert_error(response, 422)
    bad_country = {"shipping_address": {**ADDRESS, "country": "USA"}}
    error = assert_error(_checkout(api, buyer, body=bad_country), 422)
    assert "shipping_address.country" in error["details"]["fields"]
    missing = {"shipping_address": {k: v for k, v in ADDRESS.items() if k != "city"}}
    error = assert_error(_checkout(api, buyer, key="k2", body=missing), 422)
    assert "shipping_address.city" in error["details"]["fields"]
    assert_error(_checkout(api, buyer, key="k3", body={"shipping_address": "x"}), 400)
    assert _counts() == before


def test_empty_cart_out_of_stock_price_changed_and_vendor_unavailable_change_nothing(api):
    vendor = make_vendor()
    product = make_product(vendor, price_cents=1000, stock=3)
    variant_id = product.variants[0].id
    buyer = make_buyer()
    assert_error(_checkout(api, buyer, key="empty"), 409, "cart_empty")

    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 3})
    before = _counts()
    # Someone else takes stock: only 1 left.
    db.session.execute(
        Variant.__table__.update().where(Variant.id == variant_id).values(reserved=2)
    )
    db.session.commit()
    error = assert_error(_checkout(api, buyer, key="oos"), 409, "out_of_stock")
    assert error["details"]["variant_ids"] == [variant_id]
    assert _counts()[:2] == before[:2]
    db.session.execute(
        Variant.__table__.update().where(Variant.id == variant_id).values(reserved=0)
    )
    db.session.commit()

    update_variant(vendor.vendor.id, variant_id, price_cents=1100)
    error = assert_error(_checkout(api, buyer, key="price"), 409, "price_changed")
    assert error["details"]["items"] == [
        {"variant_id": variant_id, "old_price_cents": 1000, "new_price_cents": 1100}
    ]
    assert api.get("/cart", buyer.token).get_json()["items"][0]["unit_price_cents"] == 1100
    assert _counts() == before

    from marketplace.catalog.models import VendorStatus
    from marketplace.catalog.services import set_vendor_status

    set_vendor_status(vendor.vendor.id, VendorStatus.SUSPENDED)
    assert_error(_checkout(api, buyer, key="susp"), 409, "vendor_unavailable")
    assert _counts() == before
    # After the price change the buyer can check out at the new price.
    set_vendor_status(vendor.vendor.id, VendorStatus.APPROVED)
    order = _checkout(api, buyer, key="ok").get_json()["order"]
    assert order["subtotal_cents"] == 3300


def test_buyer_cancels_unpaid_order_and_stock_returns(api):
    product = make_product(make_vendor(), stock=4)
    variant_id = product.variants[0].id
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 3})
    order = _checkout(api, buyer).get_json()["order"]
    response = api.post(f"/orders/{order['id']}/cancel", buyer.token)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "cancelled"
    assert all(vo["status"] == "cancelled" for vo in body["vendor_orders"])
    assert [h["to"] for h in body["history"]] == ["pending_payment", "cancelled"]
    variant = db.session.get(Variant, variant_id)
    db.session.refresh(variant)
    assert (variant.on_hand, variant.reserved) == (4, 0)
    # Cancelling twice is an illegal transition, not a silent no-op.
    assert_error(api.post(f"/orders/{order['id']}/cancel", buyer.token), 409, "illegal_transition")
    variant = db.session.get(Variant, variant_id)
    db.session.refresh(variant)
    assert variant.reserved == 0


def test_orders_are_private(api):
    product = make_product(make_vendor())
    alice, bob = make_buyer(), make_buyer()
    api.post("/cart/items", alice.token, json={"variant_id": product.variants[0].id})
    order = _checkout(api, alice).get_json()["order"]
    assert_error(api.get(f"/orders/{order['id']}", bob.token), 404)
    assert_error(api.post(f"/orders/{order['id']}/cancel", bob.token), 404)
    assert api.get("/orders", bob.token).get_json()["total"] == 0
    listed = api.get("/orders", alice.token).get_json()
    assert [o["id"] for o in listed["items"]] == [order["id"]]


def test_expiry_releases_once_and_cancels(app, api):
    from datetime import timedelta

    from marketplace.orders import jobs as order_jobs
    from marketplace.orders.services import expire_order

    product = make_product(make_vendor(), stock=2)
    variant_id = product.variants[0].id
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 2})
    order_id = _checkout(api, buyer).get_json()["order"]["id"]
    order = db.session.get(Order, order_id)
    assert expire_order(order_id) is False  # not expired yet
    later = order.reservation_expires_at + timedelta(seconds=1)
    assert expire_order(order_id, now=later) is True
    assert expire_order(order_id, now=later) is False
    db.session.execute(
        Order.__table__.update()
        .where(Order.id == order_id)
        .values(reservation_expires_at=later - timedelta(hours=1))
    )
    db.session.commit()
    assert order_jobs.sweep_expired_orders() == 0
    variant = db.session.get(Variant, variant_id)
    db.session.refresh(variant)
    assert (variant.on_hand, variant.reserved) == (2, 0)
    order = db.session.get(Order, order_id)
    db.session.refresh(order)
    assert order.status.value == "cancelled" and order.cancel_reason == "reservation_expired"
    reasons = db.session.scalars(
        select(OrderHistory.reason).where(
            OrderHistory.order_id == order_id, OrderHistory.to_status == "cancelled"
        )
    ).all()
    assert len(reasons) == 1 + db.session.scalar(
        select(func.count()).select_from(VendorOrder).where(VendorOrder.order_id == order_id)
    )


def test_idempotency_keys_are_kept_a_week_then_forgotten(api):
    from datetime import timedelta

    from marketplace.db import utcnow
    from marketplace.orders import services as orders
    from marketplace.orders.models import IdempotencyRecord

    product = make_product(make_vendor(), stock=5)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    first = _checkout(api, buyer, key="weekly").get_json()["order"]["id"]

    assert orders.prune_idempotency_records(now=utcnow() + timedelta(days=6)) == 0
    assert _checkout(api, buyer, key="weekly").headers["Idempotent-Replayed"] == "true"
    assert orders.prune_idempotency_records(now=utcnow() + timedelta(days=8)) == 1
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
    # The key is free again: the same request is now a new checkout (of an empty cart).
    assert_error(_checkout(api, buyer, key="weekly"), 409, "cart_empty")
    assert db.session.get(Order, first) is not None
