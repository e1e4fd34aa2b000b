from tests.helpers import assert_error, make_product, make_vendor


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"db": "ok", "redis": "ok"}


def test_home_lists_products(client):
    vendor = make_vendor()
    make_product(vendor, title="Trail Runner")
    response = client.get("/")
    assert response.status_code == 200
    assert "Trail Runner" in response.get_data(as_text=True)


def test_unknown_api_route_is_json_404(api):
    assert_error(api.get("/nope"), 404, "not_found")
