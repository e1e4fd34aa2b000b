"""The vendor's profile and catalog through the API: exact shapes, every kind of bad input
(each leaving the database as it was), stock against reservations, and isolation between
vendors."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from marketplace.catalog import services as catalog_services
from marketplace.catalog.models import Brand, Category, Product, ProductStatus, Variant, Vendor
from marketplace.db import db
from tests.helpers import assert_error, make_buyer, make_product, make_vendor

PRODUCT_FIELDS = {
    "id",
    "vendor_id",
    "title",
    "description",
    "brand",
    "category",
    "status",
    "rating",
    "rating_count",
    "variants",
}
VARIANT_FIELDS = {"id", "sku", "price_cents", "available", "attributes"}
VENDOR_FIELDS = {
    "id",
    "display_name",
    "status",
    "stripe_account_id",
    "payouts_enabled",
    "commission_bps",
}


def _new_product(**overrides):
    return {
        "title": "Trail Runner",
        "description": "Light and fast.",
        "brand": "Acme",
        "category": "Shoes/Running",
        "status": "active",
        "variants": [
            {"sku": "TR-42", "price_cents": 8999, "stock": 5, "attributes": {"size": "42"}},
            {"sku": "TR-43", "price_cents": 9499, "stock": 0, "attributes": {"size": "43"}},
        ],
        **overrides,
    }


def _snapshot():
    """Everything a vendor route could change."""
    products = db.session.execute(
        select(
            Product.id,
            Product.title,
            Product.description,
            Product.brand_id,
            Product.category_id,
            Product.status,
        ).order_by(Product.id)
    ).all()
    variants = db.session.execute(
        select(
            Variant.id, Variant.sku, Variant.price_cents, Variant.on_hand, Variant.reserved
        ).order_by(Variant.id)
    ).all()
    vendors = db.session.execute(
        select(Vendor.id, Vendor.display_name, Vendor.shipping_flat_cents).order_by(Vendor.id)
    ).all()
    counts = tuple(
        db.session.scalar(select(func.count()).select_from(model)) for model in (Brand, Category)
    )
    db.session.rollback()
    return products, variants, vendors, counts


@pytest.fixture
def vendor():
    return make_vendor("Shop")


# --- happy paths ---------------------------------------------------------------------------


def test_get_vendor_profile(api, vendor):
    response = api.get("/vendor", vendor.token)
    assert response.status_code == 200
    data = response.get_json()
    assert set(data) >= VENDOR_FIELDS
    assert data["id"] == vendor.vendor.id
    assert data["status"] == "approved"
    assert data["payouts_enabled"] is True
    assert data["commission_bps"] is None


def test_patch_vendor_settings(api, vendor):
    response = api.patch(
        "/vendor",
        vendor.token,
        json={"display_name": "  The Shop ", "shipping_flat_cents": 499},
    )
    assert response.status_code == 200
    data = response.get_json()
    assert data["display_name"] == "The Shop"
    assert data["shipping_flat_cents"] == 499
    assert set(data) >= VENDOR_FIELDS
    cleared = api.patch(
        "/vendor", vendor.token, json={"free_shipping_threshold_cents": 5000}
    ).get_json()
    assert cleared["free_shipping_threshold_cents"] == 5000
    cleared = api.patch("/vendor", vendor.token, json={"free_shipping_threshold_cents": None})
    assert cleared.get_json()["free_shipping_threshold_cents"] is None


def test_patch_vendor_rejects_bad_input(api, vendor):
    before = _snapshot()
    assert_error(api.patch("/vendor", vendor.token, json={"display_name": ""}), 422)
    assert_error(api.patch("/vendor", vendor.token, json={"display_name": 5}), 400)
    assert_error(api.patch("/vendor", vendor.token, json={"shipping_flat_cents": -1}), 422)
    assert_error(api.patch("/vendor", vendor.token, json={"shipping_flat_cents": "1"}), 400)
    assert_error(api.patch("/vendor", vendor.token, json={"display_name": None}), 422)
    assert_error(api.patch("/vendor", vendor.token, json={"shipping_flat_cents": None}), 422)
    assert _snapshot() == before


def test_create_product(api, vendor):
    response = api.post("/vendor/products", vendor.token, json=_new_product())
    assert response.status_code == 201, response.get_data(as_text=True)
    product = response.get_json()
    assert set(product) >= PRODUCT_FIELDS
    assert product["vendor_id"] == vendor.vendor.id
    assert product["title"] == "Trail Runner"
    assert product["description"] == "Light and fast."
    assert product["brand"] == "Acme"
    assert product["category"] == "Shoes/Running"
    assert product["status"] == "active"
    assert product["rating"] is None and product["rating_count"] == 0
    assert [v["sku"] for v in product["variants"]] == ["TR-42", "TR-43"]
    first, second = product["variants"]
    assert set(first) >= VARIANT_FIELDS | {"on_hand", "reserved"}
    assert first["price_cents"] == 8999 and isinstance(first["price_cents"], int)
    assert first["available"] == 5 and first["on_hand"] == 5 and first["reserved"] == 0
    assert first["attributes"] == {"size": "42"}
    assert second["available"] == 0

    fetched = api.get(f"/vendor/products/{product['id']}", vendor.token)
    assert fetched.status_code == 200
    assert fetched.get_json() == product

    public = api.get(f"/products/{product['id']}").get_json()
    assert set(public) >= PRODUCT_FIELDS
    for variant in public["variants"]:
        assert set(variant) >= VARIANT_FIELDS
        assert "on_hand" not in variant and "reserved" not in variant


def test_create_product_minimal_defaults_to_draft(api, vendor):
    body = {"title": "Plain", "variants": [{"sku": "P-1", "price_cents": 100}]}
    response = api.post("/vendor/products", vendor.token, json=body)
    assert response.status_code == 201
    product = response.get_json()
    assert product["status"] == "draft"
    assert product["brand"] is None and product["category"] is None
    assert product["description"] == ""
    assert product["variants"][0]["available"] == 0
    assert product["variants"][0]["attributes"] == {}
    assert_error(api.get(f"/products/{product['id']}"), 404)


def test_brands_and_categories_are_shared_case_insensitively(api, vendor):
    one = api.post("/vendor/products", vendor.token, json=_new_product(brand="ACME"))
    two = api.post(
        "/vendor/products",
        vendor.token,
        json=_new_product(
            brand="acme",
            category=" Shoes / Running ",
            variants=[{"sku": "X-1", "price_cents": 100}],
        ),
    )
    assert one.status_code == two.status_code == 201
    assert two.get_json()["brand"] == "ACME"
    assert two.get_json()["category"] == "Shoes/Running"
    assert db.session.scalar(select(func.count()).select_from(Brand)) == 1
    assert db.session.scalar(select(func.count()).select_from(Category)) == 2


def test_list_vendor_products(api, vendor):
    draft = make_product(vendor, status=ProductStatus.DRAFT)
    active = make_product(vendor)
    archived = make_product(vendor)
    api.patch(f"/vendor/products/{archived.id}", vendor.token, json={"status": "archived"})
    make_product(make_vendor())  # someone else's
    response = api.get("/vendor/products", vendor.token)
    assert response.status_code == 200
    data = response.get_json()
    assert set(data) >= {"items", "total", "page", "per_page"}
    assert data["total"] == 3 and data["page"] == 1 and data["per_page"] == 20
    assert {p["id"] for p in data["items"]} == {draft.id, active.id, archived.id}
    for item in data["items"]:
        assert set(item) >= PRODUCT_FIELDS
        assert set(item["variants"][0]) >= VARIANT_FIELDS | {"on_hand", "reserved"}
    only_drafts = api.get("/vendor/products?status=draft", vendor.token).get_json()
    assert [p["id"] for p in only_drafts["items"]] == [draft.id]
    paged = api.get("/vendor/products?per_page=2&page=2", vendor.token).get_json()
    assert paged["total"] == 3 and len(paged["items"]) == 1 and paged["page"] == 2
    assert_error(api.get("/vendor/products?status=bogus", vendor.token), 422)
    assert_error(api.get("/vendor/products?per_page=101", vendor.token), 422)
    assert_error(api.get("/vendor/products?page=abc", vendor.token), 400)
    assert_error(api.get("/vendor/products?page=0", vendor.token), 422)


def test_patch_product(api, vendor):
    product = make_product(vendor, status=ProductStatus.DRAFT)
    response = api.patch(
        f"/vendor/products/{product.id}",
        vendor.token,
        json={
            "title": "New title",
            "description": "New description",
            "brand": "Zeta",
            "category": "Clothing/Tops",
            "status": "active",
        },
    )
    assert response.status_code == 200
    data = response.get_json()
    assert set(data) >= PRODUCT_FIELDS
    assert data["title"] == "New title"
    assert data["description"] == "New description"
    assert data["brand"] == "Zeta"
    assert data["category"] == "Clothing/Tops"
    assert data["status"] == "active"
    assert "on_hand" in data["variants"][0]

    only_title = api.patch(f"/vendor/products/{product.id}", vendor.token, json={"title": "T2"})
    assert only_title.get_json()["brand"] == "Zeta"  # untouched fields stay

    cleared = api.patch(
        f"/vendor/products/{product.id}", vendor.token, json={"brand": None, "category": None}
    ).get_json()
    assert cleared["brand"] is None and cleared["category"] is None

    archived = api.patch(
        f"/vendor/products/{product.id}", vendor.token, json={"status": "archived"}
    )
    assert archived.get_json()["status"] == "archived"
    assert_error(api.get(f"/products/{product.id}"), 404)


def test_add_variant(api, vendor):
    product = make_product(vendor)
    response = api.post(
        f"/vendor/products/{product.id}/variants",
        vendor.token,
        json={"sku": "NEW-1", "price_cents": 1234, "stock": 3, "attributes": {"color": "red"}},
    )
    assert response.status_code == 201
    variant = response.get_json()
    assert set(variant) >= VARIANT_FIELDS | {"on_hand", "reserved"}
    assert variant["sku"] == "NEW-1" and variant["price_cents"] == 1234
    assert variant["available"] == 3 and variant["on_hand"] == 3 and variant["reserved"] == 0
    assert variant["attributes"] == {"color": "red"}
    listed = api.get(f"/vendor/products/{product.id}", vendor.token).get_json()
    assert [v["sku"] for v in listed["variants"]][-1] == "NEW-1"


def test_patch_variant(api, vendor):
    product = make_product(vendor, price_cents=1000, stock=10)
    variant_id = product.variants[0].id
    response = api.patch(
        f"/vendor/variants/{variant_id}", vendor.token, json={"price_cents": 1500, "stock": 7}
    )
    assert response.status_code == 200
    data = response.get_json()
    assert set(data) >= VARIANT_FIELDS | {"on_hand", "reserved"}
    assert data["id"] == variant_id
    assert data["price_cents"] == 1500
    assert data["on_hand"] == 7 and data["available"] == 7 and data["reserved"] == 0
    zero = api.patch(f"/vendor/variants/{variant_id}", vendor.token, json={"stock": 0})
    assert zero.get_json()["available"] == 0
    unchanged = api.patch(f"/vendor/variants/{variant_id}", vendor.token, json={})
    assert unchanged.status_code == 200
    assert unchanged.get_json()["price_cents"] == 1500


def test_stock_cannot_go_below_reserved(api, vendor):
    product = make_product(vendor, price_cents=1000, stock=10)
    variant_id = product.variants[0].id
    # A checkout holds 4 units.
    db.session.execute(update(Variant).where(Variant.id == variant_id).values(reserved=4))
    db.session.commit()
    before = _snapshot()
    error = assert_error(
        api.patch(f"/vendor/variants/{variant_id}", vendor.token, json={"stock": 3}),
        409,
        "stock_below_reserved",
    )
    assert error["details"]["reserved"] == 4
    # A price change sent along with the rejected stock is not applied either.
    assert_error(
        api.patch(
            f"/vendor/variants/{variant_id}", vendor.token, json={"stock": 1, "price_cents": 5}
        ),
        409,
    )
    assert _snapshot() == before
    ok = api.patch(f"/vendor/variants/{variant_id}", vendor.token, json={"stock": 4})
    assert ok.status_code == 200
    data = ok.get_json()
    assert data["on_hand"] == 4 and data["reserved"] == 4 and data["available"] == 0


# --- bad input: nothing changes ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        _new_product(title=5),
        _new_product(title=None),
        _new_product(description=["x"]),
        _new_product(brand=7),
        _new_product(category={"a": 1}),
        _new_product(status=1),
        _new_product(status=True),
        _new_product(variants={"sku": "A"}),
        _new_product(variants=["A-1"]),
        _new_product(variants=[{"sku": "A-1", "price_cents": "1000"}]),
        _new_product(variants=[{"sku": "A-1", "price_cents": 10.5}]),
        _new_product(variants=[{"sku": "A-1", "price_cents": True}]),
        _new_product(variants=[{"sku": 12, "price_cents": 100}]),
        _new_product(variants=[{"sku": "A-1", "price_cents": 100, "stock": "5"}]),
        _new_product(variants=[{"sku": "A-1", "price_cents": 100, "attributes": ["x"]}]),
        _new_product(variants=[{"sku": "A-1", "price_cents": 100, "attributes": {"a": [1]}}]),
        _new_product(variants=[{"sku": "A-1", "price_cents": 100, "attributes": {"a": None}}]),
    ],
)
def test_create_product_wrong_types_are_400(api, vendor, body):
    before = _snapshot()
    assert_error(api.post("/vendor/products", vendor.token, json=body), 400, "bad_request")
    assert _snapshot() == before


def test_create_product_malformed_bodies_are_400(api, vendor):
    before = _snapshot()
    for kwargs in (
        {"data": "{", "content_type": "application/json"},
        {"data": "title=x", "content_type": "application/x-www-form-urlencoded"},
        {"json": []},
        {"json": 5},
    ):
        assert_error(api.post("/vendor/products", vendor.token, **kwargs), 400, "bad_request")
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"variants": [{"sku": "A", "price_cents": 1}]}, {"title"}),
        (_new_product(variants=[]), {"variants"}),
        ({"title": "No variants"}, {"variants"}),
        (_new_product(variants=[{"sku": "A-1"}]), {"variants[0].price_cents"}),
        (_new_product(variants=[{"price_cents": 100}]), {"variants[0].sku"}),
        (
            _new_product(variants=[{"sku": "A", "price_cents": 1}, {"sku": "B"}]),
            {"variants[1].price_cents"},
        ),
        (_new_product(variants=[{"sku": "A-1", "price_cents": 0}]), {"variants[0].price_cents"}),
        (_new_product(variants=[{"sku": "A-1", "price_cents": -5}]), {"variants[0].price_cents"}),
        (
            _new_product(variants=[{"sku": "A-1", "price_cents": 10**12}]),
            {"variants[0].price_cents"},
        ),
        (
            _new_product(variants=[{"sku": "A-1", "price_cents": 2**63}]),
            {"variants[0].price_cents"},
        ),
        (
            _new_product(variants=[{"sku": "A-1", "price_cents": 100, "stock": -1}]),
            {"variants[0].stock"},
        ),
        (
            _new_product(variants=[{"sku": "A-1", "price_cents": 100, "stock": 10**9}]),
            {"variants[0].stock"},
        ),
        (_new_product(variants=[{"sku": "  ", "price_cents": 100}]), {"variants[0].sku"}),
        (_new_product(variants=[{"sku": "S" * 65, "price_cents": 100}]), {"variants[0].sku"}),
        (
            _new_product(
                variants=[{"sku": "A-1", "price_cents": 100, "attributes": {"k": "v" * 101}}]
            ),
            {"variants[0].attributes"},
        ),
        (
            _new_product(
                variants=[{"sku": "D", "price_cents": 100}, {"sku": "D", "price_cents": 200}]
            ),
            {"variants[1].sku"},
        ),
        (_new_product(status="archived"), {"status"}),
        (_new_product(status="published"), {"status"}),
        (_new_product(title=""), {"title"}),
        (_new_product(title="   "), {"title"}),
        (_new_product(title="t" * 201), {"title"}),
        (_new_product(brand=""), {"brand"}),
        (_new_product(brand="b" * 81), {"brand"}),
        (_new_product(category="//"), {"category"}),
        (_new_product(category="c" * 256), {"category"}),
        (_new_product(category="Shoes/" + "c" * 81), {"category"}),
        (_new_product(description="d" * 20_001), {"description"}),
        (_new_product(title="Nul\u0000byte"), {"title"}),
        (
            _new_product(variants=[{"sku": f"S-{i}", "price_cents": 100} for i in range(101)]),
            {"variants"},
        ),
    ],
)
def test_create_product_invalid_values_are_422(api, vendor, body, fields):
    before = _snapshot()
    error = assert_error(api.post("/vendor/products", vendor.token, json=body), 422)
    assert fields <= set(error["details"]["fields"]), error
    assert _snapshot() == before


def test_duplicate_sku_is_409_and_changes_nothing(api, vendor):
    existing = make_product(vendor)
    sku = existing.variants[0].sku
    before = _snapshot()
    body = _new_product(
        variants=[{"sku": "FRESH", "price_cents": 100}, {"sku": sku, "price_cents": 100}]
    )
    error = assert_error(api.post("/vendor/products", vendor.token, json=body), 409, "sku_taken")
    assert error["details"]["skus"] == [sku]
    assert_error(
        api.post(
            f"/vendor/products/{existing.id}/variants",
            vendor.token,
            json={"sku": sku, "price_cents": 100},
        ),
        409,
        "sku_taken",
    )
    assert _snapshot() == before
    # Another vendor may use the same SKU.
    other = make_vendor()
    reuse = _new_product(variants=[{"sku": sku, "price_cents": 100}])
    assert api.post("/vendor/products", other.token, json=reuse).status_code == 201


def test_add_variant_bad_input(api, vendor):
    product = make_product(vendor)
    url = f"/vendor/products/{product.id}/variants"
    before = _snapshot()
    assert_error(api.post(url, vendor.token, json={"sku": "X"}), 422)
    assert_error(api.post(url, vendor.token, json={"sku": "X", "price_cents": 0}), 422)
    assert_error(api.post(url, vendor.token, json={"sku": "X", "price_cents": "9"}), 400)
    assert_error(api.post(url, vendor.token, json={"sku": "X", "price_cents": 9, "stock": -2}), 422)
    assert_error(
        api.post(
            "/vendor/products/999999/variants", vendor.token, json={"sku": "X", "price_cents": 9}
        ),
        404,
    )
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"title": 5}, 400),
        ({"status": 3}, 400),
        ({"brand": ["a"]}, 400),
        ({"title": ""}, 422),
        ({"title": None}, 422),
        ({"description": None}, 422),
        ({"status": None}, 422),
        ({"status": "deleted"}, 422),
        ({"title": "x" * 201}, 422),
        ({"brand": ""}, 422),
        ({"category": "/"}, 422),
        ({"category": "c" * 256}, 422),
        ({"category": "c" * 81}, 422),
        ({"description": "d" * 20_001}, 422),
    ],
)
def test_patch_product_bad_input(api, vendor, body, status):
    product = make_product(vendor)
    before = _snapshot()
    assert_error(api.patch(f"/vendor/products/{product.id}", vendor.token, json=body), status)
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"price_cents": "100"}, 400),
        ({"price_cents": 1.5}, 400),
        ({"stock": True}, 400),
        ({"price_cents": 0}, 422),
        ({"price_cents": -1}, 422),
        ({"price_cents": 10**10}, 422),
        ({"stock": -1}, 422),
        ({"stock": 10**9}, 422),
        ({"price_cents": None}, 422),
        ({"stock": None}, 422),
        ({"price_cents": 500, "stock": -1}, 422),
    ],
)
def test_patch_variant_bad_input(api, vendor, body, status):
    product = make_product(vendor)
    before = _snapshot()
    response = api.patch(f"/vendor/variants/{product.variants[0].id}", vendor.token, json=body)
    assert_error(response, status)
    assert _snapshot() == before


def test_unknown_ids_are_404(api, vendor):
    before = _snapshot()
    assert_error(api.get("/vendor/products/999999", vendor.token), 404, "product_not_found")
    assert_error(api.patch("/vendor/products/999999", vendor.token, json={"title": "x"}), 404)
    assert_error(api.patch("/vendor/variants/999999", vendor.token, json={"stock": 1}), 404)
    # Ids beyond the database's integer range are just as missing.
    huge = 2**63
    assert_error(api.get(f"/vendor/products/{huge}", vendor.token), 404)
    assert_error(api.patch(f"/vendor/variants/{huge}", vendor.token, json={"stock": 1}), 404)
    assert_error(api.get(f"/products/{huge}"), 404)
    assert _snapshot() == before


# --- who may call ---------------------------------------------------------------------------

VENDOR_ROUTES = [
    ("GET", "/vendor", None),
    ("PATCH", "/vendor", {"display_name": "X"}),
    ("GET", "/vendor/products", None),
    ("POST", "/vendor/products", _new_product()),
    ("GET", "/vendor/products/{product}", None),
    ("PATCH", "/vendor/products/{product}", {"title": "Stolen"}),
    ("POST", "/vendor/products/{product}/variants", {"sku": "Z-1", "price_cents": 1}),
    ("PATCH", "/vendor/variants/{variant}", {"stock": 0}),
]


@pytest.mark.parametrize(("method", "path", "body"), VENDOR_ROUTES)
def test_vendor_routes_need_a_vendor(api, vendor, method, path, body):
    product = make_product(vendor)
    url = path.format(product=product.id, variant=product.variants[0].id)
    buyer = make_buyer()
    before = _snapshot()
    assert_error(api.call(method, url, buyer.token, json=body), 403, "forbidden")
    assert_error(api.call(method, url, None, json=body), 401, "unauthorized")
    assert_error(api.call(method, url, "bogus-token", json=body), 401, "unauthorized")
    admin_like = make_buyer()
    assert_error(api.call(method, url, admin_like.token, json=body), 403)
    assert _snapshot() == before


def test_pending_vendor_can_manage_its_catalog_but_not_sell(api):
    pending = make_vendor(approved=False)
    response = api.post("/vendor/products", pending.token, json=_new_product())
    assert response.status_code == 201
    assert api.get("/vendor", pending.token).get_json()["status"] == "pending"
    assert_error(api.get(f"/products/{response.get_json()['id']}"), 404)


def test_other_vendors_objects_are_404_on_every_route(api, vendor):
    product = make_product(vendor, stock=5)
    variant_id = product.variants[0].id
    intruder = make_vendor("Intruder")
    before = _snapshot()
    calls = [
        ("GET", f"/vendor/products/{product.id}", None),
        ("PATCH", f"/vendor/products/{product.id}", {"title": "Stolen"}),
        ("PATCH", f"/vendor/products/{product.id}", {"status": "archived"}),
        ("PATCH", f"/vendor/products/{product.id}", {"brand": None, "category": None}),
        ("PATCH", f"/vendor/products/{product.id}", {}),
        ("POST", f"/vendor/products/{product.id}/variants", {"sku": "Z-1", "price_cents": 1}),
        ("PATCH", f"/vendor/variants/{variant_id}", {"stock": 0}),
        ("PATCH", f"/vendor/variants/{variant_id}", {"price_cents": 1}),
        ("PATCH", f"/vendor/variants/{variant_id}", {}),
    ]
    for method, url, body in calls:
        error = assert_error(api.call(method, url, intruder.token, json=body), 404)
        assert str(product.id) not in error["message"]
    # The intruder's own listing does not show it either.
    assert api.get("/vendor/products", intruder.token).get_json()["total"] == 0
    assert _snapshot() == before
    # And the owner still sees everything as it was.
    own = api.get(f"/vendor/products/{product.id}", vendor.token).get_json()
    assert own["title"] == product.title and own["variants"][0]["on_hand"] == 5
    # The error for someone else's object is the same as for a missing one.
    missing = api.get("/vendor/products/999999", intruder.token).get_json()
    theirs = api.get(f"/vendor/products/{product.id}", intruder.token).get_json()
    assert missing == theirs


def test_sku_taken_between_check_and_insert_is_still_409(api, vendor, monkeypatch):
    """Two requests racing with the same SKU: the unique index decides, and the loser gets
    the same 409 as if the check had seen the winner's row."""
    existing = make_product(vendor)
    sku = existing.variants[0].sku
    monkeypatch.setattr(catalog_services, "_ensure_skus_free", lambda vendor_id, skus: None)
    before = _snapshot()
    body = _new_product(variants=[{"sku": sku, "price_cents": 100}])
    assert_error(api.post("/vendor/products", vendor.token, json=body), 409, "sku_taken")
    assert_error(
        api.post(
            f"/vendor/products/{existing.id}/variants",
            vendor.token,
            json={"sku": sku, "price_cents": 100},
        ),
        409,
        "sku_taken",
    )
    assert _snapshot() == before
