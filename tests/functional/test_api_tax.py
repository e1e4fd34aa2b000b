"""Tax through the API: rates as admin data, destinations, categories, taxed shipping, the EU
reverse charge, tax-inclusive prices, and the tax in the books after payment and refunds."""

from __future__ import annotations

import email
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from marketplace.audit.models import AuditEntry
from marketplace.catalog.models import TaxCategory
from marketplace.catalog.services import update_product, update_vendor_settings
from marketplace.db import db
from marketplace.orders.models import Order, TaxRate, VendorOrder
from marketplace.orders.tax import set_rate
from marketplace.payouts import ledger, reconciliation
from tests.functional.money import checkout, onboarded_vendor, pay
from tests.helpers import (
    assert_error,
    login,
    make_admin,
    make_buyer,
    make_product,
    make_vendor,
    submit,
)

US = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}
DE = {**US, "city": "Berlin", "state": None, "postal_code": "10115", "country": "DE"}
AMOUNTS = ("subtotal_cents", "shipping_cents", "discount_cents", "tax_cents", "total_cents")
VALID_VAT = "DE136695976"


def _cart(api: Any, *prices_and_categories: tuple[int, TaxCategory], shipping: int = 500):
    vendor = make_vendor("Shop")
    update_vendor_settings(vendor.vendor.id, shipping_flat_cents=shipping)
    buyer = make_buyer()
    for price, category in prices_and_categories:
        product = make_product(vendor, price_cents=price, stock=10)
        update_product(vendor.vendor.id, product.id, tax_category=category)
        added = api.post(
            "/cart/items", buyer.token, json={"variant_id": product.variants[0].id, "quantity": 1}
        )
        assert added.status_code == 201, added.get_json()
    return buyer, vendor


def _quote(api: Any, buyer: Any, address: dict[str, Any], **extra: Any) -> Any:
    return api.post("/checkout/quote", buyer.token, json={"shipping_address": address, **extra})


def _order(api: Any, buyer: Any, address: dict[str, Any], key: str = "k", **extra: Any) -> Any:
    return api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": address, **extra},
        headers={"Idempotency-Key": key},
    )


def _adds_up(order: dict[str, Any]) -> None:
    for part in order["vendor_orders"]:
        assert part["total_cents"] == (
            part["subtotal_cents"]
            + part["shipping_cents"]
            + part["tax_cents"]
            - part["discount_cents"]
        )
    for key in AMOUNTS:
        assert order[key] == sum(part[key] for part in order["vendor_orders"])


def test_admins_list_set_and_remove_rates_through_the_api_audited(api):
    admin = make_admin()
    assert api.get("/admin/tax-rates", admin.token).get_json() == {"items": []}
    put = api.put(
        "/admin/tax-rates",
        admin.token,
        json={
            "country": "us",
            "region": "New York",
            "rate_bps": 400,
            "shipping_taxed": True,
            "note": "NY state base",
        },
    )
    assert put.status_code == 200, put.get_json()
    rate = put.get_json()
    assert {k: rate[k] for k in ("country", "region", "rate_bps", "shipping_taxed")} == {
        "country": "US",
        "region": "NY",
        "rate_bps": 400,
        "shipping_taxed": True,
    }
    again = api.put(
        "/admin/tax-rates",
        admin.token,
        json={"country": "DE", "rate_bps": 1900, "reduced_rate_bps": 700},
    ).get_json()
    assert again["reduced_rate_bps"] == 700 and again["region"] is None
    listed = api.get("/admin/tax-rates", admin.token).get_json()["items"]
    assert [(r["country"], r["region"]) for r in listed] == [("DE", None), ("US", "NY")]
    assert api.delete(f"/admin/tax-rates/{rate['id']}", admin.token).status_code == 204
    assert_error(api.delete(f"/admin/tax-rates/{rate['id']}", admin.token), 404)
    db.session.rollback()
    actions = [
        (a.action, a.target_id)
        for a in db.session.scalars(select(AuditEntry).where(AuditEntry.action.like("tax.%")))
    ]
    assert actions == [("tax.set", "US/NY"), ("tax.set", "DE"), ("tax.remove", "US/NY")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"country": "US", "region": "XX", "rate_bps": 100}, "region"),
        ({"country": "ZZ", "rate_bps": 100}, "country"),
        ({"country": "DE", "rate_bps": 1900, "reduced_rate_bps": 9000}, "reduced_rate_bps"),
    ],
)
def test_a_bad_rate_is_refused_and_changes_nothing(api, body, field):
    admin = make_admin()
    error = assert_error(api.put("/admin/tax-rates", admin.token, json=body), 422)
    assert field in error["details"]["fields"]
    db.session.rollback()
    assert db.session.scalars(select(TaxRate)).all() == []


def test_the_tax_rate_routes_are_for_admins(api):
    buyer = make_buyer()
    assert_error(api.get("/admin/tax-rates", buyer.token), 403)
    assert_error(api.put("/admin/tax-rates", buyer.token, json={}), 403)


def test_an_unknown_state_is_refused_and_a_state_name_is_understood(api):
    set_rate("US", "CA", 725)
    buyer, _ = _cart(api, (1000, TaxCategory.STANDARD))
    for state in ("XX", "Atlantis"):
        error = assert_error(_quote(api, buyer, {**US, "state": state}), 422, "validation_error")
        assert "shipping_address.state" in error["details"]["fields"]
        error = assert_error(_order(api, buyer, {**US, "state": state}), 422, "validation_error")
        assert "shipping_address.state" in error["details"]["fields"]
    db.session.rollback()
    assert db.session.scalars(select(Order)).all() == []
    for state in ("California", "ca", "US-CA"):
        quote = _quote(api, buyer, {**US, "state": state}).get_json()
        assert quote["tax_cents"] == 73 and quote["tax_rate_bps"] == 725
    # US without a state: no state rate (the seeded table has no country-wide US rate).
    assert _quote(api, buyer, {**US, "state": None}).get_json()["tax_cents"] == 0


def test_a_region_is_checked_once_the_country_has_a_regions_rate(api):
    set_rate("ES", None, 2100)
    buyer, _ = _cart(api, (1000, TaxCategory.STANDARD))
    spain = {**DE, "country": "ES", "state": "Nowhere"}
    assert _quote(api, buyer, spain).get_json()["tax_cents"] == 210  # no region rates: fine
    set_rate("ES", "CN", 700)  # the Canaries (IGIC)
    assert_error(_quote(api, buyer, spain), 422, "validation_error")
    assert _quote(api, buyer, {**spain, "state": "ES-CN"}).get_json()["tax_cents"] == 70


def test_shipping_is_taxed_where_the_state_says_so_and_the_quote_is_the_order(api):
    set_rate("US", "NY", 400, shipping_taxed=True)
    set_rate("US", "CA", 725)
    buyer, _ = _cart(api, (1999, TaxCategory.STANDARD), (1000, TaxCategory.EXEMPT), shipping=599)
    california = _quote(api, buyer, US).get_json()
    assert california["tax_cents"] == 145  # 7.25 % of 19.99; the exempt line and shipping: 0
    new_york = {**US, "state": "NY"}
    quote = _quote(api, buyer, new_york).get_json()
    (part,) = quote["vendor_orders"]
    assert part["shipping_tax_cents"] == 24  # 4 % of 5.99
    assert quote["tax_cents"] == 80 + 0 + 24
    placed = _order(api, buyer, new_york)
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    assert {k: order[k] for k in AMOUNTS} == {k: quote[k] for k in AMOUNTS}
    assert order["vendor_orders"][0]["shipping_tax_cents"] == 24
    assert [i["tax_cents"] for i in order["vendor_orders"][0]["items"]] == [80, 0]
    _adds_up(order)


def test_reduced_category_pays_the_reduced_rate(api):
    set_rate("DE", None, 1900, reduced_rate_bps=700, shipping_taxed=True)
    buyer, _ = _cart(api, (1000, TaxCategory.REDUCED), (1000, TaxCategory.STANDARD))
    quote = _quote(api, buyer, DE).get_json()
    items = quote["vendor_orders"][0]["items"]
    assert [i["tax_cents"] for i in items] == [70, 190]
    assert quote["vendor_orders"][0]["shipping_tax_cents"] == 95  # 19 % of 5.00
    assert quote["tax_rate_bps"] == 1900


def test_an_eu_business_with_a_valid_vat_number_is_reverse_charged(api):
    set_rate("DE", None, 1900, shipping_taxed=True)
    buyer, _ = _cart(api, (1000, TaxCategory.STANDARD))
    consumer = _quote(api, buyer, DE).get_json()
    assert consumer["tax_cents"] == 190 + 95 and consumer["reverse_charge"] is False
    business = _quote(api, buyer, DE, vat_number="de 136 695 976").get_json()
    assert business["tax_cents"] == 0 and business["reverse_charge"] is True
    assert business["vat_number"] == VALID_VAT
    placed = _order(api, buyer, DE, vat_number="de 136 695 976")
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    assert order["reverse_charge"] is True and order["vat_number"] == VALID_VAT
    assert order["tax_cents"] == 0 and order["total_cents"] == business["total_cents"]
    again = api.get(f"/orders/{order['id']}", buyer.token).get_json()
    assert again["reverse_charge"] is True and again["vat_number"] == VALID_VAT


@pytest.mark.parametrize(
    ("address", "vat_number"),
    [(DE, "DE123"), (DE, "XX136695976"), (US, VALID_VAT)],
)
def test_a_bad_vat_number_is_refused_and_changes_nothing(api, address, vat_number):
    set_rate("DE", None, 1900)
    buyer, _ = _cart(api, (1000, TaxCategory.STANDARD))
    error = assert_error(_quote(api, buyer, address, vat_number=vat_number), 422)
    assert "vat_number" in error["details"]["fields"]
    error = assert_error(_order(api, buyer, address, vat_number=vat_number), 422)
    assert "vat_number" in error["details"]["fields"]
    db.session.rollback()
    assert db.session.scalars(select(Order)).all() == []
    assert len(api.get("/cart", buyer.token).get_json()["items"]) == 1


class TestTaxInclusivePrices:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {"PRICES_INCLUDE_TAX": True}

    def test_the_total_is_the_shown_price_and_the_order_keeps_it_net(self, api):
        set_rate("DE", None, 1900, reduced_rate_bps=700, shipping_taxed=True)
        buyer, _ = _cart(api, (1190, TaxCategory.STANDARD), (1070, TaxCategory.REDUCED))
        quote = _quote(api, buyer, DE).get_json()
        assert quote["prices_include_tax"] is True
        # 11.90 holds 1.90 of 19 % VAT, 10.70 holds 0.70 of 7 %, 5.00 shipping holds 0.80.
        assert quote["total_cents"] == 1190 + 1070 + 500
        assert quote["tax_cents"] == 190 + 70 + 80
        assert quote["subtotal_cents"] == 1000 + 1000 and quote["shipping_cents"] == 420
        placed = _order(api, buyer, DE)
        assert placed.status_code == 201, placed.get_json()
        order = placed.get_json()["order"]
        assert order["prices_include_tax"] is True
        assert {k: order[k] for k in AMOUNTS} == {k: quote[k] for k in AMOUNTS}
        _adds_up(order)
        part = order["vendor_orders"][0]
        assert part["platform_fee_cents"] == 200  # 10 % of the items net of VAT
        assert part["platform_fee_cents"] + part["vendor_earnings_cents"] == (
            part["subtotal_cents"] + part["shipping_cents"] - part["discount_cents"]
        )

    def test_refunds_return_the_price_paid_tax_included_and_the_books_balance(self, api, webhooks):
        set_rate("DE", None, 1900, shipping_taxed=True)
        buyer = make_buyer()
        seller = onboarded_vendor(api, webhooks, "Inclusive")
        update_vendor_settings(seller.vendor.id, shipping_flat_cents=500)
        for unit in (1190, 2380):
            variant_id = make_product(seller, price_cents=unit, stock=5).variants[0].id
            api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
        body = _order(api, buyer, DE, key="incl").get_json()
        assert body["order"]["total_cents"] == 1190 + 2380 + 500
        assert pay(body)["status"] == "requires_capture"
        assert webhooks.flush_webhooks()
        (part,) = body["order"]["vendor_orders"]
        url = f"/vendor/orders/{part['id']}"
        ship = {"carrier": "UPS", "tracking_number": "1"}
        assert api.post(f"{url}/ship", seller.token, json=ship).status_code == 200
        first = part["items"][0]
        refund = api.post(
            f"{url}/refund",
            seller.token,
            json={"items": [{"order_item_id": first["id"], "quantity": 1}], "reason": "x"},
        )
        assert refund.status_code == 201, refund.get_json()
        assert refund.get_json()["amount_cents"] == 1190  # what the buyer paid for it
        rest = api.post(f"{url}/refund", seller.token, json={"reason": "all"}).get_json()
        assert rest["amount_cents"] == 2380 + 500
        webhooks.flush_webhooks()
        db.session.rollback()
        report = reconciliation.reconcile()
        assert report["ok"], report["mismatches"]
        assert (
            report["tax"]["payable_cents"] == 0
            and report["tax"]["collected_cents"] == 190 + 380 + 80
        )


def test_vendors_set_a_products_tax_category(api):
    vendor = make_vendor()
    created = api.post(
        "/vendor/products",
        vendor.token,
        json={
            "title": "Book",
            "status": "active",
            "tax_category": "reduced",
            "variants": [{"sku": "B-1", "price_cents": 1500, "stock": 3}],
        },
    )
    assert created.status_code == 201, created.get_json()
    product = created.get_json()
    assert product["tax_category"] == "reduced"
    patched = api.patch(
        f"/vendor/products/{product['id']}", vendor.token, json={"tax_category": "exempt"}
    )
    assert patched.get_json()["tax_category"] == "exempt"
    error = assert_error(
        api.patch(f"/vendor/products/{product['id']}", vendor.token, json={"tax_category": "x"}),
        422,
    )
    assert "tax_category" in error["details"]["fields"]


def test_tax_is_booked_and_reconciled_after_payment_and_refunds(api, webhooks):
    set_rate("US", "NY", 800, shipping_taxed=True)
    buyer = make_buyer()
    seller = onboarded_vendor(api, webhooks, "Seller")
    update_vendor_settings(seller.vendor.id, shipping_flat_cents=500)
    for price in (2000, 1000):
        variant_id = make_product(seller, price_cents=price, stock=5).variants[0].id
        api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    body = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": {**US, "state": "NY"}},
        headers={"Idempotency-Key": "tax-books"},
    ).get_json()
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    order = api.get(f"/orders/{body['order']['id']}", buyer.token).get_json()
    (part,) = order["vendor_orders"]
    assert part["tax_cents"] == 160 + 80 + 40 and part["shipping_tax_cents"] == 40
    url = f"/vendor/orders/{part['id']}"
    shipped = api.post(f"{url}/ship", seller.token, json={"carrier": "UPS", "tracking_number": "1"})
    assert shipped.status_code == 200, shipped.get_json()
    db.session.rollback()
    assert ledger.balance(ledger.TAX, vendor_order_id=part["id"]) == -280
    report = reconciliation.reconcile()
    assert report["tax"]["collected_cents"] == 280 and report["tax"]["booked_cents"] == 280
    assert report["ok"], report["mismatches"]

    first = part["items"][0]
    refund = api.post(
        f"{url}/refund",
        seller.token,
        json={
            "items": [{"order_item_id": first["id"], "quantity": 1}],
            "include_shipping": True,
            "reason": "damaged",
        },
    )
    assert refund.status_code == 201, refund.get_json()
    assert refund.get_json()["amount_cents"] == 2000 + 160 + 500 + 40  # shipping and its tax
    rest = api.post(f"{url}/refund", seller.token, json={"reason": "all of it"})
    assert rest.status_code == 201, rest.get_json()
    assert rest.get_json()["amount_cents"] == 1000 + 80
    webhooks.flush_webhooks()
    db.session.rollback()
    assert ledger.balance(ledger.TAX, vendor_order_id=part["id"]) == 0
    report = reconciliation.reconcile()
    assert report["tax"] == {
        "collected_cents": 280,
        "refunded_cents": 280,
        "payable_cents": 0,
        "booked_cents": 0,
        "reverse_charged_orders": 0,
        "ok": True,
    }
    assert report["ok"], report["mismatches"]

    # A tax leg that does not match the record is a mismatch of its own.
    vendor_order = db.session.get(VendorOrder, part["id"])
    ledger.post(
        "tamper",
        "capture",
        [ledger.Leg(ledger.TAX, -1), ledger.Leg(ledger.CASH, 1)],
        currency="usd",
        vendor_order_id=vendor_order.id,
        order_id=vendor_order.order_id,
    )
    kinds = {m["kind"] for m in reconciliation.reconcile()["mismatches"]}
    assert "tax_booked" in kinds
    db.session.rollback()


def test_checkout_helper_still_works_with_the_seeded_shape(api, webhooks):
    """The plain US/CA flow keeps its numbers (no shipping tax unless the state says so)."""
    set_rate("US", "CA", 800)
    buyer = make_buyer()
    seller = onboarded_vendor(api, webhooks, "Plain")
    update_vendor_settings(seller.vendor.id, shipping_flat_cents=500)
    variant_id = make_product(seller, price_cents=2000, stock=5).variants[0].id
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    order = checkout(api, buyer)["order"]
    assert order["tax_cents"] == 160 and order["vendor_orders"][0]["shipping_tax_cents"] == 0


def _receipt(app: Any, order_id: int, buyer_id: int) -> str:
    path = Path(app.config["MAIL_DIR"]) / f"order_paid_{order_id}_user_{buyer_id}.eml"
    assert path.exists(), "no receipt email"
    message = email.message_from_bytes(path.read_bytes())
    return next(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )


def test_the_reverse_charge_is_on_the_receipt_email(api, webhooks, app):
    set_rate("DE", None, 1900, shipping_taxed=True)
    buyer = make_buyer()
    seller = onboarded_vendor(api, webhooks, "EU")
    variant_id = make_product(seller, price_cents=1000, stock=5).variants[0].id
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    body = _order(api, buyer, DE, key="rc", vat_number=VALID_VAT).get_json()
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    text = _receipt(app, body["order"]["id"], buyer.user.id)
    assert "VAT reverse charged" in text and VALID_VAT in text


def test_the_checkout_page_takes_a_vat_number_and_the_order_page_shows_it(client):
    set_rate("DE", None, 1900)
    buyer = make_buyer()
    login(client, buyer.user.email)
    product = make_product(make_vendor("EU shop"), price_cents=1000, stock=5)
    assert submit(client, client.get(f"/products/{product.id}"), "/cart/add").status_code == 302
    address = {k: v or "" for k, v in DE.items()}
    bad = submit(
        client, client.get("/checkout"), "/checkout", step="quote", vat_number="DE1", **address
    )
    assert bad.status_code == 422 and "not a valid EU VAT number" in bad.get_data(as_text=True)
    quoted = submit(
        client, client.get("/checkout"), "/checkout", step="quote", vat_number=VALID_VAT, **address
    )
    assert quoted.status_code == 200
    assert "VAT reverse charged" in quoted.get_data(as_text=True)
    placed = submit(client, quoted, "/checkout", step="place")
    assert placed.status_code in (302, 303), placed.get_data(as_text=True)
    db.session.rollback()
    order = db.session.scalars(select(Order)).one()
    assert order.reverse_charge and order.vat_number == VALID_VAT and order.tax_cents == 0
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "VAT reverse charged" in page and VALID_VAT in page


def test_the_checkout_page_refuses_an_unknown_state_on_its_field(client):
    set_rate("US", "CA", 725)
    buyer = make_buyer()
    login(client, buyer.user.email)
    product = make_product(make_vendor("US shop"), price_cents=1000, stock=5)
    submit(client, client.get(f"/products/{product.id}"), "/cart/add")
    refused = submit(
        client, client.get("/checkout"), "/checkout", step="quote", **{**US, "state": "Narnia"}
    )
    assert refused.status_code == 422
    assert "is not a state or region of US" in refused.get_data(as_text=True)
