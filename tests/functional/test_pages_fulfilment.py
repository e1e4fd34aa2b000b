"""Vendor fulfilment pages: the order queue, one order and its actions (ship, deliver, cancel,
refund with preview, returns), low stock, earnings and reviews.

The forms must change state exactly as the JSON API does (checked through the API and the
database); another vendor's order is a 404 on every page and action and nothing changes; a
shared order shows each vendor only its own lines and money.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from marketplace.catalog.models import ProductStatus, Variant
from marketplace.catalog.services import update_product, update_vendor_settings
from marketplace.db import db
from marketplace.orders.models import ReturnRequest, ReturnStatus, VendorOrder
from marketplace.payouts.models import Refund
from marketplace.reviews.models import Review
from marketplace.vendors import fulfilment_pages
from tests.functional.money import checkout, onboarded_vendor, pay
from tests.helpers import (
    csrf_token_in,
    login,
    make_admin,
    make_buyer,
    make_product,
    make_vendor,
    page_app,
    submit,
)


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    """A browser: each request in its own app context, as in production."""
    with page_app() as web_app:
        yield web_app.test_client()


@pytest.fixture
def other_web(app: Flask) -> Iterator[FlaskClient]:
    """A second browser (another vendor's session)."""
    with page_app() as web_app:
        yield web_app.test_client()


def _fresh() -> Any:
    """The test's session, its read snapshot ended so it sees what the requests committed."""
    db.session.rollback()
    return db.session


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def _cents(page: str, field: str) -> int:
    match = re.search(rf'data-field="{field}" data-cents="(-?\d+)"', page)
    assert match, f"no {field} on the page"
    return int(match.group(1))


def _hidden_fields(page: str, action: str) -> dict[str, str]:
    """The hidden inputs of the form posting to `action`."""
    start = page.index(f'action="{action}"')
    form = page[start : page.index("</form>", start)]
    return {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form)
    }


def _paid_order(api: Any, emulator: Any, lines: list[tuple[int, int]], key: str = "k1") -> Any:
    """A buyer checks out `lines` [(variant_id, quantity)] and pays; returns (order, buyer)."""
    buyer = make_buyer()
    for variant_id, quantity in lines:
        added = api.post(
            "/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": quantity}
        )
        assert added.status_code == 201, added.get_json()
    body = checkout(api, buyer, key)
    assert pay(body)["status"] == "requires_capture"
    assert emulator.flush_webhooks()
    db.session.rollback()
    return body["order"], buyer


@pytest.fixture
def shop(api, webhooks, web):
    """An onboarded vendor (logged in on `web`) with one product and one paid order of 2."""
    vendor = onboarded_vendor(api, webhooks, "Shop")
    update_vendor_settings(vendor.vendor.id, shipping_flat_cents=500)
    product = make_product(vendor, title="Walnut Board", price_cents=2500, stock=10)
    order, buyer = _paid_order(api, webhooks, [(product.variants[0].id, 2)])
    assert login(web, vendor.user.email).status_code == 302
    return {
        "vendor": vendor,
        "product": product,
        "variant_id": product.variants[0].id,
        "order": order,
        "vo_id": order["vendor_orders"][0]["id"],
        "buyer": buyer,
    }


def _vo(api: Any, shop: dict[str, Any]) -> dict[str, Any]:
    response = api.get(f"/vendor/orders/{shop['vo_id']}", shop["vendor"].token)
    assert response.status_code == 200
    return response.get_json()


def _act(web: FlaskClient, vo_id: int, action: str, **fields: str) -> Any:
    """Open the order's page and submit its `action` form (ship, deliver, cancel...)."""
    page = web.get(f"/vendor/orders/{vo_id}")
    return submit(web, page, f"/vendor/orders/{vo_id}/{action}", **fields)


def _ship(web: FlaskClient, vo_id: int, carrier: str = "UPS", tracking: str = "1Z999") -> Any:
    return _act(web, vo_id, "ship", carrier=carrier, tracking_number=tracking)


# --- pages render ----------------------------------------------------------------------------


def test_every_page_renders_for_its_vendor(shop, web):
    vo_id, order_id = shop["vo_id"], shop["order"]["id"]
    queue = web.get("/vendor/orders")
    assert queue.status_code == 200
    page = _text(queue)
    assert f"/vendor/orders/{vo_id}" in page and shop["buyer"].user.email in page
    assert re.search(r'data-tab="to_ship"[^>]*>To ship <span class="badge" data-count="1"', page)

    detail = web.get(f"/vendor/orders/{vo_id}")
    assert detail.status_code == 200
    page = _text(detail)
    assert f"Order #{order_id}-{vo_id}" in page
    assert "Walnut Board" in page and "Bea Buyer" in page and "Springfield" in page
    assert shop["buyer"].user.name in page and shop["buyer"].user.email in page
    vo = shop["order"]["vendor_orders"][0]
    for cents in (
        vo["subtotal_cents"],
        vo["shipping_cents"],
        vo["tax_cents"],
        vo["total_cents"],
        vo["platform_fee_cents"],
        vo["vendor_earnings_cents"],
    ):
        assert f'data-cents="{cents}"' in page
    assert "Mark as shipped" in page and "Cancel this order" in page
    assert "Mark as delivered" not in page
    assert "payment_authorized" in page  # history

    for path, marker in (
        ("/vendor/low-stock", "Low stock"),
        ("/vendor/earnings", "Earnings"),
        ("/vendor/reviews", "Reviews"),
    ):
        response = web.get(path)
        assert response.status_code == 200, path
        assert marker in _text(response)
        assert 'href="/vendor/orders"' in _text(response)  # the money nav


def test_anonymous_and_other_roles_are_kept_out(app, web):
    for path in ("/vendor/orders", "/vendor/orders/1", "/vendor/low-stock", "/vendor/earnings"):
        response = web.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    buyer = make_buyer()
    assert login(web, buyer.user.email).status_code == 302
    for path in ("/vendor/orders", "/vendor/low-stock", "/vendor/earnings", "/vendor/reviews"):
        assert web.get(path).status_code == 403, path
    # Deliberate: no page offers a buyer the action.
    assert web.post_raw("/vendor/orders/1/ship", data={"carrier": "x"}).status_code == 403


# --- the queue -------------------------------------------------------------------------------


def test_queue_tabs_counts_search_and_pagination(api, webhooks, web, monkeypatch):
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=1000, stock=50)
    variant_id = product.variants[0].id
    orders = [_paid_order(api, webhooks, [(variant_id, 1)], key=f"k{i}") for i in range(4)]
    vo_ids = [order["vendor_orders"][0]["id"] for order, _ in orders]
    # one more, never paid: only under "All"
    unpaid_buyer = make_buyer()
    api.post("/cart/items", unpaid_buyer.token, json={"variant_id": variant_id, "quantity": 1})
    checkout(api, unpaid_buyer, "unpaid")
    assert login(web, vendor.user.email).status_code == 302

    assert _ship(web, vo_ids[1]).status_code == 303
    assert _ship(web, vo_ids[2]).status_code == 303
    assert _act(web, vo_ids[2], "deliver").status_code == 303
    cancelled = _act(web, vo_ids[3], "cancel", reason="no stock")
    assert cancelled.status_code == 303

    page = _text(web.get("/vendor/orders"))
    counts = dict(
        re.findall(r'data-tab="(\w+)"[^>]*>[^<]*<span class="badge" data-count="(\d+)"', page)
    )
    assert counts == {
        "to_ship": "1",
        "shipped": "1",
        "delivered": "1",
        "cancelled": "1",
        "refunded": "0",
        "all": "5",
    }
    for tab, vo_id in (("to_ship", 0), ("shipped", 1), ("delivered", 2), ("cancelled", 3)):
        rows = re.findall(r'data-vendor-order="(\d+)"', _text(web.get(f"/vendor/orders?tab={tab}")))
        assert rows == [str(vo_ids[vo_id])], tab

    # search: by order number (with or without '#'), by part of the buyer's email
    order_id = orders[2][0]["id"]
    for q in (str(order_id), f"#{order_id}"):
        page = _text(web.get("/vendor/orders", query_string={"tab": "all", "q": q}))
        assert re.findall(r'data-vendor-order="(\d+)"', page) == [str(vo_ids[2])]
    email = orders[1][1].user.email
    page = _text(web.get("/vendor/orders", query_string={"tab": "all", "q": email.upper()}))
    assert re.findall(r'data-vendor-order="(\d+)"', page) == [str(vo_ids[1])]
    page = _text(web.get("/vendor/orders", query_string={"tab": "all", "q": "9" * 18}))
    assert re.findall(r'data-vendor-order="(\d+)"', page) == []  # beyond int4: no error
    page = _text(web.get("/vendor/orders", query_string={"tab": "all", "q": "%"}))
    assert re.findall(r'data-vendor-order="(\d+)"', page) == []  # LIKE wildcards are literal
    assert "No orders match" in page

    # pagination
    monkeypatch.setattr(fulfilment_pages, "PER_PAGE", 2)
    first = _text(web.get("/vendor/orders?tab=all"))
    third = _text(web.get("/vendor/orders?tab=all&page=3"))
    assert len(re.findall(r"data-vendor-order=", first)) == 2 and "Page 1 of 3" in first
    assert len(re.findall(r"data-vendor-order=", third)) == 1 and 'rel="prev"' in third
    assert web.get("/vendor/orders?tab=nonsense").status_code == 422
    assert web.get("/vendor/orders?page=abc").status_code == 422


# --- ship, deliver, cancel -------------------------------------------------------------------


def test_ship_and_deliver_through_the_forms_change_state_like_the_api(api, shop, web):
    vo_id = shop["vo_id"]
    shipped = _ship(web, vo_id, "DHL", "JD0001")
    assert shipped.status_code == 303
    assert shipped.headers["Location"].endswith(f"/vendor/orders/{vo_id}")
    vo = _vo(api, shop)
    assert (vo["status"], vo["carrier"], vo["tracking_number"]) == ("shipped", "DHL", "JD0001")
    assert vo["history"][-1]["actor"] == f"vendor:{shop['vendor'].vendor.id}"
    order = api.get(f"/orders/{shop['order']['id']}", shop["buyer"].token).get_json()
    assert order["status"] == "fulfilled" or order["status"] == "partially_fulfilled"
    page = _text(web.get(f"/vendor/orders/{vo_id}"))
    assert "Marked as shipped." in page and "JD0001" in page and "Mark as delivered" in page

    assert _act(web, vo_id, "deliver").status_code == 303
    vo = _vo(api, shop)
    assert vo["status"] == "delivered"
    assert (
        api.get(f"/orders/{shop['order']['id']}", shop["buyer"].token).get_json()["status"]
        == "fulfilled"
    )
    # the transfer followed, and the earnings page shows the API's numbers
    wanted = api.get("/vendor/earnings", shop["vendor"].token).get_json()
    assert wanted["transferred_cents"] == vo["vendor_earnings_cents"]
    page = _text(web.get("/vendor/earnings"))
    for key in ("pending_cents", "transferred_cents", "reversed_cents"):
        assert _cents(page, key) == wanted[key]
    assert wanted["transfers"][0]["stripe_transfer_id"] in page


def test_bad_ship_input_and_illegal_transitions_change_nothing(api, shop, web):
    vo_id = shop["vo_id"]
    blank = _ship(web, vo_id, "  ", "")
    assert blank.status_code == 422
    assert "must be 1 to 60 characters long" in _text(blank)
    assert "must be 1 to 100 characters long" in _text(blank)
    assert _ship(web, vo_id, "UPS", "x" * 101).status_code == 422
    assert _ship(web, vo_id, "UPS\x00", "1Z").status_code == 422  # NUL: refused, not a 500
    # The page offers no "delivered" button yet: post it as a stale page would.
    early = web.post_raw(f"/vendor/orders/{vo_id}/deliver")
    assert early.status_code == 409
    assert "cannot become delivered" in html.unescape(_text(early))
    vo = _vo(api, shop)
    assert (vo["status"], vo["carrier"], vo["tracking_number"]) == ("paid", None, None)

    assert _ship(web, vo_id).status_code == 303
    ship_again = {"carrier": "DHL", "tracking_number": "2"}  # from a stale page
    again = web.post_raw(f"/vendor/orders/{vo_id}/ship", data=ship_again)
    assert again.status_code == 409
    stale_cancel = web.post_raw(f"/vendor/orders/{vo_id}/cancel", data={"reason": "x"})
    assert stale_cancel.status_code == 409
    vo = _vo(api, shop)
    assert (vo["status"], vo["carrier"], vo["tracking_number"]) == ("shipped", "UPS", "1Z999")


def test_cancel_through_the_form_releases_stock_like_the_api(api, shop, web):
    vo_id = shop["vo_id"]
    blank = _act(web, vo_id, "cancel", reason=" ")
    assert blank.status_code == 422 and "must be 1 to 200 characters long" in _text(blank)
    assert _vo(api, shop)["status"] == "paid"
    assert _fresh().get(Variant, shop["variant_id"]).on_hand == 8

    done = _act(web, vo_id, "cancel", reason="Out of walnut")
    assert done.status_code == 303
    vo = _vo(api, shop)
    assert (vo["status"], vo["cancel_reason"]) == ("cancelled", "Out of walnut")
    variant = _fresh().get(Variant, shop["variant_id"])
    assert (variant.on_hand, variant.reserved) == (10, 0)
    order = api.get(f"/orders/{shop['order']['id']}", shop["buyer"].token).get_json()
    assert order["status"] == "cancelled"
    page = _text(web.get(f"/vendor/orders/{vo_id}"))
    assert "Mark as shipped" not in page and "Out of walnut" in page
    tab = _text(web.get("/vendor/orders?tab=cancelled"))
    assert f'data-vendor-order="{vo_id}"' in tab


# --- refunds ---------------------------------------------------------------------------------


def test_refund_preview_shows_the_api_numbers_and_confirm_books_them(api, shop, web):
    vo_id, token = shop["vo_id"], shop["vendor"].token
    assert _ship(web, vo_id).status_code == 303
    assert _act(web, vo_id, "deliver").status_code == 303  # transferred
    item_id = _vo(api, shop)["items"][0]["id"]

    # by items (with shipping, no restock)
    query = {f"qty_{item_id}": "1", "include_shipping": "y", "reason": "Chipped <edge>"}
    preview = web.get(f"/vendor/orders/{vo_id}/refund-preview", query_string=query)
    assert preview.status_code == 200
    page = _text(preview)
    wanted = api.get(
        f"/vendor/orders/{vo_id}/refund-preview?items={item_id}:1"
        "&include_shipping=true&restock=false",
        token,
    ).get_json()
    for key in ("amount_cents", "transfer_reversal_cents", "commission_returned_cents"):
        assert _cents(page, key) == wanted[key], key
    assert wanted["amount_cents"] == 2500 + 500 and wanted["transfer_reversal_cents"] > 0
    assert "Chipped &lt;edge&gt;" in page and "<edge>" not in page
    assert wanted["restock"] == [] and 'data-variant="' not in page

    # by items with restock: the restocked line is shown
    query = {f"qty_{item_id}": "1", "restock": "y"}
    page = _text(web.get(f"/vendor/orders/{vo_id}/refund-preview", query_string=query))
    wanted = api.get(
        f"/vendor/orders/{vo_id}/refund-preview?items={item_id}:1&restock=true", token
    ).get_json()
    for key in ("amount_cents", "transfer_reversal_cents", "commission_returned_cents"):
        assert _cents(page, key) == wanted[key], key
    assert wanted["restock"] == [{"variant_id": shop["variant_id"], "quantity": 1}]
    assert f'data-variant="{shop["variant_id"]}" data-quantity="1"' in page

    # a preview changes nothing
    assert _fresh().scalar(select(func.count()).select_from(Refund)) == 0
    assert _vo(api, shop)["items"][0]["refunded_quantity"] == 0

    # confirm: exactly the previewed request
    fields = _hidden_fields(page, f"/vendor/orders/{vo_id}/refund")
    assert fields[f"qty_{item_id}"] == "1" and fields["restock"] == "y"
    on_hand = _fresh().get(Variant, shop["variant_id"]).on_hand
    done = web.post(f"/vendor/orders/{vo_id}/refund", data=fields)
    assert done.status_code == 303
    refund = _fresh().scalar(select(Refund))
    assert refund.amount_cents == wanted["amount_cents"]
    assert refund.transfer_reversal_cents == wanted["transfer_reversal_cents"]
    assert refund.commission_returned_cents == wanted["commission_returned_cents"]
    assert refund.status.value == "succeeded" and refund.reason == "requested_by_vendor"
    assert refund.actor == f"vendor:{shop['vendor'].user.id}"  # as the API records it
    assert _fresh().get(Variant, shop["variant_id"]).on_hand == on_hand + 1
    vo = _vo(api, shop)
    assert vo["items"][0]["refunded_quantity"] == 1 and vo["status"] == "delivered"
    page = _text(web.get(f"/vendor/orders/{vo_id}"))
    assert "Refunded $25.00 to the buyer." in page
    earnings = api.get("/vendor/earnings", token).get_json()
    assert earnings["reversed_cents"] == wanted["transfer_reversal_cents"]

    # by amount in dollars: the same numbers as the API's amount_cents
    page = _text(web.get(f"/vendor/orders/{vo_id}/refund-preview", query_string={"amount": "5"}))
    wanted = api.get(f"/vendor/orders/{vo_id}/refund-preview?amount_cents=500", token).get_json()
    for key in ("amount_cents", "transfer_reversal_cents", "commission_returned_cents"):
        assert _cents(page, key) == wanted[key], key


def test_refund_of_everything_left_marks_the_order_refunded(api, shop, web):
    vo_id = shop["vo_id"]
    assert _ship(web, vo_id).status_code == 303
    page = _text(web.get(f"/vendor/orders/{vo_id}/refund-preview", query_string={"restock": "y"}))
    wanted = api.get(f"/vendor/orders/{vo_id}/refund-preview", shop["vendor"].token).get_json()
    assert _cents(page, "amount_cents") == wanted["amount_cents"] == 5000 + 500
    assert _cents(page, "transfer_reversal_cents") == 0  # not paid out yet
    fields = _hidden_fields(page, f"/vendor/orders/{vo_id}/refund")
    assert web.post(f"/vendor/orders/{vo_id}/refund", data=fields).status_code == 303
    assert _vo(api, shop)["status"] == "refunded"
    page = _text(web.get(f"/vendor/orders/{vo_id}"))
    assert "Preview refund" not in page and "<h2>Refunds</h2>" in page
    again = web.post(f"/vendor/orders/{vo_id}/refund", data=fields)
    assert again.status_code == 409  # nothing left
    assert _fresh().scalar(select(func.count()).select_from(Refund)) == 1


def test_refund_errors_are_shown_and_change_nothing(api, shop, web):
    vo_id = shop["vo_id"]
    # not captured yet (paid, not shipped): refused with the service's message
    early = web.get(f"/vendor/orders/{vo_id}/refund-preview", query_string={"amount": "1"})
    assert early.status_code == 409 and "cancel it instead" in _text(early)
    # The preview refused: no confirm form to submit; post it as a stale page would.
    refused = web.post_raw(f"/vendor/orders/{vo_id}/refund", data={"amount": "1"})
    assert refused.status_code == 409
    assert _ship(web, vo_id).status_code == 303
    item_id = _vo(api, shop)["items"][0]["id"]
    for query, status, message in (
        ({"amount": "abc"}, 422, "Enter an amount like 12.34"),
        ({"amount": "1.234"}, 422, "at most 2 decimals"),
        ({"amount": "999"}, 422, "between $0.01 and $55.00"),
        ({f"qty_{item_id}": "3"}, 422, "must be between 1 and 2"),
        ({f"qty_{item_id}": "-1"}, 422, "whole number"),
        ({"amount": "1", f"qty_{item_id}": "1"}, 422, "either amount_cents or items"),
    ):
        preview = web.get(f"/vendor/orders/{vo_id}/refund-preview", query_string=query)
        assert preview.status_code == status, query
        assert message in html.unescape(_text(preview)), query
        posted = web.post_raw(f"/vendor/orders/{vo_id}/refund", data=query)
        assert posted.status_code == status, query
    long_reason = web.post_raw(f"/vendor/orders/{vo_id}/refund", data={"reason": "r" * 201})
    assert long_reason.status_code == 422
    assert _fresh().scalar(select(func.count()).select_from(Refund)) == 0
    vo = _vo(api, shop)
    assert vo["status"] == "shipped" and vo["items"][0]["refunded_quantity"] == 0


# --- returns ---------------------------------------------------------------------------------


def _delivered_with_returns(api: Any, shop: dict[str, Any], web: FlaskClient) -> list[int]:
    vo_id = shop["vo_id"]
    assert _ship(web, vo_id).status_code == 303
    assert _act(web, vo_id, "deliver").status_code == 303
    item_id = _vo(api, shop)["items"][0]["id"]
    ids = []
    for reason in ("Too big", "Wrong colour"):
        created = api.post(
            f"/orders/{shop['order']['id']}/items/{item_id}/return",
            shop["buyer"].token,
            json={"quantity": 1, "reason": reason},
        )
        assert created.status_code == 201, created.get_json()
        ids.append(created.get_json()["id"])
    return ids


def test_return_requests_accept_and_decline(api, shop, web):
    vo_id = shop["vo_id"]
    accept_id, decline_id = _delivered_with_returns(api, shop, web)
    page = _text(web.get(f"/vendor/orders/{vo_id}"))
    assert "Too big" in page and "Wrong colour" in page and "Accept and refund" in page

    blank = web.post(f"/vendor/orders/{vo_id}/returns/{decline_id}/decline", data={"reason": ""})
    assert blank.status_code == 422 and "must be 1 to 500 characters long" in _text(blank)
    declined = web.post(
        f"/vendor/orders/{vo_id}/returns/{decline_id}/decline", data={"reason": "Used"}
    )
    assert declined.status_code == 303

    on_hand = _fresh().get(Variant, shop["variant_id"]).on_hand
    accepted = web.post(f"/vendor/orders/{vo_id}/returns/{accept_id}/accept", data={"restock": "y"})
    assert accepted.status_code == 303
    session = _fresh()
    decided = {r.id: r for r in session.scalars(select(ReturnRequest))}
    assert decided[decline_id].status is ReturnStatus.DECLINED
    assert decided[decline_id].decision_reason == "Used"
    assert decided[accept_id].status is ReturnStatus.ACCEPTED and decided[accept_id].restock
    refund = session.get(Refund, decided[accept_id].refund_id)
    assert refund.amount_cents == 2500
    assert session.get(Variant, shop["variant_id"]).on_hand == on_hand + 1
    again = web.post(f"/vendor/orders/{vo_id}/returns/{accept_id}/accept", data={"restock": "y"})
    assert again.status_code == 409
    assert _fresh().scalar(select(func.count()).select_from(Refund)) == 1


# --- another vendor sees nothing -------------------------------------------------------------


def _snapshot(vo_id: int) -> tuple[Any, ...]:
    session = _fresh()
    vo = session.get(VendorOrder, vo_id)
    return (
        vo.status,
        vo.carrier,
        vo.tracking_number,
        vo.cancel_reason,
        tuple(i.refunded_quantity for i in vo.items),
        session.scalar(select(func.count()).select_from(Refund)),
        tuple(session.execute(select(ReturnRequest.id, ReturnRequest.status)).all()),
        tuple(session.execute(select(Variant.id, Variant.on_hand, Variant.reserved)).all()),
    )


def test_another_vendor_gets_404_on_every_page_and_action(api, webhooks, shop, web, other_web):
    vo_id = shop["vo_id"]
    (return_id, _) = _delivered_with_returns(api, shop, web)
    rival = make_vendor("Rival")
    rival_product = make_product(rival, price_cents=700)
    assert login(other_web, rival.user.email).status_code == 302
    item_id = _vo(api, shop)["items"][0]["id"]
    before = _snapshot(vo_id)

    base = f"/vendor/orders/{vo_id}"
    for path in (base, f"{base}/refund-preview", f"{base}/refund-preview?amount=1"):
        response = other_web.get(path)
        assert response.status_code == 404, path
        assert "Walnut Board" not in _text(response)
    for path, data in (
        (f"{base}/ship", {"carrier": "UPS", "tracking_number": "1"}),
        (f"{base}/ship", {}),  # even a malformed form: 404 first
        (f"{base}/deliver", {}),
        (f"{base}/cancel", {"reason": "mine now"}),
        (f"{base}/refund", {"amount": "1"}),
        (f"{base}/refund", {f"qty_{item_id}": "1"}),
        (f"{base}/refund", {}),
        (f"{base}/returns/{return_id}/accept", {"restock": "y"}),
        (f"{base}/returns/{return_id}/decline", {"reason": "no"}),
    ):
        # Deliberate: the rival's pages offer none of these.
        assert other_web.post_raw(path, data=data).status_code == 404, path
    assert _snapshot(vo_id) == before

    # the rival's own (empty) queue does not list it, even when searched for
    page = _text(other_web.get("/vendor/orders", query_string={"tab": "all", "q": vo_id}))
    assert 'data-vendor-order="' not in page
    # a return of the first vendor's order is not reachable through the rival's orders either
    rival_order, _ = _paid_order(api, webhooks, [(rival_product.variants[0].id, 1)], "r")
    rival_vo = rival_order["vendor_orders"][0]["id"]
    for action, data in (("accept", {"restock": "y"}), ("decline", {"reason": "no"})):
        path = f"/vendor/orders/{rival_vo}/returns/{return_id}/{action}"
        assert other_web.post_raw(path, data=data).status_code == 404
    # nor through another order of the first vendor
    assert web.post_raw(f"/vendor/orders/{rival_vo}/ship", data={}).status_code == 404
    assert _snapshot(vo_id)[:7] == before[:7]


def test_a_shared_order_shows_each_vendor_only_its_own_part(api, webhooks, web, other_web):
    books = onboarded_vendor(api, webhooks, "Books")
    games = onboarded_vendor(api, webhooks, "Games")
    update_vendor_settings(books.vendor.id, shipping_flat_cents=500)
    update_vendor_settings(games.vendor.id, shipping_flat_cents=700)
    novel = make_product(books, title="Quiet Novel", price_cents=2345, stock=5)
    puzzle = make_product(games, title="Jigsaw Puzzle", price_cents=1877, stock=5)
    order, _ = _paid_order(api, webhooks, [(novel.variants[0].id, 1), (puzzle.variants[0].id, 2)])
    by_vendor = {vo["vendor_id"]: vo for vo in order["vendor_orders"]}
    assert login(web, books.user.email).status_code == 302
    assert login(other_web, games.user.email).status_code == 302

    for client, mine, theirs, product, other_product in (
        (web, books, games, novel, puzzle),
        (other_web, games, books, puzzle, novel),
    ):
        own, other = by_vendor[mine.vendor.id], by_vendor[theirs.vendor.id]
        page = _text(client.get(f"/vendor/orders/{own['id']}"))
        assert product.title in page and product.variants[0].sku in page
        assert other_product.title not in page
        assert other_product.variants[0].sku not in page
        for cents in (other["subtotal_cents"], other["total_cents"], other["shipping_cents"]):
            assert f"${cents // 100}.{cents % 100:02d}" not in page
        assert f"${order['total_cents'] // 100}.{order['total_cents'] % 100:02d}" not in page
        assert f'data-cents="{own["total_cents"]}"' in page
        assert f'data-cents="{own["vendor_earnings_cents"]}"' in page
        queue = _text(client.get("/vendor/orders"))
        assert re.findall(r'data-vendor-order="(\d+)"', queue) == [str(own["id"])]
        assert other_product.title not in queue
        other_page = client.get(f"/vendor/orders/{other['id']}")
        assert other_page.status_code == 404


# --- low stock and reviews -------------------------------------------------------------------


def test_low_stock_lists_only_this_vendors_active_variants_at_or_below_threshold(app, web):
    vendor = make_vendor()
    low = make_product(vendor, title="Few Left", stock=5)
    make_product(vendor, title="Plenty", stock=6)
    archived = make_product(vendor, title="Archived Low", stock=1)
    update_product(vendor.vendor.id, archived.id, status=ProductStatus.ARCHIVED)
    rival = make_vendor()
    make_product(rival, title="Rival Low", stock=0)
    assert login(web, vendor.user.email).status_code == 302
    page = _text(web.get("/vendor/low-stock"))
    assert "Few Left" in page and "Plenty" not in page
    assert "Archived Low" not in page and "Rival Low" not in page
    assert f'href="/vendor/variants/{low.variants[0].id}/edit"' in page


def test_reviews_page_and_reply_once(api, shop, web, other_web):
    vo_id = shop["vo_id"]
    assert _ship(web, vo_id).status_code == 303
    assert _act(web, vo_id, "deliver").status_code == 303
    item_id = _vo(api, shop)["items"][0]["id"]
    created = api.post(
        f"/orders/{shop['order']['id']}/items/{item_id}/review",
        shop["buyer"].token,
        json={"rating": 4, "body": "Nice <b>board</b>"},
    )
    assert created.status_code == 201, created.get_json()
    review_id = created.get_json()["id"]

    page = _text(web.get("/vendor/reviews"))
    assert "Walnut Board" in page and "Nice &lt;b&gt;board&lt;/b&gt;" in page
    assert "Post reply" in page

    reviews = web.get("/vendor/reviews")
    empty = submit(web, reviews, f"/vendor/reviews/{review_id}/reply", body="  ")
    assert empty.status_code == 422 and "must be 1 to 5000 characters long" in _text(empty)
    rival = make_vendor("Rival")
    assert login(other_web, rival.user.email).status_code == 302
    reply = f"/vendor/reviews/{review_id}/reply"  # deliberate: not on the rival's pages
    assert other_web.post_raw(reply, data={"body": "x"}).status_code == 404
    assert other_web.post_raw(reply, data={}).status_code == 404
    assert "Walnut Board" not in _text(other_web.get("/vendor/reviews"))

    done = submit(web, reviews, f"/vendor/reviews/{review_id}/reply", body="Thank you!")
    assert done.status_code == 303
    assert _fresh().get(Review, review_id).reply == "Thank you!"
    page = _text(web.get("/vendor/reviews"))
    assert "Thank you!" in page and "Post reply" not in page
    again = web.post(f"/vendor/reviews/{review_id}/reply", data={"body": "Changed"})  # stale
    assert again.status_code == 409 and "already replied" in _text(again)
    assert _fresh().get(Review, review_id).reply == "Thank you!"


def test_admin_is_not_a_vendor(app, web):
    admin = make_admin()
    assert login(web, admin.user.email).status_code == 302
    assert web.get("/vendor/orders").status_code == 403


def test_actions_need_their_csrf_token(api, webhooks, app):
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=1500, stock=3)
    order, _ = _paid_order(api, webhooks, [(product.variants[0].id, 1)])
    vo_id = order["vendor_orders"][0]["id"]
    ship = {"carrier": "UPS", "tracking_number": "1Z"}
    with page_app(WTF_CSRF_ENABLED=True) as web_app:
        browser = web_app.test_client()
        assert login(browser, vendor.user.email).status_code == 302
        refused = browser.post_raw(f"/vendor/orders/{vo_id}/ship", data=ship)  # no token
        assert refused.status_code == 400 and "CSRF token" in _text(refused)
        assert _fresh().get(VendorOrder, vo_id).status.value == "paid"

        detail = browser.get(f"/vendor/orders/{vo_id}")
        assert csrf_token_in(detail)
        shipped = submit(browser, detail, f"/vendor/orders/{vo_id}/ship", **ship)
        assert shipped.status_code == 303
        page = _text(browser.get(f"/vendor/orders/{vo_id}/refund-preview?amount=2"))
        fields = _hidden_fields(page, f"/vendor/orders/{vo_id}/refund")
        assert fields["csrf_token"] and fields["amount"] == "2"
        bare = {k: v for k, v in fields.items() if k != "csrf_token"}
        assert browser.post_raw(f"/vendor/orders/{vo_id}/refund", data=bare).status_code == 400
        assert _fresh().scalar(select(func.count()).select_from(Refund)) == 0
        assert browser.post(f"/vendor/orders/{vo_id}/refund", data=fields).status_code == 303
        assert _fresh().scalar(select(Refund.amount_cents)) == 200


def test_unicode_digits_and_huge_numbers_are_refused_not_500(shop, web):
    vo_id = shop["vo_id"]
    item_id = shop["order"]["vendor_orders"][0]["items"][0]["id"]
    assert web.get("/vendor/orders", query_string={"q": "²", "tab": "all"}).status_code == 200
    assert web.get("/vendor/orders", query_string={"q": "9" * 40}).status_code == 200
    before = _snapshot(vo_id)
    for quantity in ("²", "٣", "9" * 30):
        preview = web.get(f"/vendor/orders/{vo_id}/refund-preview?qty_{item_id}={quantity}")
        assert preview.status_code in (400, 422), quantity
        tampered = {f"qty_{item_id}": quantity}  # the preview refused it: no form offers this
        refund = web.post_raw(f"/vendor/orders/{vo_id}/refund", data=tampered)
        assert refund.status_code in (400, 422), quantity
    assert web.get(f"/vendor/orders/{vo_id}/refund-preview?qty_²=1").status_code < 500
    assert _snapshot(vo_id) == before
