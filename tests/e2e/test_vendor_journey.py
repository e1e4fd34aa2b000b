"""A vendor opens a paid order from the dashboard, ships it with tracking, then delivers it;
the other vendor cancels its part; the buyer sees both, the vendor's earnings are transferred
and the admin's reconciliation finds no mismatch."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from marketplace.db import db
from marketplace.orders.models import VendorOrder
from marketplace.payouts.models import Transfer
from tests.e2e.journeys import two_vendor_shop
from tests.functional.money import checkout, pay
from tests.helpers import PASSWORD, make_admin, make_buyer


def cents(locator) -> int:
    return int(locator.get_attribute("data-cents"))


def test_vendor_ships_and_delivers_through_the_forms(pages, login_page, api, webhooks):
    shop = two_vendor_shop(api, webhooks)
    buyer = make_buyer("Bea")
    api.post("/cart/items", buyer.token, json={"variant_id": shop.lantern.variants[0].id})
    api.post("/cart/items", buyer.token, json={"variant_id": shop.tea.variants[0].id})
    body = checkout(api, buyer)
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    order_id = body["order"]["id"]
    part = next(
        vo for vo in body["order"]["vendor_orders"] if vo["vendor_id"] == shop.lanterns.vendor.id
    )

    page = login_page(shop.lanterns.user.email)
    page.get_by_role("link", name="Orders", exact=True).first.click()
    page.get_by_role("link", name=f"#{order_id}-{part['id']}").click()
    status = page.locator("h1 [data-status]")
    expect(status).to_have_text("paid")
    pages.shot(page, "vendor-order-paid")

    page.get_by_label("Carrier").fill("UPS")
    page.get_by_label("Tracking number").fill("1Z999AA10123456784")
    page.get_by_role("button", name="Mark as shipped").click()
    expect(page.get_by_text("Marked as shipped.")).to_be_visible()
    expect(status).to_have_text("shipped")
    expect(page.locator("[data-tracking]")).to_have_text("1Z999AA10123456784")
    pages.shot(page, "vendor-order-shipped")

    page.get_by_role("button", name="Mark as delivered").click()
    expect(page.get_by_text("Marked as delivered.")).to_be_visible()
    expect(status).to_have_text("delivered")
    pages.shot(page, "vendor-order-delivered")
    assert webhooks.flush_webhooks()

    db.session.rollback()
    vendor_order = db.session.get(VendorOrder, part["id"])
    assert vendor_order.status.value == "delivered"
    transfer = db.session.query(Transfer).filter_by(vendor_order_id=part["id"]).one()
    assert transfer.amount_cents == vendor_order.vendor_earnings_cents

    # The other vendor cannot send its part and cancels it through its form.
    teas_part = next(vo for vo in body["order"]["vendor_orders"] if vo["id"] != part["id"])
    other = login_page(shop.teas.user.email)
    other.get_by_role("link", name="Orders", exact=True).first.click()
    other.get_by_role("link", name=f"#{order_id}-{teas_part['id']}").click()
    cancel = other.locator("form[action$='/cancel']")
    cancel.get_by_label("Reason").fill("Out of this harvest")
    cancel.get_by_role("button", name="Cancel this order").click()
    expect(other.locator("h1 [data-status]")).to_have_text("cancelled")
    pages.shot(other, "vendor-order-cancelled")
    assert webhooks.flush_webhooks()

    # The buyer follows both parts.
    mine = login_page(buyer.user.email)
    mine.get_by_role("link", name="Orders", exact=True).click()
    mine.get_by_role("link", name=f"#{order_id}").click()
    lantern_part = mine.locator("section.vendor-order", has_text="Lantern Works")
    expect(lantern_part.locator(".badge").first).to_have_text("delivered")
    expect(lantern_part.get_by_text(re.compile("1Z999AA10123456784"))).to_be_visible()
    tea_part = mine.locator("section.vendor-order", has_text="Tea Garden")
    expect(tea_part.locator(".badge").first).to_have_text("cancelled")
    expect(tea_part.get_by_text("Cancelled: Out of this harvest")).to_be_visible()
    pages.shot(mine, "buyer-order")

    # The admin's reconciliation finds the ledger and Stripe in agreement.
    admin = pages.new()
    admin.goto("/login")
    admin.get_by_label("Email").fill(make_admin().user.email)
    admin.get_by_label("Password").fill(PASSWORD)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_role("link", name="Reconciliation").click()
    expect(admin.locator("[data-ok]")).to_have_attribute("data-ok", "true")
    assert cents(admin.locator("[data-field=transferred_cents]")) == transfer.amount_cents
    pages.shot(admin, "admin-reconciliation")
