"""Reviews (verified, after delivery, once), returns and notifications through the API."""

from __future__ import annotations

from pathlib import Path

from marketplace.catalog.models import Product, Variant, Vendor
from marketplace.db import db
from tests.functional.money import checkout, onboarded_vendor, pay
from tests.helpers import assert_error, make_buyer, make_product


def _delivered_order(api, webhooks, quantity=2):
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=1500, stock=10)
    buyer = make_buyer()
    api.post(
        "/cart/items",
        buyer.token,
        json={"variant_id": product.variants[0].id, "quantity": quantity},
    )
    body = checkout(api, buyer)
    pay(body)
    assert webhooks.flush_webhooks()
    vo_id = body["order"]["vendor_orders"][0]["id"]
    item_id = body["order"]["vendor_orders"][0]["items"][0]["id"]
    return vendor, product, buyer, body["order"]["id"], vo_id, item_id


def _ship_and_deliver(api, vendor, vo_id):
    for path, body in (("ship", {"carrier": "UPS", "tracking_number": "1"}), ("deliver", {})):
        response = api.post(f"/vendor/orders/{vo_id}/{path}", vendor.token, json=body)
        assert response.status_code == 200, response.get_json()


def test_review_rules_and_aggregates(api, webhooks):
    vendor, product, buyer, order_id, vo_id, item_id = _delivered_order(api, webhooks)
    path = f"/orders/{order_id}/items/{item_id}/review"
    assert_error(api.post(path, buyer.token, json={"rating": 5, "body": "x"}), 409, "not_delivered")
    _ship_and_deliver(api, vendor, vo_id)

    stranger = make_buyer()
    assert_error(api.post(path, stranger.token, json={"rating": 5}), 404)
    assert_error(api.post(path, buyer.token, json={"rating": 6}), 422)
    assert_error(api.post(path, buyer.token, json={"rating": "5"}), 400)
    created = api.post(path, buyer.token, json={"rating": 4, "body": "Good"})
    assert created.status_code == 201
    assert_error(api.post(path, buyer.token, json={"rating": 1}), 409, "already_reviewed")

    db.session.rollback()
    assert db.session.get(Product, product.id).rating == 4.0
    assert db.session.get(Vendor, vendor.vendor.id).rating_count == 1
    assert api.get(f"/products/{product.id}", None).get_json()["rating"] == 4.0

    review_id = created.get_json()["id"]
    other_vendor = onboarded_vendor(api, webhooks, "Other")
    assert_error(
        api.post(f"/vendor/reviews/{review_id}/reply", other_vendor.token, json={"body": "hi"}), 404
    )
    reply = api.post(f"/vendor/reviews/{review_id}/reply", vendor.token, json={"body": "Thanks"})
    assert reply.get_json()["reply"] == "Thanks"
    assert_error(
        api.post(f"/vendor/reviews/{review_id}/reply", vendor.token, json={"body": "again"}),
        409,
        "already_replied",
    )
    listed = api.get(f"/products/{product.id}/reviews").get_json()
    assert [r["rating"] for r in listed["items"]] == [4]


def test_return_accepted_refunds_and_restocks_declined_changes_nothing(api, webhooks):
    vendor, product, buyer, order_id, vo_id, item_id = _delivered_order(api, webhooks, quantity=2)
    _ship_and_deliver(api, vendor, vo_id)
    path = f"/orders/{order_id}/items/{item_id}/return"
    assert_error(api.post(path, buyer.token, json={"quantity": 3, "reason": "too many"}), 422)
    first = api.post(path, buyer.token, json={"quantity": 1, "reason": "Wrong size"}).get_json()
    second = api.post(path, buyer.token, json={"quantity": 1, "reason": "Changed mind"}).get_json()
    assert_error(api.post(path, buyer.token, json={"quantity": 1, "reason": "again"}), 422)

    declined = api.post(
        f"/vendor/returns/{second['id']}/decline", vendor.token, json={"reason": "Used"}
    ).get_json()
    assert declined["status"] == "declined"
    db.session.rollback()
    on_hand_before = db.session.get(Variant, product.variants[0].id).on_hand

    accepted = api.post(
        f"/vendor/returns/{first['id']}/accept", vendor.token, json={"restock": True}
    ).get_json()
    assert accepted["status"] == "accepted" and accepted["refund_id"]
    assert_error(
        api.post(f"/vendor/returns/{first['id']}/accept", vendor.token, json={}),
        409,
        "return_already_decided",
    )
    db.session.rollback()
    assert db.session.get(Variant, product.variants[0].id).on_hand == on_hand_before + 1
    order = api.get(f"/orders/{order_id}", buyer.token).get_json()
    assert order["vendor_orders"][0]["items"][0]["refunded_quantity"] == 1
    assert order["status"] == "partially_refunded"


def test_notifications_in_app_and_email_once(api, webhooks, app):
    vendor, product, buyer, order_id, vo_id, item_id = _delivered_order(api, webhooks)
    api.post(
        f"/vendor/orders/{vo_id}/ship",
        vendor.token,
        json={"carrier": "UPS", "tracking_number": "Z9"},
    )
    listed = api.get("/notifications", buyer.token).get_json()
    kinds = [n["kind"] for n in listed["items"]]
    assert kinds == ["shipped", "order_confirmed"]
    vendor_kinds = [n["kind"] for n in api.get("/notifications", vendor.token).get_json()["items"]]
    assert "new_order" in vendor_kinds
    mails = sorted(p.name for p in Path(app.config["MAIL_DIR"]).glob("*.eml"))
    assert f"shipped_vo_{vo_id}_user_{buyer.id}.eml" in mails
    text = (Path(app.config["MAIL_DIR"]) / f"shipped_vo_{vo_id}_user_{buyer.id}.eml").read_text()
    assert "Z9" in text
    # Running the job again sends nothing new.
    from marketplace.notifications.services import vendor_order_shipped

    before = len(list(Path(app.config["MAIL_DIR"]).glob("*.eml")))
    vendor_order_shipped(vo_id)
    assert len(list(Path(app.config["MAIL_DIR"]).glob("*.eml"))) == before
    assert len(api.get("/notifications", buyer.token).get_json()["items"]) == 2
    assert api.post("/notifications/read", buyer.token).get_json()["marked"] == 2


def test_accept_that_cannot_refund_leaves_the_return_undecided(api, webhooks):
    vendor, product, buyer, order_id, vo_id, item_id = _delivered_order(api, webhooks, quantity=1)
    _ship_and_deliver(api, vendor, vo_id)
    path = f"/orders/{order_id}/items/{item_id}/return"
    requested = api.post(path, buyer.token, json={"quantity": 1, "reason": "Broken"}).get_json()
    # The vendor refunds the whole item from the order page first: nothing is left to refund.
    refunded = api.post(f"/vendor/orders/{vo_id}/refund", vendor.token, json={})
    assert refunded.status_code == 201, refunded.get_json()

    refused = api.post(f"/vendor/returns/{requested['id']}/accept", vendor.token, json={})
    assert 400 <= refused.status_code < 500 and refused.get_json()["error"]["code"]
    db.session.rollback()
    from marketplace.orders.models import ReturnRequest

    still = db.session.get(ReturnRequest, requested["id"])
    assert still.status.value == "requested" and still.decided_at is None
    declined = api.post(
        f"/vendor/returns/{requested['id']}/decline", vendor.token, json={"reason": "Refunded"}
    )
    assert declined.get_json()["status"] == "declined"


def _vendor_side(vo_id):
    """What any vendor route could change: the vendor order, returns, reviews, refunds."""
    from sqlalchemy import select

    from marketplace.orders.models import ReturnRequest, VendorOrder
    from marketplace.payouts.models import Refund
    from marketplace.reviews.models import Review

    db.session.rollback()
    vo = db.session.get(VendorOrder, vo_id)
    return (
        vo.status,
        vo.carrier,
        vo.tracking_number,
        tuple(i.refunded_quantity for i in vo.items),
        tuple(db.session.execute(select(ReturnRequest.id, ReturnRequest.status)).all()),
        tuple(db.session.execute(select(Review.id, Review.reply)).all()),
        tuple(db.session.scalars(select(Refund.id)).all()),
    )


def test_second_vendor_gets_404_on_every_vendor_order_route(api, webhooks):
    vendor, product, buyer, order_id, vo_id, item_id = _delivered_order(api, webhooks, quantity=2)
    _ship_and_deliver(api, vendor, vo_id)
    returned = api.post(
        f"/orders/{order_id}/items/{item_id}/return",
        buyer.token,
        json={"quantity": 1, "reason": "Too big"},
    ).get_json()
    review = api.post(
        f"/orders/{order_id}/items/{item_id}/review", buyer.token, json={"rating": 5}
    ).get_json()
    rival = onboarded_vendor(api, webhooks, "Rival")
    before = _vendor_side(vo_id)

    base = f"/vendor/orders/{vo_id}"
    for path in (base, f"{base}/refund-preview", f"{base}/refund-preview?amount_cents=1"):
        assert_error(api.get(path, rival.token), 404)
    for path, body in (
        (f"{base}/ship", {"carrier": "UPS", "tracking_number": "2"}),
        (f"{base}/deliver", {}),
        (f"{base}/cancel", {"reason": "mine"}),
        (f"{base}/refund", {"amount_cents": 100}),
        (f"{base}/refund", {}),
        (f"/vendor/returns/{returned['id']}/accept", {"restock": True}),
        (f"/vendor/returns/{returned['id']}/decline", {"reason": "no"}),
        (f"/vendor/reviews/{review['id']}/reply", {"body": "thanks"}),
    ):
        assert_error(api.post(path, rival.token, json=body), 404)
    for path in ("/vendor/orders", "/vendor/returns", "/vendor/reviews"):
        listed = api.get(path, rival.token).get_json()
        assert listed["items"] == [] and listed["total"] == 0, path
    earnings = api.get("/vendor/earnings", rival.token).get_json()
    assert all(earnings[k] == 0 for k in earnings if k.endswith("_cents")), earnings
    assert _vendor_side(vo_id) == before


def test_every_notification_links_to_a_page_its_recipient_can_open(api, webhooks):
    from tests.helpers import login, page_app

    vendor, product, buyer, order_id, vo_id, item_id = _delivered_order(api, webhooks, quantity=9)
    _ship_and_deliver(api, vendor, vo_id)  # 1 of 10 left: low stock for the vendor too
    api.post(
        f"/orders/{order_id}/items/{item_id}/return",
        buyer.token,
        json={"quantity": 1, "reason": "Too big"},
    )
    with page_app() as web_app:
        for account in (buyer, vendor):
            notes = api.get("/notifications", account.token).get_json()["items"]
            assert notes, account.user.email
            web = web_app.test_client()
            assert login(web, account.user.email).status_code == 302
            for note in notes:
                response = web.get(note["link"])
                assert response.status_code == 200, (note["kind"], note["link"])
        kinds = {n["kind"] for n in api.get("/notifications", vendor.token).get_json()["items"]}
        assert "low_stock" in kinds
