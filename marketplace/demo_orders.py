"""Demo orders in every state, made the way real ones are: so every page has figures on `make run`.

The demo buyers check out through `orders.checkout`, pay through the real `stripe` SDK against
the offline emulator (as Stripe.js would in their browser), and the emulator's webhooks reach
`/webhooks/stripe` on a short-lived local server, signature checked. The demo vendors then ship,
deliver, cancel, refund and accept a return through the same service functions as their
dashboard. Nothing is written to the tables directly, so the ledger balances and the admin's
reconciliation against the emulator's objects says ok.

While the orders are made, jobs run inline (`JOBS_SYNCHRONOUS`) and the payout hold is 0, so
everything a job or a hold would do later is done when `demo load` returns; the order whose hold
ran out is expired by the expiry job's own function, as at its expiry time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import requests
import stripe
from flask import current_app
from sqlalchemy import select
from werkzeug.serving import make_server

from marketplace.accounts.models import User
from marketplace.cart import services as carts
from marketplace.catalog import services as catalog
from marketplace.catalog.models import Product, ProductStatus, Variant
from marketplace.db import db
from marketplace.orders import fulfilment, returns
from marketplace.orders import services as orders
from marketplace.orders.models import Order, OrderItem, VendorOrder
from marketplace.reviews import services as reviews
from marketplace.settlement import authorize, refunds

ADDRESSES = {
    "buyer1@example.com": orders.Address(
        name="Bea Buyer",
        line1="1 Main St",
        city="Springfield",
        state="CA",
        postal_code="94000",
        country="US",
    ),
    "buyer2@example.com": orders.Address(
        name="Ben Buyer",
        line1="20 W 34th St",
        city="New York",
        state="NY",
        postal_code="10001",
        country="US",
    ),
}
TEST_CARD = "pm_card_visa"


def load_demo_orders(emulator_url: str) -> list[str] | None:
    """Create the demo orders (and their reviews and notifications); `None` when the database
    has orders already. Returns one line per order saying what state it was left in.

    Needs the demo accounts (`marketplace.demo.load_demo_data`) with the vendors onboarded
    at the emulator at `emulator_url`.
    """
    if db.session.scalar(select(Order.id).limit(1)) is not None:
        return None
    db.session.rollback()
    with _jobs_run_now(), _webhooks_delivered(emulator_url) as flush:
        return _Story(flush).tell()


# Their requests, jobs and Stripe calls would print a few hundred log lines per `demo load`.
_QUIETED = ("marketplace", "stripe", "werkzeug")


@contextmanager
def _jobs_run_now() -> Iterator[None]:
    """Jobs inline, no payout hold and only warnings logged, while the demo orders are made."""
    config = current_app.config
    saved = {name: config[name] for name in ("JOBS_SYNCHRONOUS", "PAYOUT_HOLD_SECONDS")}
    levels = {name: logging.getLogger(name).level for name in _QUIETED}
    config.update(JOBS_SYNCHRONOUS=True, PAYOUT_HOLD_SECONDS=0)
    for name in _QUIETED:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        config.update(saved)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def _webhooks_delivered(emulator_url: str) -> Iterator[Any]:
    """Serve this app on a free local port and point the emulator's webhooks at it; yields a
    `flush()` that waits until every event so far was delivered (and applied)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks/stripe"

    def control(path: str, body: dict[str, Any]) -> None:
        response = requests.post(f"{emulator_url}/_emulator/{path}", json=body, timeout=60)
        response.raise_for_status()

    def flush() -> None:
        control("webhooks/flush", {"timeout": 30})
        db.session.rollback()  # see what the webhooks committed

    try:
        control("webhooks/config", {"url": url})
        yield flush
        flush()
    finally:
        try:
            control("webhooks/config", {"url": ""})
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


class _Story:
    """The demo's orders, one method per scenario, each through the real services."""

    def __init__(self, flush: Any) -> None:
        self.flush = flush
        self.users = {
            user.email: user
            for user in db.session.scalars(select(User).where(User.email.like("%@example.com")))
        }
        self.vendors = [
            catalog.vendor_for_user(self.users[f"vendor{n}@example.com"].id).id for n in (1, 2, 3)
        ]
        self.told: list[str] = []
        self._keys = 0

    def tell(self) -> list[str]:
        bea, ben = "buyer1@example.com", "buyer2@example.com"
        v1, v2, v3 = self.vendors

        # Three vendors in one order, each part in another state.
        order = self.paid(bea, [(v1, 1), (v2, 1), (v3, 1)])
        parts = self.parts(order)
        self.cancel(v3, parts[v3], "Sold out at our warehouse, sorry!")
        self.ship(v1, parts[v1], "UPS", "1Z999AA10123456784")
        self.deliver(v1, parts[v1])
        self.ship(v2, parts[v2], "USPS", "9400111899223856923741")
        self.review(
            bea,
            parts[v1],
            5,
            "Exactly as described, and it arrived early.",
            reply=(v1, "Thank you! Enjoy the trails."),
        )
        self.note(order, "three vendors: delivered + paid out, shipped, cancelled by the vendor")

        # Paid, waiting for both vendors to ship.
        order = self.paid(ben, [(v2, 1), (v3, 2)])
        self.note(order, "paid, two vendors to ship")

        # Delivered, the vendor paid out, then partly refunded.
        order = self.paid(ben, [(v1, 1), (v1, 2)])
        (part,) = self.parts(order).values()
        self.ship(v1, part, "FedEx", "771234567890")
        self.deliver(v1, part)
        self.review(ben, part, 4, "Good quality; the second one had a scuffed box.")
        first = self.items(part)[0]
        refunds.refund_vendor_order(
            part,
            vendor_id=v1,
            actor=f"vendor:{v1}",
            reason="scuffed on arrival",
            items=[refunds.ItemRequest(first.id, 1)],
        )
        self.note(order, "delivered, paid out, partly refunded")

        # Delivered, then returned: the return accepted and refunded (restocked).
        order = self.paid(bea, [(v2, 2)])
        (part,) = self.parts(order).values()
        self.ship(v2, part, "DHL", "JD014600006281234567")
        self.deliver(v2, part)
        item = self.items(part)[0]
        request = returns.request_return(
            self.users[bea].id, order, item.id, 1, "Too small: I need a size up."
        )
        refunds.accept_return(v2, request.id, restock=True)
        self.review(
            bea,
            part,
            3,
            "Runs small: order a size up. The return was painless.",
            reply=(v2, "Sorry about the fit: the size chart now says it runs small."),
        )
        self.note(order, "delivered, one unit returned and refunded")

        # Delivered and paid out, nothing else.
        order = self.paid(ben, [(v3, 1)])
        (part,) = self.parts(order).values()
        self.ship(v3, part, "UPS", "1Z999AA10123456785")
        self.deliver(v3, part)
        self.review(
            ben,
            part,
            5,
            "Works great; the battery lasts for days.",
            reply=(v3, "Glad to hear it, thanks for the review!"),
        )
        self.note(order, "delivered, paid out")

        # Paid, then the vendor cancelled the whole order (the card's hold let go).
        order = self.paid(bea, [(v3, 1)])
        (part,) = self.parts(order).values()
        self.cancel(v3, part, "Discontinued by the manufacturer.")
        self.note(order, "cancelled by the vendor")

        # Placed but never paid: the stock hold ran out (the expiry job, as at its time).
        order = self.placed(ben, [(v1, 1)])
        expires_at = db.session.get(Order, order).reservation_expires_at
        db.session.rollback()
        orders.expire_order(order, now=expires_at)
        self.note(order, "cancelled: the stock hold ran out")

        # Placed and awaiting payment, its stock still held.
        order = self.placed(bea, [(v2, 1), (v1, 1)])
        self.note(order, "awaiting payment (stock held)")
        return self.told

    # --- the buyer ------------------------------------------------------------------------

    def placed(self, email: str, lines: list[tuple[int, int]]) -> int:
        """Fill the buyer's cart (one in-stock variant per line) and check out; the order's
        PaymentIntent is created as the pay page would. Returns the order id."""
        buyer_id = self.users[email].id
        for vendor_id, quantity in lines:
            carts.add_item(buyer_id, self._variant(vendor_id, quantity), quantity)
        address = ADDRESSES[email]
        self._keys += 1
        body = {"shipping_address": asdict(address)}
        result = orders.checkout(
            buyer_id, address, f"demo-{self._keys}", orders.request_fingerprint(body)
        )
        order_id = result.order.id
        self._payment = authorize.payment_for_checkout(order_id)
        db.session.rollback()
        return order_id

    def paid(self, email: str, lines: list[tuple[int, int]]) -> int:
        """Placed, and paid with the test card; `paid` once its webhook was applied."""
        order_id = self.placed(email, lines)
        payment = self._payment
        client = stripe.StripeClient(
            payment["publishable_key"],
            base_addresses={"api": payment["api_base"]},
            http_client=stripe.RequestsClient(timeout=30),
        )
        client.v1.payment_intents.confirm(
            payment["payment_intent_id"],
            params={"payment_method": TEST_CARD, "client_secret": payment["client_secret"]},
        )
        self.flush()
        return order_id

    def review(
        self,
        email: str,
        vendor_order_id: int,
        rating: int,
        body: str,
        reply: tuple[int, str] | None = None,
    ) -> None:
        """The buyer reviews the part's first item; the vendor answers when `reply` says so."""
        part = db.session.get(VendorOrder, vendor_order_id)
        order_id, item_id = part.order_id, self.items(vendor_order_id)[0].id
        db.session.rollback()
        review = reviews.create_review(self.users[email].id, order_id, item_id, rating, body)
        if reply is not None:
            vendor_id, answer = reply
            reviews.reply(vendor_id, review.id, answer)

    # --- the vendors ----------------------------------------------------------------------

    def ship(self, vendor_id: int, vendor_order_id: int, carrier: str, tracking: str) -> None:
        fulfilment.ship(vendor_id, vendor_order_id, carrier, tracking)
        self.flush()  # the capture's events

    def deliver(self, vendor_id: int, vendor_order_id: int) -> None:
        fulfilment.deliver(vendor_id, vendor_order_id)  # and the transfer (no hold here)
        self.flush()

    def cancel(self, vendor_id: int, vendor_order_id: int, reason: str) -> None:
        fulfilment.cancel_by_vendor(vendor_id, vendor_order_id, reason)
        self.flush()

    # --- lookups --------------------------------------------------------------------------

    def parts(self, order_id: int) -> dict[int, int]:
        """vendor id → VendorOrder id."""
        rows = db.session.execute(
            select(VendorOrder.vendor_id, VendorOrder.id).where(VendorOrder.order_id == order_id)
        ).all()
        db.session.rollback()
        return dict(rows)  # type: ignore[arg-type]

    def items(self, vendor_order_id: int) -> list[OrderItem]:
        return list(
            db.session.scalars(
                select(OrderItem)
                .where(OrderItem.vendor_order_id == vendor_order_id)
                .order_by(OrderItem.id)
            )
        )

    def _variant(self, vendor_id: int, quantity: int) -> int:
        """The vendor's first active variant with `quantity` available, not in the cart yet."""
        used = getattr(self, "_used", set())
        self._used = used
        variant_id = db.session.scalar(
            select(Variant.id)
            .join(Product, Product.id == Variant.product_id)
            .where(
                Product.vendor_id == vendor_id,
                Product.status == ProductStatus.ACTIVE,
                Variant.is_active.is_(True),
                Variant.on_hand - Variant.reserved >= quantity + 2,
                Variant.id.not_in(used or {0}),
            )
            .order_by(Variant.id)
            .limit(1)
        )
        db.session.rollback()
        if variant_id is None:
            raise RuntimeError(f"demo vendor {vendor_id} has nothing in stock to sell")
        used.add(variant_id)
        return variant_id

    def note(self, order_id: int, what: str) -> None:
        order = db.session.get(Order, order_id)
        self.told.append(f"order #{order_id} ({order.status.value}): {what}")
        db.session.rollback()
