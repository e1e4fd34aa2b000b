"""Odd input answers 4xx in API.md's error shape and changes nothing (issue 13, bad input):
ids no row can have, NaN and Infinity, JSON nested 1,000 deep, NUL characters, and bodies
checked before the state of what they name."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from marketplace.accounts.models import User
from marketplace.cart.models import CartItem
from marketplace.catalog.models import Product
from marketplace.db import db
from marketplace.payouts.models import Refund
from tests.functional.money import checkout
from tests.helpers import (
    PASSWORD,
    assert_error,
    login,
    make_admin,
    make_buyer,
    make_product,
    make_vendor,
    page_app,
)

HUGE_IDS = [2**31, 2**32 + 1, 2**63, 2**80]


def _count(model: Any) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def _routes_with_ids(app: Flask) -> list[tuple[str, str]]:
    """(method, rule) of every route that takes an id in its path."""
    found = []
    for rule in app.url_map.iter_rules():
        if "<int:" not in rule.rule:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return found


def _fill(rule: str, id_value: int) -> str:
    url = re.sub(r"<int:\w+>", str(id_value), rule)
    return re.sub(r"<(?:\w+:)?\w+>", "x", url)


def test_every_route_answers_404_for_an_id_no_row_can_have(app: Flask, client: Any) -> None:
    admin = make_admin()
    routes = _routes_with_ids(app)
    assert len(routes) > 40  # every blueprint: buyers, vendors, admin, api
    for method, rule in routes:
        for id_value in [0, *HUGE_IDS]:
            url = _fill(rule, id_value)
            response = client.open(
                url, method=method, json={}, headers={"Authorization": f"Bearer {admin.token}"}
            )
            assert response.status_code == 404, (method, url, response.status_code)
            if url.startswith("/api/"):
                assert_error(response, 404, "not_found")


@pytest.mark.parametrize("variant_id", [0, -1, *HUGE_IDS])
def test_cart_variant_id_out_of_range_is_422_and_adds_nothing(api: Any, variant_id: int) -> None:
    buyer = make_buyer()
    response = api.post("/cart/items", buyer.token, json={"variant_id": variant_id})
    error = assert_error(response, 422, "validation_error")
    assert "variant_id" in error["details"]["fields"]
    assert _count(CartItem) == 0


@pytest.mark.parametrize("variant_id", [str(2**31), str(2**63), str(2**80)])
def test_cart_form_with_a_huge_variant_id_adds_nothing(app: Flask, variant_id: str) -> None:
    buyer = make_buyer()
    with page_app() as web:
        browser = web.test_client()
        assert login(browser, buyer.user.email).status_code == 302
        tampered = {"variant_id": variant_id, "quantity": "1"}  # no page offers such an id
        response = browser.post_raw("/cart/add", data=tampered)
        assert 300 <= response.status_code < 500
    assert _count(CartItem) == 0


def test_refund_item_id_out_of_range_is_422(api: Any) -> None:
    vendor = make_vendor()
    response = api.post(
        "/vendor/orders/1/refund",
        vendor.token,
        json={"items": [{"order_item_id": 2**63, "quantity": 1}], "reason": "x"},
    )
    error = assert_error(response, 422, "validation_error")
    assert "items[0].order_item_id" in error["details"]["fields"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_malformed_json(api: Any, constant: str) -> None:
    vendor = make_vendor()
    raw = (
        '{"title": "T", "status": "active", "variants": [{"sku": "S1", "price_cents": 100,'
        f' "stock": 1, "attributes": {{"weight": {constant}}}}}]}}'
    )
    response = api.post(
        "/vendor/products",
        vendor.token,
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "bad_request")
    assert _count(Product) == 0


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deeply_nested_json_is_400(api: Any, depth: int) -> None:
    buyer = make_buyer()
    raw = '{"variant_id": 1, "quantity": ' + "[" * depth + "]" * depth + "}"
    response = api.post(
        "/cart/items", buyer.token, data=raw, headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, 400, "bad_request")
    assert "nested" in error["message"]
    assert _count(CartItem) == 0


def test_json_nested_within_the_limit_still_parses(api: Any) -> None:
    vendor = make_vendor()
    response = api.post(
        "/vendor/products",
        vendor.token,
        json={
            "title": "T",
            "status": "active",
            "variants": [{"sku": "S1", "price_cents": 100, "stock": 1, "attributes": {}}],
        },
    )
    assert response.status_code == 201, response.get_json()


def test_every_html_form_refuses_nul_characters(app: Flask, client: Any) -> None:
    posts = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or set()) and not rule.rule.startswith(("/api/", "/webhooks/"))
    ]
    assert len(posts) > 20
    for rule in posts:
        url = _fill(rule, 1)
        response = client.post(url, data={"name": "a\x00b", "csrf_token": "x"})
        assert response.status_code == 422, (url, response.status_code)


def test_login_and_register_forms_with_nul_change_nothing(client: Any) -> None:
    buyer = make_buyer()
    users = _count(User)
    response = client.post("/login", data={"email": buyer.user.email, "password": "x\x00y"})
    assert response.status_code == 422
    response = client.post(
        "/register",
        data={"email": "new\x00@example.com", "password": PASSWORD, "name": "N", "role": "buyer"},
    )
    assert response.status_code == 422
    assert _count(User) == users


def test_nul_in_a_header_or_path_is_422(api: Any) -> None:
    buyer, admin = make_buyer(), make_admin()
    response = api.put("/admin/categories/Ge%00ar/commission", admin.token, json={"bps": 5})
    assert_error(response, 422, "validation_error")
    make_product(make_vendor())
    response = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": {}},
        headers={"Idempotency-Key": "key\x00one"},
    )
    assert_error(response, 422, "validation_error")


def test_nul_in_a_query_string_is_dropped(api: Any) -> None:
    """Searches and filters change nothing: the NUL is ignored, never sent to the database."""
    vendor = make_vendor()
    make_product(vendor, title="Trail shoe")
    assert api.get("/products?q=a%00b").status_code == 200
    listed = api.get("/vendor/orders?status=pa%00id", vendor.token)
    assert listed.status_code == 200 and listed.get_json()["total"] == 0
    with page_app() as web:
        browser = web.test_client()
        assert login(browser, vendor.user.email).status_code == 302
        assert browser.get("/vendor/orders?q=%00abc%00").status_code == 200


def test_nul_in_a_json_string_is_422(api: Any) -> None:
    vendor = make_vendor()
    response = api.post(
        "/vendor/products",
        vendor.token,
        json={
            "title": "T\x00",
            "status": "active",
            "variants": [{"sku": "S1", "price_cents": 100, "stock": 1}],
        },
    )
    assert_error(response, 422, "validation_error")
    assert _count(Product) == 0


@pytest.mark.parametrize("amount", [-5, 0, 10**12])
def test_refund_amount_out_of_range_on_an_uncaptured_order_is_422_not_409(
    api: Any, amount: int
) -> None:
    vendor, buyer = make_vendor(), make_buyer()
    variant = make_product(vendor).variants[0]
    api.post("/cart/items", buyer.token, json={"variant_id": variant.id, "quantity": 1})
    order = checkout(api, buyer)["order"]
    vendor_order_id = order["vendor_orders"][0]["id"]
    response = api.post(
        f"/vendor/orders/{vendor_order_id}/refund",
        vendor.token,
        json={"amount_cents": amount, "reason": "x"},
    )
    error = assert_error(response, 422, "validation_error")
    assert "amount_cents" in error["details"]["fields"]
    preview = api.get(
        f"/vendor/orders/{vendor_order_id}/refund-preview?amount_cents={max(amount, 0)}",
        vendor.token,
    )
    assert preview.status_code == 422
    assert _count(Refund) == 0
    # The same body with a sensible amount meets the state check: nothing was captured.
    response = api.post(
        f"/vendor/orders/{vendor_order_id}/refund",
        vendor.token,
        json={"amount_cents": 100, "reason": "x"},
    )
    assert_error(response, 409)
