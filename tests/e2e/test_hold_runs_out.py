"""The stock hold runs out on the pay page: the countdown reaches zero, the page says so, and
once the expiry sweeper ran the stock is back on sale."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from marketplace.catalog.models import Variant
from marketplace.db import db
from marketplace.orders import services as orders
from tests.functional.money import checkout
from tests.helpers import make_buyer, make_product, make_vendor

HOLD_SECONDS = 15


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"WTF_CSRF_ENABLED": True, "RESERVATION_TTL_SECONDS": HOLD_SECONDS}


def test_the_countdown_reaches_zero_and_the_page_says_the_hold_ran_out(pages, login_page, api):
    product = make_product(make_vendor("Clocks"), title="Wall Clock", price_cents=4200, stock=1)
    variant_id = product.variants[0].id
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id})
    order_id = checkout(api, buyer)["order"]["id"]

    page = login_page(buyer.user.email)
    page.get_by_role("link", name="Orders", exact=True).click()
    page.get_by_role("link", name=f"#{order_id}").click()
    page.get_by_role("link", name="Pay now").click()
    hold = page.locator(".hold")
    expect(hold).to_contain_text(re.compile(r"held until \d\d:\d\d UTC"))
    # The page says "less than a minute left"; the script replaces it with a live count.
    expect(page.locator(".hold-left")).to_have_text(re.compile(r"^0:[01]\d left$"))
    first = page.locator(".hold-left").inner_text()
    page.wait_for_function(
        "text => document.querySelector('.hold-left').textContent !== text", arg=first
    )
    pages.shot(page, "pay-counting-down")

    expect(page.get_by_role("heading", name="The hold on your items ran out")).to_be_visible(
        timeout=(HOLD_SECONDS + 10) * 1000
    )
    expect(page.get_by_role("link", name="Enter card details")).to_have_count(0)
    pages.shot(page, "hold-ran-out")

    assert orders.expire_order(order_id)  # what the periodic sweeper does
    db.session.rollback()
    assert db.session.get(Variant, variant_id).reserved == 0
    page.get_by_role("link", name="Back to the shop").click()
    page.get_by_role("link", name="Wall Clock").click()
    expect(page.get_by_role("button", name="Add to cart")).to_be_enabled()
