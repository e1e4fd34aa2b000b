"""The product page's Add to cart form and the vendor's public page (submitted as rendered)."""

from __future__ import annotations

from marketplace.cart.models import CartItem
from marketplace.catalog import services as catalog
from marketplace.catalog.models import ProductStatus
from marketplace.db import db
from marketplace.reviews import services as reviews
from tests.functional.test_reviews_returns import _delivered_order, _ship_and_deliver
from tests.helpers import forms_in, login, make_buyer, make_product, make_vendor, submit


def _two_options(vendor):
    return catalog.create_product(
        vendor.vendor.id,
        catalog.ProductInput(
            title="Trail Shoe",
            status=ProductStatus.ACTIVE,
            variants=[
                catalog.VariantInput(
                    sku="SHOE-42", price_cents=8900, stock=3, attributes={"size": "42"}
                ),
                catalog.VariantInput(
                    sku="SHOE-43", price_cents=9100, stock=0, attributes={"size": "43"}
                ),
            ],
        ),
    )


def test_add_to_cart_from_the_form_the_product_page_renders(client):
    vendor = make_vendor("Shoes")
    product = _two_options(vendor)
    in_stock, sold_out = product.variants
    buyer = make_buyer()
    login(client, buyer.user.email)

    page = client.get(f"/products/{product.id}")
    assert page.status_code == 200
    (form,) = forms_in(page, "/cart/add")
    assert form.method == "post" and form.control("csrf_token")
    options = {o["value"]: o for o in form.control("variant_id")}
    assert set(options) == {str(in_stock.id), str(sold_out.id)}
    assert "disabled" in options[str(sold_out.id)] and "disabled" not in options[str(in_stock.id)]
    assert "checked" in options[str(in_stock.id)]
    html = page.get_data(as_text=True)
    assert "$89.00" in html and "$91.00" in html and "Out of stock" in html and "3 in stock" in html
    assert f'href="/sellers/{vendor.vendor.id}"' in html

    added = submit(client, page, "/cart/add", quantity=2)
    assert added.status_code == 302 and added.headers["Location"].endswith("/cart")
    db.session.rollback()
    assert [(i.variant_id, i.quantity) for i in db.session.query(CartItem)] == [(in_stock.id, 2)]


def test_a_sold_out_option_cannot_be_picked(client):
    product = _two_options(make_vendor())
    page = client.get(f"/products/{product.id}")
    (form,) = forms_in(page, "/cart/add")
    try:
        form.data(variant_id=product.variants[1].id)
    except AssertionError as error:
        assert "not an option" in str(error)
    else:
        raise AssertionError("a disabled option was accepted")


def test_a_product_sold_out_everywhere_offers_no_add_to_cart(client):
    product = make_product(make_vendor(), stock=0)
    html = client.get(f"/products/{product.id}").get_data(as_text=True)
    assert ">Add to cart<" not in html and "Out of stock" in html


def test_reviews_with_the_vendors_reply_on_the_product_and_seller_pages(client, api, webhooks):
    vendor, product, buyer, order_id, vo_id, item_id = _delivered_order(api, webhooks)
    _ship_and_deliver(api, vendor, vo_id)
    review = reviews.create_review(buyer.id, order_id, item_id, 4, "Sturdy and warm.")
    reviews.reply(vendor.vendor.id, review.id, "Thank you, enjoy it!")
    catalog.update_vendor_settings(vendor.vendor.id, display_name="Wool House")

    html = client.get(f"/products/{product.id}").get_data(as_text=True)
    assert "Sturdy and warm." in html and "Reply from Wool House:" in html
    assert "Thank you, enjoy it!" in html and "★★★★☆" in html

    seller = client.get(f"/sellers/{vendor.vendor.id}")
    assert seller.status_code == 200
    html = seller.get_data(as_text=True)
    assert "<h1>Wool House</h1>" in html and "Rated 4.0 / 5 from 1 review" in html
    assert f'href="/products/{product.id}"' in html and "Thank you, enjoy it!" in html


def test_the_seller_page_lists_only_active_products_of_an_approved_vendor(client):
    vendor = make_vendor("Lamps")
    active = make_product(vendor, title="Desk Lamp")
    make_product(vendor, title="Secret Draft Lamp", status=ProductStatus.DRAFT)
    html = client.get(f"/sellers/{vendor.vendor.id}").get_data(as_text=True)
    assert f'href="/products/{active.id}"' in html and "Secret Draft Lamp" not in html
    assert "Products (1)" in html
    pending = make_vendor("Pending", approved=False)
    assert client.get(f"/sellers/{pending.vendor.id}").status_code == 404
    assert client.get("/sellers/999999").status_code == 404


def test_pages_carry_the_security_headers(client):
    product = make_product(make_vendor())
    response = client.get(f"/products/{product.id}")
    policy = response.headers["Content-Security-Policy"]
    assert (
        "frame-ancestors 'none'" in policy and "script-src 'self' https://js.stripe.com" in policy
    )
    assert "'unsafe-inline'" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP here
    secure = client.get(f"/products/{product.id}", base_url="https://shop.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "<script>" not in response.get_data(as_text=True)  # no inline script to allow
