"""The shop's currency (CURRENCY) and LOCALE: a price typed on the vendor page is stored and shown
as typed, checkout totals and Stripe's amounts agree to the unit, and amounts Stripe would refuse
are refused before any stock is held."""

from __future__ import annotations

import html
from typing import Any

import pytest
from sqlalchemy import func, select

from marketplace.catalog.models import Variant
from marketplace.catalog.services import update_vendor_settings
from marketplace.db import db
from marketplace.money import format_money
from marketplace.orders.models import Order
from marketplace.orders.tax import set_rate
from tests.functional.money import ADDRESS, checkout, emulator_state, objects, onboarded_vendor
from tests.helpers import (
    assert_error,
    forms_in,
    login,
    make_buyer,
    make_product,
    make_vendor,
    page_app,
    submit,
)

SHOPS = {
    # currency, locale: (typed price, stored minor units, how the storefront shows it)
    ("usd", "en_US"): ("12.34", 1234, "$12.34"),
    ("eur", "de_DE"): ("12,34", 1234, "12,34\xa0€"),
    ("jpy", "ja_JP"): ("1,500", 1500, "￥1,500"),  # zero-decimal: ¥1,500 is 1500, not 150000
    ("kwd", "en_US"): ("1.25", 1250, "KWD1.250"),  # three decimals, charged in tens of fils
}


@pytest.fixture(params=list(SHOPS), ids=[code for code, _ in SHOPS])
def shop(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


@pytest.fixture
def app_overrides(shop: tuple[str, str]) -> dict[str, Any]:
    return {"CURRENCY": shop[0], "LOCALE": shop[1]}


def _page_text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_a_price_typed_on_the_vendor_page_is_stored_and_shown_as_typed(app, shop):
    typed, stored, shown = SHOPS[shop]
    code, locale = shop
    seller = make_vendor("Seller")
    with page_app(CURRENCY=code, LOCALE=locale) as web_app:
        web = web_app.test_client()
        assert login(web, seller.user.email).status_code == 302
        page = web.get("/vendor/products/new")
        label = forms_in(page, "/vendor/products/new")[0]
        assert label.control("variants-0-price"), "the page has no price input"
        created = submit(
            web,
            page,
            "/vendor/products/new",
            title="Tea bowl",
            description="Glazed.",
            category="Kitchen",
            status="active",
            **{"variants-0-sku": "BOWL-1", "variants-0-price": typed, "variants-0-stock": "3"},
        )
        assert created.status_code == 303, _page_text(created)
        db.session.rollback()
        variant = db.session.scalar(select(Variant).where(Variant.sku == "BOWL-1"))
        assert variant.price_cents == stored

        edit = web.get(created.headers["Location"])
        assert shown in _page_text(edit)
        product_page = _page_text(web.get(f"/products/{variant.product_id}"))
        assert shown in product_page

        # The variant's edit form is pre-filled so that saving it unchanged changes nothing.
        edit_path = f"/vendor/variants/{variant.id}/edit"
        saved = submit(web, web.get(edit_path), edit_path)
        assert saved.status_code == 303, _page_text(saved)
        db.session.rollback()
        assert db.session.get(Variant, variant.id).price_cents == stored


def test_checkout_totals_and_stripe_amounts_agree_to_the_unit(app, api, webhooks, shop):
    code, locale = shop
    _, price, _ = SHOPS[shop]
    emulator = webhooks
    seller = onboarded_vendor(api, emulator, "Potter")
    update_vendor_settings(seller.vendor.id, shipping_flat_cents=price // 2 // 10 * 10)
    set_rate(ADDRESS["country"], ADDRESS["state"], 825)  # 8.25 %: a third decimal to round
    variant = make_product(seller, price_cents=price, stock=5).variants[0]
    buyer = make_buyer()
    added = api.post("/cart/items", buyer.token, json={"variant_id": variant.id, "quantity": 3})
    assert added.status_code in (200, 201), added.get_json()

    quote = api.post("/checkout/quote", buyer.token, json={"shipping_address": ADDRESS})
    assert quote.status_code == 200, quote.get_json()
    body = checkout(api, buyer)
    order = body["order"]
    assert order["total_cents"] == quote.get_json()["total_cents"]
    assert order["total_cents"] == (
        order["subtotal_cents"] + order["shipping_cents"] + order["tax_cents"]
    )
    assert order["currency"] == code

    intents = objects(emulator_state(emulator), "payment_intents")
    intent = next(i for i in intents if i["id"] == body["payment"]["payment_intent_id"])
    assert (intent["amount"], intent["currency"]) == (order["total_cents"], code)
    if code == "kwd":  # Stripe takes three-decimal amounts only in tens
        assert order["tax_cents"] % 10 == 0 and intent["amount"] % 10 == 0

    with page_app(CURRENCY=code, LOCALE=locale) as web_app:
        web = web_app.test_client()
        assert login(web, buyer.user.email).status_code == 302
        page = _page_text(web.get(f"/orders/{order['id']}"))
        assert format_money(order["total_cents"], code, locale) in page


def test_a_total_stripe_would_refuse_holds_no_stock(app, api, shop):
    code, _ = shop
    seller = make_vendor("Tiny")
    step = 10 if code == "kwd" else 1
    variant = make_product(seller, price_cents=step, stock=5).variants[0]  # below every minimum
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant.id, "quantity": 1})
    answer = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": ADDRESS},
        headers={"Idempotency-Key": "tiny"},
    )
    error = assert_error(answer, 422, "amount_not_chargeable")
    assert error["details"]["currency"] == code
    assert error["details"]["total_cents"] < error["details"]["min_cents"]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    assert db.session.get(Variant, variant.id).reserved == 0
    assert api.get("/cart", buyer.token).get_json()["items"], "the cart is kept"
