"""Admin order lookup: search through the page's form, one order's timeline in time order,
and a refund from there through the preview and its confirm button (audited)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.audit.models import AuditEntry
from marketplace.db import db
from marketplace.payouts.models import Refund
from tests.functional.money import paid_order
from tests.helpers import forms_in, login, make_admin, make_buyer, page_app, submit

SHIP = {"carrier": "UPS", "tracking_number": "1Z999"}


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


@pytest.fixture
def shipped(api, webhooks):
    paid = paid_order(api, webhooks)
    part = paid["vendor_orders"][0]["id"]
    shipped = api.post(f"/vendor/orders/{part}/ship", paid["sellers"][0].token, json=SHIP)
    assert shipped.status_code == 200, shipped.get_json()
    webhooks.flush_webhooks()
    return paid


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_search_by_buyer_email_vendor_and_status(web, shipped):
    admin = make_admin()
    login(web, admin.user.email)
    order_id = shipped["order"]["id"]
    page = web.get("/admin/orders")
    assert page.status_code == 200 and 'href="/admin/orders"' in _text(page)

    (search,) = forms_in(page, "/admin/orders")
    found = web.get(
        "/admin/orders", query_string=search.data(buyer_email=shipped["buyer"].user.email)
    )
    assert 'data-total="1"' in _text(found) and f'data-order="{order_id}"' in _text(found)
    by_vendor = web.get("/admin/orders", query_string=search.data(vendor="Seller0"))
    assert f'data-order="{order_id}"' in _text(by_vendor)
    other = web.get("/admin/orders", query_string=search.data(buyer_email="nobody@"))
    assert 'data-total="0"' in _text(other)
    by_status = web.get("/admin/orders", query_string=search.data(status="cancelled"))
    assert f'data-order="{order_id}"' not in _text(by_status)
    by_id = web.get("/admin/orders", query_string=search.data(order_id=str(order_id)))
    assert 'data-total="1"' in _text(by_id)
    bad = web.get("/admin/orders", query_string=search.data(since="2026-02-02", until="2026-01-01"))
    assert bad.status_code == 422 and "Must not be before the start date." in _text(bad)


def test_the_order_page_shows_the_timeline_in_time_order(web, shipped):
    login(web, make_admin().user.email)
    page = web.get(f"/admin/orders/{shipped['order']['id']}")
    assert page.status_code == 200
    body = _text(page)
    kinds = [chunk.split('"')[0] for chunk in body.split('data-kind="')[1:]]
    assert {"status", "payment", "capture", "email", "notification"} <= set(kinds), kinds
    assert kinds.index("payment") < kinds.index("capture")
    assert "→ shipped" in body and "Captured" in body
    assert web.get("/admin/orders/999999").status_code == 404


def test_refund_from_the_order_page_through_the_preview(web, shipped):
    admin = make_admin()
    login(web, admin.user.email)
    order_id, part = shipped["order"]["id"], shipped["vendor_orders"][0]["id"]
    page = web.get(f"/admin/orders/{order_id}")
    preview_url = f"/admin/orders/{order_id}/parts/{part}/refund-preview"
    (ask,) = forms_in(page, preview_url)
    preview = web.get(preview_url, query_string=ask.data(amount="5.00", reason="Scratched"))
    assert preview.status_code == 200
    assert 'data-preview-amount="500"' in _text(preview)
    db.session.rollback()
    assert db.session.scalars(select(Refund)).all() == []  # a preview changes nothing

    done = submit(web, preview, f"/admin/orders/{order_id}/parts/{part}/refund")
    assert done.status_code == 303
    db.session.rollback()
    (refund,) = db.session.scalars(select(Refund)).all()
    assert refund.amount_cents == 500 and refund.reason == "Scratched"
    assert refund.actor == f"admin:{admin.id}"
    (entry,) = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "refund.create"))
    assert (entry.target_type, entry.target_id, entry.actor_id) == (
        "vendor_order",
        str(part),
        admin.id,
    )
    assert entry.before == {"status": "shipped"}
    assert entry.after["refund_id"] == refund.id and entry.after["amount_cents"] == 500
    assert 'data-kind="refund"' in _text(web.get(f"/admin/orders/{order_id}"))


def test_an_over_refund_is_refused_on_the_preview_and_changes_nothing(web, shipped):
    login(web, make_admin().user.email)
    order_id, part = shipped["order"]["id"], shipped["vendor_orders"][0]["id"]
    preview_url = f"/admin/orders/{order_id}/parts/{part}/refund-preview"
    (ask,) = forms_in(web.get(f"/admin/orders/{order_id}"), preview_url)
    refused = web.get(preview_url, query_string=ask.data(amount="9999.00"))
    assert refused.status_code == 422
    assert f"/admin/orders/{order_id}/parts/{part}/refund" not in _text(refused).replace(
        "refund-preview", ""
    )
    db.session.rollback()
    assert db.session.scalars(select(Refund)).all() == []
    assert (
        db.session.scalars(select(AuditEntry).where(AuditEntry.action == "refund.create")).all()
        == []
    )


def test_order_pages_are_for_admins(web, shipped):
    login(web, make_buyer().user.email)
    assert web.get("/admin/orders").status_code == 403
    assert web.get(f"/admin/orders/{shipped['order']['id']}").status_code == 403


def test_the_timeline_shows_only_this_orders_emails(web, shipped):
    from marketplace.db import transaction
    from marketplace.notifications.models import SentEmail

    order_id, buyer = shipped["order"]["id"], shipped["buyer"]
    with transaction():  # another subject with the same id: not about this order
        db.session.add(
            SentEmail(
                key=f"password_reset:{order_id}:user:{buyer.id}",
                to_address=buyer.user.email,
                subject="Reset your password",
            )
        )
    login(web, make_admin().user.email)
    body = _text(web.get(f"/admin/orders/{order_id}"))
    assert "Order #" in body and "confirmed" in body
    assert "Reset your password" not in body
