"""Admin money pages: reconciliation (and the payouts CSV) show what the API reports;
commission forms change the rules like the API, and bad input changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace.catalog.models import Category, Vendor
from marketplace.db import db
from marketplace.orders import commission
from marketplace.orders.models import PlatformSettings
from tests.functional.money import (
    checkout,
    emulator_post,
    emulator_state,
    objects,
    onboarded_vendor,
    pay,
)
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
    with page_app() as web_app:
        yield web_app.test_client()


@pytest.fixture
def admin(api, web):
    """An admin, logged in on `web`."""
    account = make_admin()
    assert login(web, account.user.email).status_code == 302
    return account


def _commission(web: Any, action: str, **fields: str) -> Any:
    """Open the commission page and submit its `action` form with these fields."""
    page = web.get("/admin/commission")
    return submit(web, page, "/admin/commission", pick={"action": action}, **fields)


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def _cents(page: str, field: str) -> int:
    match = re.search(rf'data-field="{field}" data-cents="(-?\d+)"', page)
    assert match, f"no {field} on the page"
    return int(match.group(1))


def _rules() -> tuple[Any, ...]:
    """Every commission rule, fresh from the database."""
    db.session.rollback()
    settings = db.session.get(PlatformSettings, 1)
    return (
        settings.default_commission_bps if settings else None,
        tuple(db.session.query(Vendor.id, Vendor.commission_bps).order_by(Vendor.id).all()),
        tuple(db.session.query(Category.path, Category.commission_bps).order_by(Category.id)),
    )


# --- reconciliation --------------------------------------------------------------------------


def test_reconciliation_and_csv_render_when_there_is_nothing(admin, web):
    page = web.get("/admin/reconciliation")
    assert page.status_code == 200
    text = _text(page)
    assert 'data-ok="true"' in text and "Everything matches." in text
    for key in ("charged_cents", "refunded_cents", "transferred_cents", "reversed_cents"):
        assert _cents(text, key) == 0
    assert 'href="/admin/payouts.csv"' in text and 'href="/admin/commission"' in text
    csv = web.get("/admin/payouts.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert "attachment" in csv.headers["Content-Disposition"]
    assert _text(csv).strip() == (
        "type,id,stripe_id,vendor_id,vendor_order_id,order_id,amount_cents,currency,created_at"
    )


def test_reconciliation_shows_the_api_totals_and_every_mismatch(api, webhooks, admin, web):
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=2000, stock=5)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    body = checkout(api, buyer)
    pay(body)
    assert webhooks.flush_webhooks()
    vo_id = body["order"]["vendor_orders"][0]["id"]
    token = vendor.token
    ship = {"carrier": "UPS", "tracking_number": "1Z"}
    assert api.post(f"/vendor/orders/{vo_id}/ship", token, json=ship).status_code == 200
    assert api.post(f"/vendor/orders/{vo_id}/deliver", token, json={}).status_code == 200

    wanted = api.get("/admin/reconciliation", admin.token).get_json()
    assert wanted["ok"] is True
    text = _text(web.get("/admin/reconciliation"))
    assert 'data-ok="true"' in text
    for key, value in wanted["totals"].items():
        assert _cents(text, key) == value, key
    assert wanted["totals"]["transferred_cents"] == 1800
    csv = _text(web.get("/admin/payouts.csv"))
    assert csv == _text(api.get("/admin/payouts.csv", admin.token))
    assert len(csv.strip().splitlines()) == 2

    # a date range: today has it all, tomorrow nothing; `to` is inclusive
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    text = _text(web.get(f"/admin/reconciliation?from={today}&to={today}"))
    assert _cents(text, "charged_cents") == wanted["totals"]["charged_cents"]
    text = _text(web.get(f"/admin/reconciliation?from={tomorrow}"))
    assert _cents(text, "charged_cents") == 0 and _cents(text, "transferred_cents") == 0
    bad = web.get("/admin/reconciliation?from=yesterday")
    assert bad.status_code == 422 and "Not a valid date value" in _text(bad)
    backwards = web.get(f"/admin/reconciliation?from={tomorrow}&to={today}")
    assert backwards.status_code == 422 and "before the start date" in _text(backwards)

    # tamper with the transfer at Stripe: the page lists the API's mismatch, field by field
    (transfer,) = objects(emulator_state(webhooks), "transfers")
    emulator_post(webhooks, f"/_emulator/objects/{transfer['id']}", {"amount": 1234})
    wanted = api.get("/admin/reconciliation", admin.token).get_json()
    (mismatch,) = wanted["mismatches"]
    text = _text(web.get("/admin/reconciliation"))
    assert 'data-ok="false"' in text and "1 mismatch found." in text
    row = re.search(r'<tr data-kind="transfer_amount">(.*?)</tr>', text, re.S)
    assert row, text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells == [
        "transfer_amount",
        mismatch["object_id"],
        "$18.00",
        "$12.34",
        mismatch["detail"],
    ]
    assert mismatch["expected_cents"] == 1800 and mismatch["actual_cents"] == 1234


# --- commission ------------------------------------------------------------------------------


def test_commission_page_renders_with_the_current_rules(admin, web):
    vendor = make_vendor("Overridden")
    commission.set_vendor_bps(vendor.vendor.id, 750)
    make_product(vendor, category="Home/Kitchen")
    commission.set_category_bps("Home/Kitchen", 300)
    page = web.get("/admin/commission")
    assert page.status_code == 200
    text = _text(page)
    assert 'data-default-bps="1000"' in text
    assert f'<tr data-vendor="{vendor.vendor.id}"><td>Overridden' in text and "750 bps" in text
    assert '<tr data-category="Home/Kitchen">' in text and "300 bps" in text
    assert '<option value="Home/Kitchen">' in text  # the category datalist
    assert vendor.user.email in text  # the vendor select


def test_default_commission_form(api, admin, web):
    done = _commission(web, "default", default_bps="1250")
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/commission")
    assert api.get("/admin/commission", admin.token).get_json() == {"default_bps": 1250}
    assert "Default commission is now 1250 bps." in _text(web.get("/admin/commission"))
    before = _rules()
    for value, status, message in (
        ("10001", 422, "must be between 0 and 10000"),
        ("-1", 422, "must be between 0 and 10000"),
        ("ten", 422, "Not a valid integer value"),
        ("12.5", 422, "Not a valid integer value"),
        ("", 422, "This field is required"),
    ):
        response = _commission(web, "default", default_bps=value)
        assert response.status_code == status, value
        assert message in _text(response), value
        assert f'value="{value}"' in _text(response) or value == ""  # what was typed stays
        assert _rules() == before
    # Tampered posts: no action, an action no form has.
    assert web.post_raw("/admin/commission", data={"default_bps": "5"}).status_code == 400
    tampered = {"action": "x", "default_bps": "5"}
    assert web.post_raw("/admin/commission", data=tampered).status_code == 400
    assert _rules() == before
    assert _commission(web, "default", default_bps="0").status_code == 303
    assert _rules()[0] == 0


def test_vendor_commission_form_sets_and_clears(api, admin, web):
    vendor = make_vendor("Shop")
    vendor_id = vendor.vendor.id
    data = {"vendor_id": str(vendor_id)}
    assert _commission(web, "vendor", **data, vendor_bps="500").status_code == 303
    assert api.get("/vendor", vendor.token).get_json()["commission_bps"] == 500
    before = _rules()
    for value, message in (
        ("10001", "must be between 0 and 10000"),
        ("text", "Not a valid integer value"),
    ):
        response = _commission(web, "vendor", **data, vendor_bps=value)
        assert response.status_code == 422 and message in _text(response), value
        assert _rules() == before
    unknown = web.post_raw(  # a vendor the select does not offer
        "/admin/commission", data={"action": "vendor", "vendor_id": "999999", "vendor_bps": "1"}
    )
    assert unknown.status_code == 422 and "Not a valid choice" in _text(unknown)
    assert _rules() == before
    cleared = _commission(web, "vendor", **data, vendor_bps="")
    assert cleared.status_code == 303
    assert api.get("/vendor", vendor.token).get_json()["commission_bps"] is None


def test_category_commission_form_sets_and_clears(admin, web):
    vendor = make_vendor()
    make_product(vendor, category="Clothing/Tops")
    data = {"category": "clothing / tops"}
    assert _commission(web, "category", **data, category_bps="250").status_code == 303
    db.session.rollback()
    tops = db.session.query(Category).filter_by(path="Clothing/Tops").one()
    assert tops.commission_bps == 250
    before = _rules()
    for extra, status, message in (
        ({"category_bps": "10001"}, 422, "must be between 0 and 10000"),
        ({"category_bps": "abc"}, 422, "Not a valid integer value"),
        ({"category": "", "category_bps": "5"}, 422, "This field is required"),
        ({"category": "No/Such", "category_bps": "5"}, 404, "Category not found"),
    ):
        response = _commission(web, "category", **{**data, **extra})
        assert response.status_code == status, extra
        assert message in _text(response), extra
        assert _rules() == before
    assert _commission(web, "category", **data, category_bps="").status_code == 303
    db.session.rollback()
    assert db.session.query(Category).filter_by(path="Clothing/Tops").one().commission_bps is None


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["vendor", "buyer"])
def test_non_admins_get_403_and_change_nothing(app, web, role):
    account = make_vendor() if role == "vendor" else make_buyer()
    assert login(web, account.user.email).status_code == 302
    before = _rules()
    for path in ("/admin/reconciliation", "/admin/payouts.csv", "/admin/commission"):
        assert web.get(path).status_code == 403, path
    # Deliberate: no page offers these roles the form.
    posted = web.post_raw("/admin/commission", data={"action": "default", "default_bps": "1"})
    assert posted.status_code == 403
    assert _rules() == before


def test_anonymous_is_sent_to_login(app, web):
    for path in ("/admin/reconciliation", "/admin/payouts.csv", "/admin/commission"):
        response = web.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    assert web.post_raw("/admin/commission", data={"default_bps": "1"}).status_code == 302


def test_commission_forms_need_their_csrf_token(app):
    account = make_admin()
    with page_app(WTF_CSRF_ENABLED=True) as web_app:
        browser = web_app.test_client()
        assert login(browser, account.user.email).status_code == 302
        before = _rules()
        data = {"default_bps": "900"}
        refused = browser.post_raw(
            "/admin/commission", data={"action": "default", **data}
        )  # no token
        assert refused.status_code == 400 and "CSRF token" in _text(refused)
        assert _rules() == before
        page = browser.get("/admin/commission")
        assert csrf_token_in(page)
        done = submit(browser, page, "/admin/commission", pick={"action": "default"}, **data)
        assert done.status_code == 303
        assert _rules()[0] == 900


def test_reconciliation_up_to_the_last_day_of_the_calendar(admin, web):
    response = web.get("/admin/reconciliation?from=2026-01-01&to=9999-12-31")
    assert response.status_code == 200
    assert "Stripe could not be reached" not in _text(response)


def test_reconciliation_page_shows_open_disputes(api, webhooks, admin, web):
    vendor = onboarded_vendor(api, webhooks)
    product = make_product(vendor, price_cents=2000, stock=5)
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": product.variants[0].id})
    body = checkout(api, buyer)
    pay(body)
    assert webhooks.flush_webhooks()
    vo_id = body["order"]["vendor_orders"][0]["id"]
    ship = {"carrier": "UPS", "tracking_number": "1Z"}
    assert api.post(f"/vendor/orders/{vo_id}/ship", vendor.token, json=ship).status_code == 200
    (charge,) = [c for c in objects(emulator_state(webhooks), "charges") if c["captured"]]
    dispute = emulator_post(webhooks, f"/_emulator/charges/{charge['id']}/dispute", {})
    assert webhooks.flush_webhooks()

    text = _text(web.get("/admin/reconciliation"))
    assert f'data-dispute="{dispute["id"]}"' in text
    assert 'data-ok="true"' in text  # on hold, not a mismatch


def test_dispute_recovery_form_sets_who_carries_a_dispute(api, admin, web):
    page = _text(web.get("/admin/commission"))
    assert 'data-dispute-recovery="platform_absorbs"' in page
    assert '<option selected value="platform_absorbs">' in page
    data = {"dispute_recovery": "reverse_vendor_share"}
    done = _commission(web, "dispute_recovery", **data)
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/commission")
    shown = api.get("/admin/dispute-recovery", admin.token).get_json()
    assert shown["dispute_recovery"] == "reverse_vendor_share"
    page = _text(web.get("/admin/commission"))
    assert "Disputes are now recovered from the vendors&#39; transfers." in page
    assert 'data-dispute-recovery="reverse_vendor_share"' in page
    before = _rules()
    bad = web.post_raw(  # a choice the select does not offer
        "/admin/commission", data={"action": "dispute_recovery", "dispute_recovery": "the vendor"}
    )
    assert bad.status_code == 422 and "Not a valid choice" in _text(bad)
    assert _rules() == before
    assert api.get("/admin/dispute-recovery", admin.token).get_json()["dispute_recovery"] == (
        "reverse_vendor_share"
    )
