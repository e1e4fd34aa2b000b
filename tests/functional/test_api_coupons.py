"""Coupons through the API: vendors and admins manage them; the quote and the checkout apply
them, split per VendorOrder; every refusal names why and changes nothing; an order that ends
unpaid gives its use back."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from marketplace.audit.models import AuditEntry
from marketplace.catalog.models import Category, Variant
from marketplace.catalog.services import update_vendor_settings
from marketplace.coupons.models import Coupon, CouponRedemption
from marketplace.db import db, utcnow
from marketplace.inventory.models import Reservation
from marketplace.orders import services as orders
from marketplace.orders.commission import set_vendor_bps
from marketplace.orders.models import Order
from marketplace.orders.tax import set_rate
from tests.helpers import assert_error, make_admin, make_buyer, make_product, make_vendor

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def _state():
    return (
        db.session.scalar(select(func.count()).select_from(Order)),
        db.session.scalar(select(func.count()).select_from(Reservation)),
        db.session.scalar(select(func.sum(Variant.reserved))),
        db.session.scalar(select(func.count()).select_from(CouponRedemption)),
        db.session.scalar(select(func.sum(Coupon.uses_count))),
    )


def _checkout(api, buyer, code, key="k1"):
    body = {"shipping_address": ADDRESS}
    if code is not None:
        body["coupon_code"] = code
    return api.post("/checkout", buyer.token, json=body, headers={"Idempotency-Key": key})


def _quote(api, buyer, code):
    return api.post(
        "/checkout/quote", buyer.token, json={"shipping_address": ADDRESS, "coupon_code": code}
    )


def _add(api, buyer, product, quantity=1):
    response = api.post(
        "/cart/items",
        buyer.token,
        json={"variant_id": product.variants[0].id, "quantity": quantity},
    )
    assert response.status_code == 201, response.get_json()


def _coupon(api, token, path="/admin/coupons", **terms):
    response = api.post(path, token, json={"kind": "percent", **terms})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _two_vendor_cart(api):
    """Near: 19.99 + 3 × 3.33 at 10 % commission; Far: 25.01 at 15 %; tax 7.25 % in CA."""
    near, far = make_vendor("Near"), make_vendor("Far")
    update_vendor_settings(near.vendor.id, shipping_flat_cents=599)
    update_vendor_settings(far.vendor.id, shipping_flat_cents=850)
    set_vendor_bps(far.vendor.id, 1500)
    set_rate("US", "CA", 725)
    buyer = make_buyer()
    _add(api, buyer, make_product(near, price_cents=1999, stock=5))
    _add(api, buyer, make_product(near, price_cents=333, stock=5), 3)
    _add(api, buyer, make_product(far, price_cents=2501, stock=5))
    return buyer, near, far


def _adds_up(order):
    assert order["total_cents"] == sum(vo["total_cents"] for vo in order["vendor_orders"])
    assert order["discount_cents"] == sum(vo["discount_cents"] for vo in order["vendor_orders"])
    for vo in order["vendor_orders"]:
        assert vo["total_cents"] == (
            vo["subtotal_cents"] + vo["shipping_cents"] + vo["tax_cents"] - vo["discount_cents"]
        )
        assert vo["platform_fee_cents"] + vo["vendor_earnings_cents"] == (
            vo["subtotal_cents"] + vo["shipping_cents"] - vo["discount_cents"]
        )
        assert vo["discount_cents"] == sum(i["discount_cents"] for i in vo["items"])
        assert min(vo["platform_fee_cents"], vo["vendor_earnings_cents"], vo["total_cents"]) >= 0


def test_a_platform_coupon_is_paid_out_of_the_commission(api):
    buyer, near, far = _two_vendor_cart(api)
    admin = make_admin()
    _coupon(api, admin.token, code="save10", percent_bps=1000)
    plain = _quote(api, buyer, None).get_json()

    quote = _quote(api, buyer, "SAVE10")  # codes are matched without regard to case
    assert quote.status_code == 200, quote.get_json()
    quote = quote.get_json()
    assert quote["coupon_code"] == "SAVE10"
    by_vendor = {v["vendor_id"]: v for v in quote["vendor_orders"]}
    # 10 % of 54.99 = 5.50, within the commission (3.00 + 3.75): split by commission 300:375
    assert quote["discount_cents"] == 550
    assert by_vendor[near.vendor.id]["discount_cents"] == 244
    assert by_vendor[far.vendor.id]["discount_cents"] == 306
    assert quote["shipping_cents"] == plain["shipping_cents"]  # never on shipping
    assert quote["tax_cents"] < plain["tax_cents"]  # tax on the discounted lines

    placed = _checkout(api, buyer, "save10")
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    assert order["coupon_code"] == "SAVE10"
    assert order["total_cents"] == quote["total_cents"]
    _adds_up(order)
    earnings = {vo["vendor_id"]: vo["vendor_earnings_cents"] for vo in order["vendor_orders"]}
    # the vendors earn what they would without the coupon: items + shipping − commission
    assert earnings == {near.vendor.id: 2998 + 599 - 300, far.vendor.id: 2501 + 850 - 375}
    assert db.session.scalar(select(Coupon.uses_count)) == 1


def test_a_platform_discount_is_capped_at_the_commission(api):
    buyer, near, far = _two_vendor_cart(api)
    _coupon(api, make_admin().token, code="HALF", percent_bps=5000)
    order = _checkout(api, buyer, "half").get_json()["order"]
    assert order["discount_cents"] == 300 + 375
    for vo in order["vendor_orders"]:
        assert vo["platform_fee_cents"] == 0
    _adds_up(order)


def test_a_vendor_coupon_applies_to_its_lines_and_commission_is_on_what_is_left(api):
    buyer, near, far = _two_vendor_cart(api)
    _coupon(api, far.token, "/vendor/coupons", code="FAR5", kind="fixed", amount_cents=500)
    order = _checkout(api, buyer, "far5").get_json()["order"]
    by_vendor = {vo["vendor_id"]: vo for vo in order["vendor_orders"]}
    assert by_vendor[near.vendor.id]["discount_cents"] == 0
    far_part = by_vendor[far.vendor.id]
    assert far_part["discount_cents"] == 500
    assert far_part["platform_fee_cents"] == 300  # 15 % of 25.01 − 5.00
    assert far_part["vendor_earnings_cents"] == 2001 + 850 - 300
    _adds_up(order)


def test_scopes_products_and_categories(api):
    vendor = make_vendor()
    buyer = make_buyer()
    shirt = make_product(vendor, price_cents=2000, category="Clothing/Tops")
    mug = make_product(vendor, price_cents=1000, category="Kitchen")
    _add(api, buyer, shirt)
    _add(api, buyer, mug)
    admin = make_admin()
    clothing = db.session.scalar(select(Category.id).where(Category.path == "Clothing"))
    _coupon(api, admin.token, code="CLOTHES", percent_bps=1000, scope="categories",
            scope_ids=[clothing])  # fmt: skip
    _coupon(api, admin.token, code="MUGS", kind="fixed", amount_cents=50, scope="products",
            scope_ids=[mug.id])  # fmt: skip
    clothes = _quote(api, buyer, "CLOTHES").get_json()
    assert [i["discount_cents"] for i in clothes["vendor_orders"][0]["items"]] == [200, 0]
    mugs = _quote(api, buyer, "MUGS").get_json()
    assert [i["discount_cents"] for i in mugs["vendor_orders"][0]["items"]] == [0, 50]


def test_refusals_name_why_and_change_nothing(api):
    buyer, near, far = _two_vendor_cart(api)
    admin = make_admin()
    now = utcnow()
    _coupon(
        api, admin.token, code="OLD", percent_bps=100, ends_at=(now - timedelta(days=1)).isoformat()
    )
    _coupon(
        api,
        admin.token,
        code="SOON",
        percent_bps=100,
        starts_at=(now + timedelta(days=1)).isoformat(),
    )
    _coupon(api, admin.token, code="BIG", percent_bps=100, min_order_cents=10_000)
    other = make_vendor("Other")
    _coupon(api, other.token, "/vendor/coupons", code="OTHER", percent_bps=100)
    _coupon(api, admin.token, code="ONCE", percent_bps=100, max_uses=1)
    used_up = make_buyer()
    _add(api, used_up, make_product(near, price_cents=1000))
    assert _checkout(api, used_up, "ONCE").status_code == 201
    _coupon(api, admin.token, code="MINE", percent_bps=100, max_uses_per_buyer=1)
    before = _state()
    for code, reason in (
        ("NOPE", "unknown"),
        ("OLD", "expired"),
        ("SOON", "not_started"),
        ("BIG", "below_minimum"),
        ("OTHER", "out_of_scope"),
        ("ONCE", "exhausted"),
    ):
        for answer in (_quote(api, buyer, code), _checkout(api, buyer, code, key=f"k-{code}")):
            error = assert_error(answer, 422, "coupon_not_applicable")
            assert error["details"]["reason"] == reason, code
            assert "coupon_code" in error["details"]["fields"]
        db.session.rollback()
        assert _state() == before, code
    assert _checkout(api, buyer, "MINE").status_code == 201
    again = make_product(near, price_cents=1000)
    _add(api, buyer, again)
    error = assert_error(_checkout(api, buyer, "MINE", key="k2"), 422, "coupon_not_applicable")
    assert error["details"]["reason"] == "buyer_limit"


def test_an_order_that_ends_unpaid_gives_its_use_back(api):
    vendor = make_vendor()
    product = make_product(vendor, price_cents=1000, stock=10)
    _coupon(api, make_admin().token, code="ONE", percent_bps=500, max_uses=1)
    first, second = make_buyer(), make_buyer()
    _add(api, first, product)
    order = _checkout(api, first, "ONE").get_json()["order"]
    _add(api, second, product)
    assert _quote(api, second, "ONE").get_json()["error"]["details"]["reason"] == "exhausted"

    assert api.post(f"/orders/{order['id']}/cancel", first.token).status_code == 200
    db.session.rollback()
    assert db.session.scalar(select(Coupon.uses_count)) == 0
    placed = _checkout(api, second, "ONE").get_json()["order"]
    assert placed["discount_cents"] == 50

    assert orders.expire_order(placed["id"], now=utcnow() + timedelta(days=1))
    assert db.session.scalar(select(Coupon.uses_count)) == 0
    assert db.session.scalar(select(func.count()).select_from(CouponRedemption)) == 0


def test_vendors_and_admins_manage_their_own_coupons(api):
    vendor, other = make_vendor(), make_vendor()
    mine = make_product(vendor)
    theirs = make_product(other)
    created = _coupon(api, vendor.token, "/vendor/coupons", code="shop-10", percent_bps=1000,
                      scope="products", scope_ids=[mine.id], max_uses=5)  # fmt: skip
    assert created["code"] == "SHOP-10" and created["funded_by"] == "vendor"
    assert created["vendor_id"] == vendor.vendor.id and created["uses_count"] == 0

    listed = api.get("/vendor/coupons", vendor.token).get_json()["items"]
    assert [c["id"] for c in listed] == [created["id"]]
    assert api.get("/vendor/coupons", other.token).get_json()["items"] == []

    patched = api.patch(
        f"/vendor/coupons/{created['id']}", vendor.token, json={"max_uses": None, "active": False}
    )
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["max_uses"] is None and patched.get_json()["active"] is False

    for body, field in (
        ({"code": "x", "kind": "percent", "percent_bps": 10}, "code"),
        ({"code": "SHOP-10", "kind": "percent", "percent_bps": 10}, "code"),
        ({"code": "ABC", "kind": "percent", "percent_bps": 0}, "percent_bps"),
        ({"code": "ABC", "kind": "fixed"}, "amount_cents"),
        (
            {
                "code": "ABC",
                "kind": "percent",
                "percent_bps": 5,
                "scope": "products",
                "scope_ids": [theirs.id],
            },
            "scope_ids",
        ),  # fmt: skip
        (
            {
                "code": "ABC",
                "kind": "percent",
                "percent_bps": 5,
                "scope": "vendor",
                "scope_ids": [vendor.vendor.id],
            },
            "scope",
        ),  # fmt: skip
        ({"code": "ABC", "kind": "percent", "percent_bps": 5, "ends_at": "soon"}, "ends_at"),
    ):
        error = assert_error(api.post("/vendor/coupons", vendor.token, json=body), 422)
        assert field in error["details"]["fields"], body
    assert assert_error(
        api.patch(f"/vendor/coupons/{created['id']}", other.token, json={"active": True}), 404
    )
    assert_error(
        api.patch(f"/vendor/coupons/{created['id']}", vendor.token, json={"code": None}), 422
    )
    assert api.delete(f"/vendor/coupons/{created['id']}", other.token).status_code == 404
    assert api.delete(f"/vendor/coupons/{created['id']}", vendor.token).status_code == 204
    assert api.get("/vendor/coupons", vendor.token).get_json()["items"] == []
    assert_error(api.get("/admin/coupons", vendor.token), 403)

    admin = make_admin()
    platform = _coupon(api, admin.token, code="WELCOME", kind="fixed", amount_cents=500,
                       scope="vendor", scope_ids=[other.vendor.id])  # fmt: skip
    assert platform["funded_by"] == "platform" and platform["vendor_id"] is None
    assert api.get("/admin/coupons", admin.token).get_json()["items"][0]["id"] == platform["id"]
    assert api.patch(f"/admin/coupons/{platform['id']}", admin.token,
                     json={"amount_cents": 700}).status_code == 200  # fmt: skip
    assert api.delete(f"/admin/coupons/{platform['id']}", admin.token).status_code == 204
    assert api.delete(f"/admin/coupons/{created['id']}", admin.token).status_code == 404
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert [a for a in actions if a.startswith("coupon.")] == [
        "coupon.create",
        "coupon.update",
        "coupon.delete",
    ]


def test_a_declined_order_does_not_count_against_the_next_checkout(api, webhooks):
    from tests.functional.money import pay

    product = make_product(make_vendor(), price_cents=1200, stock=5)
    _coupon(api, make_admin().token, code="MINE", percent_bps=1000, max_uses=1,
            max_uses_per_buyer=1)  # fmt: skip
    buyer = make_buyer()
    _add(api, buyer, product)
    first = _checkout(api, buyer, "MINE").get_json()
    assert pay(first, "pm_card_chargeDeclined").get("error")
    assert webhooks.flush_webhooks()
    # the declined order gave the lines back to the cart; checking out again abandons it
    again = _checkout(api, buyer, "MINE", key="k2")
    assert again.status_code == 201, again.get_json()
    db.session.rollback()
    assert db.session.get(Order, first["order"]["id"]).status.value == "cancelled"
    assert db.session.scalar(select(Coupon.uses_count)) == 1
    (redemption,) = db.session.scalars(select(CouponRedemption)).all()
    assert redemption.order_id == again.get_json()["order"]["id"]


def test_an_expired_order_paid_late_takes_its_use_again(api, webhooks):
    from tests.functional.money import pay

    product = make_product(make_vendor(), price_cents=1200, stock=5)
    _coupon(api, make_admin().token, code="LATE", percent_bps=1000, max_uses=1)
    buyer = make_buyer()
    _add(api, buyer, product)
    body = _checkout(api, buyer, "LATE").get_json()
    assert orders.expire_order(body["order"]["id"], now=utcnow() + timedelta(days=1))
    db.session.rollback()
    assert db.session.scalar(select(Coupon.uses_count)) == 0
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    db.session.rollback()
    assert db.session.get(Order, body["order"]["id"]).status.value == "paid"
    assert db.session.scalar(select(Coupon.uses_count)) == 1
    assert db.session.scalar(select(CouponRedemption.order_id)) == body["order"]["id"]
