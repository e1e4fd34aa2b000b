"""Cart grouped by vendor, the checkout's quote and the stock hold, through the rendered forms."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from marketplace.catalog.models import Variant
from marketplace.catalog.services import update_vendor_settings
from marketplace.db import db, utcnow
from marketplace.orders import services as orders
from marketplace.orders.models import Order
from marketplace.orders.tax import set_rate
from tests.helpers import login, make_buyer, make_product, make_vendor, submit

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def _cents(html: str, field: str, vendor_id: int | None = None) -> int:
    if vendor_id is not None:
        html = html.split(f'data-vendor="{vendor_id}"', 1)[1]
    match = re.search(rf'data-field="{field}" data-cents="(-?\d+)"', html)
    assert match, f"no {field} on the page"
    return int(match.group(1))


def _shop(client):
    lamps = make_vendor("Lamps")
    update_vendor_settings(
        lamps.vendor.id, shipping_flat_cents=450, free_shipping_threshold_cents=4000
    )
    teas = make_vendor("Teas")
    update_vendor_settings(teas.vendor.id, shipping_flat_cents=300)
    set_rate("US", "CA", 1000)
    lamp = make_product(lamps, title="Lamp", price_cents=1500, stock=5)
    tea = make_product(teas, title="Tea", price_cents=999, stock=5)
    for product, quantity in ((lamp, 2), (tea, 1)):
        page = client.get(f"/products/{product.id}")
        assert submit(client, page, "/cart/add", quantity=quantity).status_code == 302
    return lamps, teas, lamp, tea


def test_cart_is_grouped_by_vendor_with_shipping_and_the_free_shipping_line(client):
    buyer = make_buyer()
    login(client, buyer.user.email)
    lamps, teas, lamp, _ = _shop(client)
    html = client.get("/cart").get_data(as_text=True)
    assert _cents(html, "subtotal", lamps.vendor.id) == 3000
    assert _cents(html, "shipping", lamps.vendor.id) == 450
    assert "Spend $10.00 more for free shipping from Lamps" in html
    assert _cents(html, "shipping", teas.vendor.id) == 300
    assert "more for free shipping from Teas" not in html  # no threshold
    assert _cents(html, "shipping_total") == 750
    assert f'href="/sellers/{lamps.vendor.id}"' in html

    # Reaching the threshold through the cart's own form ships free.
    page = client.get("/cart")
    item_id = re.search(rf'data-variant="{lamp.variants[0].id}".*?/cart/items/(\d+)', html, re.S)
    submit(client, page, f"/cart/items/{item_id.group(1)}", quantity=3)
    html = client.get("/cart").get_data(as_text=True)
    assert _cents(html, "shipping", lamps.vendor.id) == 0
    assert "more for free shipping from Lamps" not in html


def test_a_guest_cart_is_grouped_by_vendor_too(client):
    lamps, teas, _, _ = _shop(client)
    html = client.get("/cart").get_data(as_text=True)
    assert _cents(html, "shipping", lamps.vendor.id) == 450
    assert _cents(html, "shipping", teas.vendor.id) == 300
    assert "Log in" in html and "Check out</a>" not in html


def test_checkout_shows_the_orders_numbers_before_placing_it(client):
    buyer = make_buyer()
    login(client, buyer.user.email)
    lamps, teas, _, _ = _shop(client)
    form_page = client.get("/checkout")
    assert "Show shipping and tax" in form_page.get_data(as_text=True)
    assert "Place order and pay" not in form_page.get_data(as_text=True)

    quoted = submit(client, form_page, "/checkout", step="quote", **ADDRESS)
    assert quoted.status_code == 200
    html = quoted.get_data(as_text=True)
    assert "data-quote" in html
    shown = {
        "shipping": _cents(html, "shipping_total"),
        "tax": _cents(html, "tax_total"),
        "total": _cents(html, "grand_total"),
    }
    assert shown == {"shipping": 750, "tax": 300 + 100, "total": 3000 + 999 + 750 + 400}
    assert (
        _cents(html, "tax", lamps.vendor.id) == 300 and _cents(html, "tax", teas.vendor.id) == 100
    )
    assert db.session.query(Order).count() == 0

    placed = submit(client, quoted, "/checkout", step="place")
    assert placed.status_code == 302 and "/pay" in placed.headers["Location"]
    db.session.rollback()
    order = db.session.query(Order).one()
    assert (order.shipping_cents, order.tax_cents, order.total_cents) == tuple(shown.values())


def test_an_order_that_would_differ_from_the_quote_is_not_placed(client):
    buyer = make_buyer()
    login(client, buyer.user.email)
    _shop(client)
    quoted = submit(client, client.get("/checkout"), "/checkout", step="quote", **ADDRESS)
    assert _cents(quoted.get_data(as_text=True), "grand_total") == 5149
    # The buyer edits the state (no tax there) and places the order without a new quote.
    changed = submit(client, quoted, "/checkout", step="place", state="OR")
    assert changed.status_code == 409
    html = changed.get_data(as_text=True)
    assert "The total changed" in html and _cents(html, "grand_total") == 4749
    assert db.session.query(Order).count() == 0
    placed = submit(client, changed, "/checkout", step="place")
    assert placed.status_code == 302
    db.session.rollback()
    assert db.session.query(Order).one().total_cents == 4749


def test_the_stock_hold_on_the_order_and_pay_pages_and_once_it_ran_out(client, webhooks):
    buyer = make_buyer()
    login(client, buyer.user.email)
    _, _, lamp, _ = _shop(client)
    quoted = submit(client, client.get("/checkout"), "/checkout", step="quote", **ADDRESS)
    pay_url = submit(client, quoted, "/checkout", step="place").headers["Location"]
    db.session.rollback()
    order = db.session.query(Order).one()
    expires = order.reservation_expires_at.strftime("%H:%M")

    for url in (pay_url, f"/orders/{order.id}"):
        html = client.get(url).get_data(as_text=True)
        assert "held until <time" in html and f"{expires} UTC</time>" in html
        assert re.search(r"about 1[45] minutes left", html)
        assert 'src="/static/hold.js"' in html
    script = client.get("/static/hold.js")
    assert script.status_code == 200 and b"secondsLeft" in script.data
    script.close()

    # The hold runs out: the pay page says so instead of taking the card.
    db.session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(reservation_expires_at=utcnow() - timedelta(seconds=5))
    )
    db.session.commit()
    html = client.get(pay_url).get_data(as_text=True)
    assert "The hold on your items ran out" in html and "Enter card details" not in html
    assert "ran out at" in client.get(f"/orders/{order.id}").get_data(as_text=True)

    # Once the expiry cancelled it, the stock is back and the pages still say why.
    assert orders.expire_order(order.id)
    db.session.rollback()
    assert db.session.get(Variant, lamp.variants[0].id).reserved == 0
    assert "The hold on your items ran out" in client.get(pay_url).get_data(as_text=True)
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "ran out at" in page and "Pay now" not in page


def test_a_declined_order_claims_no_hold(client, api, webhooks):
    from tests.functional.money import checkout, pay

    product = make_product(make_vendor(), price_cents=1200, stock=2)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    body = checkout(api, buyer)
    assert pay(body, "pm_card_chargeDeclined").get("error")
    assert webhooks.flush_webhooks()
    login(client, buyer.user.email)
    html = client.get(f"/orders/{body['order']['id']}").get_data(as_text=True)
    assert "payment was declined" in html and "held until" not in html
    pay_page = client.get(f"/orders/{body['order']['id']}/pay").get_data(as_text=True)
    assert "held until" not in pay_page and "Enter card details" in pay_page
