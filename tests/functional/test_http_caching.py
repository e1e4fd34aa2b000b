"""Revalidation of product and search answers: 200 with an ETag, 304 while nothing shown changed,
200 with a new ETag once the product, its stock or the search hits change."""

from __future__ import annotations

import shutil

import pytest

from marketplace.catalog import services as catalog
from marketplace.http_cache import conditional_page
from marketplace.search import index as storage
from tests.helpers import login, make_buyer, make_product, make_vendor

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


@pytest.fixture(autouse=True)
def clean_index(app):
    base = storage.base_dir(app)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    yield
    storage.close_searcher(app)
    shutil.rmtree(base, ignore_errors=True)


def _fresh(client, path: str, **kwargs):
    response = client.get(path, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["ETag"]
    assert "no-cache" in response.headers["Cache-Control"]
    return response


def _revalidate(client, path: str, etag: str, **kwargs):
    return client.get(path, headers={"If-None-Match": etag}, **kwargs)


def test_product_json_answers_304_until_stock_changes(api):
    vendor = make_vendor()
    product = make_product(vendor, title="Kettle", stock=5)
    path = f"/products/{product.id}"
    first = _fresh(api, path)
    etag = first.headers["ETag"]
    assert first.get_json()["variants"][0]["available"] == 5

    again = _revalidate(api, path, etag)
    assert again.status_code == 304
    assert again.get_data() == b"" and again.headers["ETag"] == etag
    # Another validator, or none, gets the whole answer.
    assert _revalidate(api, path, '"something-else"').status_code == 200
    assert api.get(path).get_json() == first.get_json()

    # A checkout reserves stock without touching the product row: the ETag still changes.
    buyer = make_buyer()
    cart = api.post(
        "/cart/items", buyer.token, json={"variant_id": product.variants[0].id, "quantity": 2}
    )
    assert cart.status_code == 201, cart.get_data(as_text=True)
    placed = api.post(
        "/checkout",
        buyer.token,
        json={"shipping_address": ADDRESS},
        headers={"Idempotency-Key": "etag-1"},
    )
    assert placed.status_code == 201, placed.get_data(as_text=True)
    changed = _revalidate(api, path, etag)
    assert changed.status_code == 200
    assert changed.get_json()["variants"][0]["available"] == 3
    assert changed.headers["ETag"] != etag
    assert _revalidate(api, path, changed.headers["ETag"]).status_code == 304


def test_product_json_etag_follows_edits_and_ignores_if_modified_since(api):
    vendor = make_vendor()
    product = make_product(vendor, title="Lamp", price_cents=5000)
    path = f"/products/{product.id}"
    etag = _fresh(api, path).headers["ETag"]
    # No Last-Modified is sent, so a date alone never yields a 304 (it could hide a stock change).
    dated = api.get(path, headers={"If-Modified-Since": "Wed, 01 Jan 2099 00:00:00 GMT"})
    assert dated.status_code == 200 and "Last-Modified" not in dated.headers

    catalog.update_variant(vendor.vendor.id, product.variants[0].id, price_cents=4500)
    repriced = _revalidate(api, path, etag)
    assert repriced.status_code == 200
    assert repriced.get_json()["variants"][0]["price_cents"] == 4500
    assert repriced.headers["ETag"] != etag

    catalog.update_product(vendor.vendor.id, product.id, title="Desk lamp")
    retitled = _revalidate(api, path, repriced.headers["ETag"])
    assert retitled.status_code == 200 and retitled.get_json()["title"] == "Desk lamp"


def test_errors_carry_no_etag(api):
    missing = api.get("/products/999999", headers={"If-None-Match": "*"})
    assert missing.status_code == 404 and "ETag" not in missing.headers
    bad = api.get("/products", query_string={"sort": "nope"})
    assert bad.status_code == 422 and "ETag" not in bad.headers


def test_search_answers_304_until_the_hits_change(api):
    vendor = make_vendor()
    make_product(vendor, title="Copper kettle", stock=1)
    query = {"q": "kettle"}
    first = _fresh(api, "/products", query_string=query)
    etag = first.headers["ETag"]
    assert [i["title"] for i in first.get_json()["items"]] == ["Copper kettle"]
    assert _revalidate(api, "/products", etag, query_string=query).status_code == 304
    # Another query is another answer.
    other = api.get("/products", query_string={"q": "kettle", "sort": "price_asc"})
    assert other.status_code == 200

    make_product(vendor, title="Steel kettle")
    changed = _revalidate(api, "/products", etag, query_string=query)
    assert changed.status_code == 200
    assert sorted(i["title"] for i in changed.get_json()["items"]) == [
        "Copper kettle",
        "Steel kettle",
    ]
    assert changed.headers["ETag"] != etag


def test_product_page_answers_304_until_stock_changes(client):
    vendor = make_vendor()
    product = make_product(vendor, title="Trail Shoe", stock=3)
    path = f"/products/{product.id}"
    first = _fresh(client, path)
    assert "private" in first.headers["Cache-Control"]
    etag = first.headers["ETag"]
    assert "3 in stock" in first.get_data(as_text=True)
    assert _revalidate(client, path, etag).status_code == 304

    catalog.update_variant(vendor.vendor.id, product.variants[0].id, stock=7)
    changed = _revalidate(client, path, etag)
    assert changed.status_code == 200 and "7 in stock" in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag


def test_product_page_of_another_user_does_not_match(client):
    product = make_product(make_vendor(), title="Trail Shoe")
    path = f"/products/{product.id}"
    anonymous = _fresh(client, path).headers["ETag"]
    buyer = make_buyer()
    assert login(client, buyer.user.email).status_code == 302
    signed_in = _revalidate(client, path, anonymous)
    assert signed_in.status_code == 200
    assert buyer.user.name in signed_in.get_data(as_text=True)


def test_search_page_answers_304_until_the_hits_change(client):
    vendor = make_vendor()
    make_product(vendor, title="Copper kettle")
    query = {"q": "kettle"}
    first = _fresh(client, "/products", query_string=query)
    assert "Copper kettle" in first.get_data(as_text=True)
    etag = first.headers["ETag"]
    assert _revalidate(client, "/products", etag, query_string=query).status_code == 304
    make_product(vendor, title="Steel kettle")
    changed = _revalidate(client, "/products", etag, query_string=query)
    assert changed.status_code == 200 and "Steel kettle" in changed.get_data(as_text=True)


def test_page_etag_ignores_csrf_token_values_but_not_content(app):
    page = '<form><input id="csrf_token" name="csrf_token" type="hidden" value="{}">{}</form>'
    with app.test_request_context("/products/1"):
        one = conditional_page(page.format("token-one", "3 in stock")).headers["ETag"]
        two = conditional_page(page.format("token-two", "3 in stock")).headers["ETag"]
        other = conditional_page(page.format("token-one", "2 in stock")).headers["ETag"]
    assert one == two != other
    with app.test_request_context("/products/1", headers={"If-None-Match": one}):
        assert conditional_page(page.format("token-three", "3 in stock")).status_code == 304
        assert conditional_page(page.format("token-three", "2 in stock")).status_code == 200
