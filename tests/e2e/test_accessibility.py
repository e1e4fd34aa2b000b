"""Accessibility and layout of the main pages, in Chromium: axe finds no serious or critical
violation on any of them, each fits a phone's width without scrolling sideways, and a buyer
can search, open a product, pick a variant and add it to the cart with the keyboard alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.e2e.journeys import Shop, two_vendor_shop
from tests.functional.money import checkout
from tests.helpers import Account, make_admin, make_buyer

PHONE = {"width": 390, "height": 844}
BLOCKING = {"serious", "critical"}


@dataclass
class Scene:
    shop: Shop
    buyer: Account
    admin: Account
    order_id: int


@pytest.fixture
def scene(api: Any, webhooks: Any) -> Scene:
    """A pending order (its pay and order pages) and a cart with a line in it."""
    shop = two_vendor_shop(api, webhooks)
    buyer = make_buyer("Ada")
    lantern = shop.lantern.variants[0].id
    added = api.post("/cart/items", buyer.token, json={"variant_id": lantern, "quantity": 1})
    assert added.status_code in (200, 201), added.get_json()
    order_id = checkout(api, buyer)["order"]["id"]
    tea = shop.tea.variants[0].id
    added = api.post("/cart/items", buyer.token, json={"variant_id": tea, "quantity": 2})
    assert added.status_code in (200, 201), added.get_json()
    return Scene(shop, buyer, make_admin(), order_id)


def _buyer_pages(scene: Scene) -> dict[str, str]:
    return {
        "home": "/",
        "search": "/products?q=lantern",
        "product": f"/products/{scene.shop.lantern.id}",
        "cart": "/cart",
        "checkout": "/checkout",
        "pay": f"/orders/{scene.order_id}/pay",
        "order": f"/orders/{scene.order_id}",
        "orders": "/orders",
    }


def _vendor_pages(scene: Scene) -> dict[str, str]:
    return {
        "vendor-dashboard": "/vendor/",
        "vendor-product-form": f"/vendor/products/{scene.shop.lantern.id}/edit",
        "vendor-new-product": "/vendor/products/new",
    }


def _admin_pages() -> dict[str, str]:
    return {"admin-orders": "/admin/orders", "admin-reconciliation": "/admin/reconciliation"}


def _every_page(pages: Any, scene: Scene, viewport: dict[str, int] | None = None):
    """(name, page at that path) for each main page, logged in as the one who sees it."""
    for email, paths in (
        (scene.buyer.user.email, _buyer_pages(scene)),
        (scene.shop.lanterns.user.email, _vendor_pages(scene)),
        (scene.admin.user.email, _admin_pages()),
    ):
        page = pages.logged_in(email)
        if viewport:
            page.set_viewport_size(viewport)
        for name, path in paths.items():
            response = page.goto(path)
            assert response is not None and response.ok, (name, path, response and response.status)
            yield name, page


def _described(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['impact']} {v['id']}: {v['help']} — "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in violations
    )


def test_no_serious_accessibility_violations_on_the_main_pages(pages, scene):
    axe = Axe()
    found = {}
    for name, page in _every_page(pages, scene):
        results = axe.run(page)
        blocking = [v for v in results.response["violations"] if v["impact"] in BLOCKING]
        if blocking:
            found[name] = _described(blocking)
        pages.shot(page, f"desktop-{name}")
    assert not found, "\n\n".join(f"{name}:\n{text}" for name, text in found.items())


def test_the_main_pages_fit_a_phone_without_sideways_scrolling(pages, scene):
    too_wide = {}
    for name, page in _every_page(pages, scene, viewport=PHONE):
        width = page.evaluate("document.scrollingElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[name] = width
        pages.shot(page, f"phone-{name}")
    assert not too_wide, too_wide


def _tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching `selector` has the keyboard focus."""
    target = page.locator(selector).first
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("node => node === document.activeElement"):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def _focus_is_visible(page: Any) -> bool:
    """The focused element draws an outline (or a box shadow) the eye can follow."""
    return page.evaluate(
        """() => {
            const style = getComputedStyle(document.activeElement);
            return (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
                || style.boxShadow !== 'none';
        }"""
    )


def test_a_buyer_shops_with_the_keyboard_alone(pages, api, webhooks):
    two_vendor_shop(api, webhooks)
    page = pages.new()
    page.goto("/")

    _tab_to(page, "input[type=search]")
    assert _focus_is_visible(page)
    page.keyboard.type("lantern")
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="Storm Lantern")).to_be_visible()

    _tab_to(page, "main a.title")
    assert _focus_is_visible(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Storm Lantern")).to_be_visible()

    # The variant picker: the sold-out option is skipped, the one on sale is picked.
    _tab_to(page, "input[name=variant_id]:not([disabled])")
    assert _focus_is_visible(page)
    page.keyboard.press("Space")
    expect(page.get_by_label(re.compile(r"size: S"))).to_be_checked()
    _tab_to(page, "input[name=quantity]")
    page.keyboard.press("Control+a")
    page.keyboard.type("2")
    _tab_to(page, "form button[type=submit]:has-text('Add to cart')")
    assert _focus_is_visible(page)
    pages.shot(page, "keyboard-focus-add")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Added to your cart.")).to_be_visible()
    page.goto("/cart")
    expect(page.locator("tr[data-variant] input[name=quantity]").first).to_have_value("2")
    pages.shot(page, "keyboard-cart")
