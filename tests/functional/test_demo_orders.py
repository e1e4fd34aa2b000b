"""`flask demo load` as `make run` runs it (embedded Stripe emulator, state kept in instance/):
orders in every state, reviews and notifications, books that reconcile, pages with figures."""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import Role, User
from marketplace.db import db
from marketplace.notifications.models import Notification
from marketplace.orders.models import Order, OrderStatus, VendorOrder, VendorOrderStatus
from marketplace.payments import embedded
from marketplace.payments.models import Payment, PaymentStatus
from marketplace.payouts.models import LedgerEntry, Refund, RefundStatus, Transfer, TransferStatus
from marketplace.reviews.models import Review
from tests.helpers import login, page_app

DEMO_PASSWORD = "demo-password"


@pytest.fixture
def make_run(app: Any, runner: Any, tmp_path: Any, monkeypatch: Any) -> Any:
    """Run `demo load` with no Stripe key (so the command starts its own emulator, keeping
    its objects under a fresh instance/); yields a function that runs it again."""
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    for name in ("STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE"):
        monkeypatch.setitem(app.config, name, app.config[name])
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "")

    def run() -> Any:
        app.config["STRIPE_SECRET_KEY"] = ""
        result = runner.invoke(args=["demo", "load"])
        assert result.exit_code == 0, result.output
        db.session.rollback()
        return result

    return run


@pytest.fixture
def served(app: Any) -> Any:
    """The emulator as `make run`'s `serve` starts it after `demo load`: from the saved state."""
    server = embedded.start(app, webhook_url=None)  # and points the app's Stripe client at it
    yield server
    server.stop()


def _statuses() -> tuple[Counter[OrderStatus], Counter[VendorOrderStatus]]:
    orders = Counter(db.session.scalars(select(Order.status)))
    parts = Counter(db.session.scalars(select(VendorOrder.status)))
    return orders, parts


def _cents(page: str, field: str) -> int:
    match = re.search(rf'data-field="{field}" data-cents="(-?\d+)"', page)
    assert match, f"no {field} on the page"
    return int(match.group(1))


def _email(role: Role, n: int = 1) -> str:
    return {Role.ADMIN: "admin@example.com"}.get(role) or f"{role.value}{n}@example.com"


def test_demo_load_makes_orders_in_every_state_that_reconcile(app, make_run, request):
    started = time.monotonic()
    result = make_run()
    took = time.monotonic() - started
    assert "demo logins:" in result.output
    print(f"demo load took {took:.1f} s")

    # the demo vendors ship on differing terms (docs/shipping.md), one not everywhere
    from marketplace.catalog.models import Vendor
    from marketplace.catalog.shipping import terms_of

    terms = [terms_of(v) for v in db.session.scalars(select(Vendor).order_by(Vendor.id))]
    assert {t.mode for t in terms} == {"flat_per_order", "per_item", "weight_tiers"}
    assert any(t.ships_to and not t.serves("DE") for t in terms)
    assert db.session.scalar(select(func.min(Order.shipping_cents))) is not None

    orders, parts = _statuses()
    for status in (
        OrderStatus.PENDING_PAYMENT,
        OrderStatus.PAID,
        OrderStatus.PARTIALLY_FULFILLED,
        OrderStatus.FULFILLED,
        OrderStatus.PARTIALLY_REFUNDED,
        OrderStatus.CANCELLED,
    ):
        assert orders[status] >= 1, (status, orders)
    for status in (
        VendorOrderStatus.PENDING_PAYMENT,
        VendorOrderStatus.PAID,
        VendorOrderStatus.SHIPPED,
        VendorOrderStatus.DELIVERED,
        VendorOrderStatus.CANCELLED,
    ):
        assert parts[status] >= 1, (status, parts)

    # the unpaid order still holds its stock; the expired one was cancelled by its hold
    unpaid = db.session.scalar(select(Order).where(Order.status == OrderStatus.PENDING_PAYMENT))
    assert unpaid.payment_intent_id and unpaid.reservation_expires_at > unpaid.created_at
    cancel_reasons = set(
        db.session.scalars(
            select(VendorOrder.cancel_reason).where(
                VendorOrder.status == VendorOrderStatus.CANCELLED
            )
        )
    )
    assert any(reason and "Sold out" in reason for reason in cancel_reasons), cancel_reasons
    assert "reservation_expired" in set(
        db.session.scalars(select(Order.cancel_reason).where(Order.status == OrderStatus.CANCELLED))
    )
    # the paid order whose vendor cancelled it let the card's hold go
    assert db.session.scalar(select(func.count()).where(Payment.status == PaymentStatus.CANCELED))

    # shipped with tracking; one order split over three vendors, its parts in three states
    shipped = db.session.scalars(select(VendorOrder).where(VendorOrder.shipped_at.is_not(None)))
    assert all(vo.carrier and vo.tracking_number for vo in shipped)
    three = db.session.scalars(select(Order)).all()
    mixed = [o for o in three if len({vo.status for vo in o.vendor_orders}) == 3]
    assert mixed and len({vo.vendor_id for vo in mixed[0].vendor_orders}) == 3

    # delivered parts paid out; a partial refund reversed part of a transfer; a return refunded
    sent = db.session.scalars(select(Transfer).where(Transfer.status == TransferStatus.SENT))
    paid_out = {t.vendor_order_id for t in sent}
    delivered = set(
        db.session.scalars(
            select(VendorOrder.id).where(VendorOrder.status == VendorOrderStatus.DELIVERED)
        )
    )
    assert delivered and paid_out == delivered
    refunds = db.session.scalars(select(Refund)).all()
    assert {r.status for r in refunds} == {RefundStatus.SUCCEEDED}
    assert len([r for r in refunds if r.reason.startswith("return #")]) == 1
    assert len(refunds) == 2  # a cancelled part was never captured: nothing to refund
    from marketplace.orders.models import ReturnRequest, ReturnStatus

    assert db.session.scalar(select(ReturnRequest.status)) is ReturnStatus.ACCEPTED

    # reviews with texts and a vendor's reply; notifications for buyers and vendors
    found = db.session.scalars(select(Review)).all()
    assert len(found) >= 3 and all(r.body for r in found)
    assert any(r.reply for r in found)
    roles = set(
        db.session.scalars(
            select(User.role).join(Notification, Notification.user_id == User.id).distinct()
        )
    )
    assert {Role.BUYER, Role.VENDOR} <= roles

    # the books: balanced, and what the pages show
    assert db.session.scalar(select(func.sum(LedgerEntry.amount_cents))) == 0
    db.session.rollback()
    served = request.getfixturevalue("served")
    stripe = {
        "STRIPE_SECRET_KEY": embedded.EMBEDDED_SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": embedded.EMBEDDED_PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": embedded.EMBEDDED_WEBHOOK_SECRET,
        "STRIPE_API_BASE": served.url,
    }
    with page_app(**stripe) as web_app:
        admin = web_app.test_client()
        assert login(admin, _email(Role.ADMIN), DEMO_PASSWORD).status_code == 302
        page = admin.get("/admin/reconciliation").get_data(as_text=True)
        assert 'data-ok="true"' in page, page
        assert _cents(page, "charged_cents") > 0 and _cents(page, "transferred_cents") > 0
        assert _cents(page, "refunded_cents") > 0 and _cents(page, "platform_fee_cents") > 0

        for n in (1, 2, 3):
            vendor = web_app.test_client()
            assert login(vendor, _email(Role.VENDOR, n), DEMO_PASSWORD).status_code == 302
            earnings = vendor.get("/vendor/earnings").get_data(as_text=True)
            assert _cents(earnings, "transferred_cents") > 0, (n, earnings)
            assert "No transfers yet" not in earnings

        buyer = web_app.test_client()
        assert login(buyer, _email(Role.BUYER), DEMO_PASSWORD).status_code == 302
        listed = buyer.get("/orders").get_data(as_text=True)
        assert "No orders yet" not in listed
        assert {"paid", "pending payment", "partially refunded"} & set(
            re.findall(r'<span class="badge">([^<]+)</span>', listed)
        )
        assert "notification" in buyer.get("/notifications").get_data(as_text=True).lower()


def test_demo_load_twice_adds_nothing(app, make_run):
    make_run()
    counts = [
        db.session.scalar(select(func.count()).select_from(model))
        for model in (Order, Refund, Transfer, Review, Notification, LedgerEntry)
    ]
    db.session.rollback()
    again = make_run()
    assert "already loaded" in again.output
    assert [
        db.session.scalar(select(func.count()).select_from(model))
        for model in (Order, Refund, Transfer, Review, Notification, LedgerEntry)
    ] == counts

    from marketplace.demo_orders import load_demo_orders

    assert load_demo_orders("http://127.0.0.1:9") is None  # orders exist: Stripe not asked
