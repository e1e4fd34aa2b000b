"""Coupons on the pages, through the rendered forms: the buyer applies a code in the cart and
sees the discount per vendor there and at checkout; vendors and admins manage their coupons."""

from __future__ import annotations

import re

from sqlalchemy import select

from marketplace.audit.models import AuditEntry
from marketplace.catalog.services import update_vendor_settings
from marketplace.coupons import services as coupons
from marketplace.coupons.models import Coupon
from marketplace.db import db
from marketplace.orders.models import Order
from marketplace.orders.tax import set_rate
from tests.helpers import login, make_admin, make_buyer, make_product, make_vendor, submit

ADDRESS = {
    "name": "Bea Buyer",
    "line1": "1 Main St",
    "city": "Springfield",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}


def _cents(html: str, field: str, vendor_id: int | None = None) -> int:
    if vendor_id is not None:
        html = html.split(f'data-vendor="{vendor_id}"', 1)[1]
    match = re.search(rf'data-field="{field}" data-cents="(-?\d+)"', html)
    assert match, f"no {field} on the page"
    return int(match.group(1))


def _platform_coupon(**terms):
    values = {"kind": "percent", **terms}
    return coupons.create(coupons.input_from(values, set(values)), vendor_id=None)


def _shop(client):
    lamps, teas = make_vendor("Lamps"), make_vendor("Teas")
    update_vendor_settings(lamps.vendor.id, shipping_flat_cents=450)
    update_vendor_settings(teas.vendor.id, shipping_flat_cents=300)
    set_rate("US", "CA", 1000)
    lamp = make_product(lamps, title="Lamp", price_cents=1500, stock=5)
    tea = make_product(teas, title="Tea", price_cents=1000, stock=5)
    for product, quantity in ((lamp, 2), (tea, 1)):
        page = client.get(f"/products/{product.id}")
        assert submit(client, page, "/cart/add", quantity=quantity).status_code == 302
    return lamps, teas


def test_a_coupon_applied_in_the_cart_shows_per_vendor_and_is_what_checkout_charges(client):
    buyer = make_buyer()
    login(client, buyer.user.email)
    lamps, teas = _shop(client)
    _platform_coupon(code="TENOFF", percent_bps=1000)

    refused = submit(client, client.get("/cart"), "/cart/coupon", coupon_code="nope")
    assert refused.status_code == 302
    html = client.get("/cart").get_data(as_text=True)
    assert "There is no coupon with this code." in html
    assert 'data-field="discount_total"' not in html

    submit(client, client.get("/cart"), "/cart/coupon", coupon_code="tenoff")
    html = client.get("/cart").get_data(as_text=True)
    # 10 % of 40.00 = 4.00, split by commission (3.00 : 1.00)
    assert _cents(html, "discount", lamps.vendor.id) == 300
    assert _cents(html, "discount", teas.vendor.id) == 100
    assert _cents(html, "discount_total") == 400
    assert "Coupon TENOFF applied." in html

    form_page = client.get("/checkout")
    assert 'value="TENOFF"' in form_page.get_data(as_text=True)
    quoted = submit(client, form_page, "/checkout", step="quote", **ADDRESS)
    html = quoted.get_data(as_text=True)
    assert _cents(html, "discount", lamps.vendor.id) == 300
    # tax 10 % on the discounted items: 2.70 + 0.90
    assert _cents(html, "tax_total") == 270 + 90
    assert _cents(html, "grand_total") == 4000 - 400 + 750 + 360
    placed = submit(client, quoted, "/checkout", step="place")
    assert placed.status_code == 302 and "/pay" in placed.headers["Location"]
    db.session.rollback()
    order = db.session.query(Order).one()
    assert (order.discount_cents, order.total_cents, order.coupon_code) == (400, 4710, "TENOFF")


def test_a_code_that_does_not_apply_at_checkout_is_named_on_the_form(client):
    buyer = make_buyer()
    login(client, buyer.user.email)
    _shop(client)
    _platform_coupon(code="BIGONLY", percent_bps=1000, min_order_cents=100_000)
    page = submit(
        client, client.get("/checkout"), "/checkout", step="place", coupon_code="bigonly", **ADDRESS
    )
    assert page.status_code == 422
    assert "minimum order value" in page.get_data(as_text=True)
    assert db.session.query(Order).count() == 0


def test_a_vendor_manages_its_coupons_on_its_page(client):
    vendor = make_vendor()
    login(client, vendor.user.email)
    page = client.get("/vendor/coupons")
    assert page.status_code == 200
    created = submit(
        client, page, "/vendor/coupons", code="shop5", kind="fixed", amount="5.00", max_uses="3"
    )
    assert created.status_code == 302
    coupon = db.session.scalars(select(Coupon)).one()
    assert (coupon.code, coupon.amount_cents, coupon.max_uses, coupon.vendor_id) == (
        "SHOP5",
        500,
        3,
        vendor.vendor.id,
    )
    html = client.get("/vendor/coupons").get_data(as_text=True)
    assert "SHOP5" in html
    paused = submit(client, client.get("/vendor/coupons"), f"/vendor/coupons/{coupon.id}/active")
    assert paused.status_code == 302
    db.session.rollback()
    assert db.session.get(Coupon, coupon.id).active is False
    assert "Resume SHOP5" in client.get("/vendor/coupons").get_data(as_text=True)
    bad = submit(client, client.get("/vendor/coupons"), "/vendor/coupons", code="x", kind="fixed",
                 amount="1.00")  # fmt: skip
    assert bad.status_code == 422 and "3 to 40 letters" in bad.get_data(as_text=True)
    removed = submit(client, client.get("/vendor/coupons"), f"/vendor/coupons/{coupon.id}/delete")
    assert removed.status_code == 302
    db.session.rollback()
    assert db.session.get(Coupon, coupon.id).deleted_at is not None


def test_an_admin_manages_the_platforms_coupons_audited(client):
    admin = make_admin()
    login(client, admin.user.email)
    page = client.get("/admin/coupons")
    assert page.status_code == 200
    created = submit(
        client, page, "/admin/coupons", code="welcome", kind="percent", percent="12.5",
        max_uses_per_buyer="1",
    )  # fmt: skip
    assert created.status_code == 302
    coupon = db.session.scalars(select(Coupon)).one()
    assert (coupon.percent_bps, coupon.vendor_id, coupon.max_uses_per_buyer) == (1250, None, 1)
    assert "WELCOME" in client.get("/admin/coupons").get_data(as_text=True)
    submit(client, client.get("/admin/coupons"), f"/admin/coupons/{coupon.id}/active")
    submit(client, client.get("/admin/coupons"), f"/admin/coupons/{coupon.id}/delete")
    db.session.rollback()
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-3:] == ["coupon.create", "coupon.update", "coupon.delete"]


def test_a_vendor_edits_a_coupon_through_its_filled_in_form(client):
    vendor = make_vendor()
    login(client, vendor.user.email)
    created = submit(
        client, client.get("/vendor/coupons"), "/vendor/coupons", code="shop5", kind="percent",
        percent="12.5", min_order="20.00", ends_at="2030-01-31T12:00", max_uses="3",
    )  # fmt: skip
    assert created.status_code == 302
    coupon = db.session.scalars(select(Coupon)).one()

    listing = client.get("/vendor/coupons").get_data(as_text=True)
    assert f'href="/vendor/coupons/{coupon.id}/edit"' in listing
    page = client.get(f"/vendor/coupons/{coupon.id}/edit")
    html = page.get_data(as_text=True)
    # the form shows the terms as they were typed
    for shown in ('value="SHOP5"', 'value="12.5"', 'value="20.00"', 'value="2030-01-31T12:00"'):
        assert shown in html, shown

    # saved unchanged, the terms stay exactly as they were
    assert submit(client, page, f"/vendor/coupons/{coupon.id}/edit").status_code == 302
    db.session.rollback()
    same = db.session.get(Coupon, coupon.id)
    assert (same.percent_bps, same.min_order_cents, same.max_uses) == (1250, 2000, 3)
    assert same.ends_at.replace(tzinfo=None).isoformat() == "2030-01-31T12:00:00"

    page = client.get(f"/vendor/coupons/{coupon.id}/edit")
    bad = submit(client, page, f"/vendor/coupons/{coupon.id}/edit", percent="250")
    assert bad.status_code == 422
    db.session.rollback()
    assert db.session.get(Coupon, coupon.id).percent_bps == 1250  # nothing changed

    edit = f"/vendor/coupons/{coupon.id}/edit"
    saved = submit(
        client, client.get(edit), edit, code="shop7", kind="fixed", amount="7.00", max_uses=""
    )
    assert saved.status_code == 302
    assert "Coupon SHOP7 saved." in client.get("/vendor/coupons").get_data(as_text=True)
    db.session.rollback()
    edited = db.session.get(Coupon, coupon.id)
    assert (edited.code, edited.kind.value, edited.amount_cents, edited.percent_bps) == (
        "SHOP7",
        "fixed",
        700,
        None,
    )
    assert edited.max_uses is None

    other = make_vendor("Other")
    login(client, other.user.email)
    assert client.get(f"/vendor/coupons/{coupon.id}/edit").status_code == 404


def test_an_admin_edit_of_a_platform_coupon_is_audited_before_and_after(client):
    admin = make_admin()
    login(client, admin.user.email)
    _platform_coupon(code="WELCOME", percent_bps=1000)
    coupon = db.session.scalars(select(Coupon)).one()
    page = client.get(f"/admin/coupons/{coupon.id}/edit")
    assert 'value="10"' in page.get_data(as_text=True)
    saved = submit(client, page, f"/admin/coupons/{coupon.id}/edit", percent="15")
    assert saved.status_code == 302
    db.session.rollback()
    assert db.session.get(Coupon, coupon.id).percent_bps == 1500
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry.action == "coupon.update"
    assert (entry.before["percent_bps"], entry.after["percent_bps"]) == (1000, 1500)
