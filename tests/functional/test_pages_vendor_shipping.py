"""The vendor's shipping page (/vendor/shipping) and the weight on the variant forms, submitted
as a person would (PageClient)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace.catalog import shipping
from marketplace.catalog.models import Variant, Vendor
from marketplace.db import db
from tests.helpers import VendorAccount, login, make_product, make_vendor, page_app, submit


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


@pytest.fixture
def seller(web: FlaskClient) -> VendorAccount:
    account = make_vendor("Shipper")
    assert login(web, account.user.email).status_code == 302
    return account


def _terms(vendor_id: int) -> shipping.ShippingTerms:
    db.session.rollback()
    return shipping.terms_of(db.session.get(Vendor, vendor_id))


def _send(web: FlaskClient, **data: str):
    return submit(web, web.get("/vendor/shipping"), "/vendor/shipping", **data)


def test_the_shipping_page_saves_each_mode(web, seller):
    page = web.get("/vendor/shipping")
    assert page.status_code == 200 and "Free shipping; ships to everywhere" in page.text
    assert 'href="/vendor/shipping"' in web.get("/vendor/").text

    saved = _send(
        web,
        mode="weight_tiers",
        flat="0",
        additional="",
        weight_tiers="500 4.00\n2000 9.50\n",
        free_over="80",
        ships_to="us, ca",
    )
    assert saved.status_code == 303
    terms = _terms(seller.vendor.id)
    assert terms.mode == "weight_tiers" and terms.weight_tiers == ((500, 400), (2000, 950))
    assert terms.free_over_cents == 8000 and terms.ships_to == ("CA", "US")
    assert terms.version == 2
    again = web.get("/vendor/shipping").text
    assert "500 4.00" in again and "CA, US" in again and "up to 0.5 kg $4.00" in again

    assert _send(web, mode="per_item", flat="5", additional="1.25", weight_tiers="").status_code
    terms = _terms(seller.vendor.id)
    assert (terms.mode, terms.flat_cents, terms.additional_cents) == ("per_item", 500, 125)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "weight_tiers", "weight_tiers": ""}, "needs at least one tier"),
        ({"weight_tiers": "heavy 4.00"}, "Line 1"),
        ({"weight_tiers": "500 4.00\n400 5.00"}, "heavier than the tier before"),
        ({"ships_to": "USA"}, "ISO 3166-1"),
        ({"flat": "-1"}, "Must not be negative."),
        ({"flat": "100000.01"}, "must be between"),
    ],
)
def test_bad_shipping_changes_nothing(web, seller, data, message):
    before = _terms(seller.vendor.id)
    form = {"mode": "flat_per_order", "flat": "3", "weight_tiers": "", "ships_to": "", **data}
    response = _send(web, **form)
    assert response.status_code == 422
    assert message in response.text
    assert _terms(seller.vendor.id) == before


def test_the_variant_forms_take_a_weight(web, seller):
    product = make_product(seller, price_cents=1200)
    variant_id = product.variants[0].id
    page = web.get(f"/vendor/variants/{variant_id}/edit")
    edited = submit(
        web,
        page,
        f"/vendor/variants/{variant_id}/edit",
        price="12.00",
        stock="5",
        weight_grams="750",
    )
    assert edited.status_code == 303
    db.session.rollback()
    assert db.session.get(Variant, variant_id).weight_grams == 750
    added = submit(
        web,
        web.get(f"/vendor/products/{product.id}/edit"),
        f"/vendor/products/{product.id}/variants",
        sku="HEAVY-1",
        price="15.00",
        stock="2",
        weight_grams="2500",
    )
    assert added.status_code == 303
    db.session.rollback()
    assert {v.sku: v.weight_grams for v in db.session.get(Variant, variant_id).product.variants}[
        "HEAVY-1"
    ] == 2500


def test_the_cart_and_the_seller_page_say_where_each_vendor_ships(web):
    from marketplace.cart import services as carts
    from tests.helpers import make_buyer

    local = make_vendor("Local")
    shipping.set_terms(
        local.vendor.id, shipping.ShippingTerms(flat_cents=300, ships_to=("DE", "FR"))
    )
    anywhere = make_vendor("Anywhere")
    shipping.set_terms(
        anywhere.vendor.id,
        shipping.ShippingTerms(mode="per_item", flat_cents=200, additional_cents=50),
    )
    buyer = make_buyer()
    for seller in (local, anywhere):
        carts.add_item(buyer.user.id, make_product(seller, price_cents=900).variants[0].id, 2)
    assert login(web, buyer.user.email).status_code == 302
    page = web.get("/cart").text
    assert "Shipping: $3.00 per order; ships to DE, FR" in page
    assert "Shipping: $2.00 for the first item, $0.50 each additional; ships to everywhere" in page
    assert 'data-field="shipping" data-cents="250"' in page  # 2 units: $2.00 + $0.50
    seller_page = web.get(f"/sellers/{local.vendor.id}").text
    assert "Shipping: $3.00 per order; ships to DE, FR" in seller_page


ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def _fill_cart(web):
    from tests.helpers import make_buyer

    local = make_vendor("Local")
    shipping.set_terms(local.vendor.id, shipping.ShippingTerms(flat_cents=300, ships_to=("US",)))
    lamp = make_product(local, title="Lamp", price_cents=1500, stock=5)
    buyer = make_buyer()
    assert login(web, buyer.user.email).status_code == 302
    added = submit(web, web.get(f"/products/{lamp.id}"), "/cart/add", quantity=2)
    assert added.status_code == 302
    return local


def test_the_checkout_page_names_the_vendor_that_does_not_ship_there(web):
    from marketplace.orders.models import Order

    _fill_cart(web)
    abroad = {**ADDRESS, "country": "DE", "state": ""}
    for step in ("quote", "place"):
        refused = submit(web, web.get("/checkout"), "/checkout", step=step, **abroad)
        assert refused.status_code == 422
        assert "Local" in refused.text and "does not ship to DE" in refused.text
        assert "Lamp" in refused.text
    db.session.rollback()
    assert db.session.query(Order).count() == 0
    quoted = submit(web, web.get("/checkout"), "/checkout", step="quote", **ADDRESS)
    assert quoted.status_code == 200


def test_the_checkout_page_refuses_shipping_changed_since_the_cart(web):
    from marketplace.orders.models import Order

    local = _fill_cart(web)
    quoted = submit(web, web.get("/checkout"), "/checkout", step="quote", **ADDRESS)
    assert quoted.status_code == 200
    shipping.set_terms(local.vendor.id, shipping.ShippingTerms(flat_cents=900, ships_to=("US",)))
    refused = submit(web, quoted, "/checkout", step="place")
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/cart")
    cart = web.get("/cart").text
    assert "prices changed" in cart and 'data-field="shipping" data-cents="900"' in cart
    db.session.rollback()
    assert db.session.query(Order).count() == 0
    quoted = submit(web, web.get("/checkout"), "/checkout", step="quote", **ADDRESS)
    placed = submit(web, quoted, "/checkout", step="place")
    assert placed.status_code == 302 and "/pay" in placed.headers["Location"]
    db.session.rollback()
    assert db.session.query(Order).one().shipping_cents == 900
