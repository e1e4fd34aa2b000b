"""Order lookup for admins: search, and one order's timeline in time order (status changes of
the order and each vendor part, the payment, captures, transfers, refunds, reversals,
disputes, emails and notifications)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from marketplace.accounts.models import User
from marketplace.catalog.models import Vendor
from marketplace.db import db
from marketplace.errors import NotFound
from marketplace.money import shop_money
from marketplace.notifications.models import Notification, SentEmail
from marketplace.orders.models import Order, OrderHistory, OrderStatus, VendorOrder
from marketplace.payments.models import Dispute, Payment
from marketplace.payouts.models import Refund, Transfer


class OrderNotFound(NotFound):
    code, message = "order_not_found", "Order not found."


@dataclass
class Found:
    order: Order
    buyer_email: str


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"


def search(
    *,
    order_id: int | None = None,
    buyer_email: str | None = None,
    vendor: str | None = None,
    status: OrderStatus | None = None,
    since: date | None = None,
    until: date | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[Found], int]:
    """Orders newest first. `vendor` matches part of a vendor's name; `until` is inclusive."""
    query = select(Order, User.email).join(User, User.id == Order.buyer_id)
    if order_id is not None:
        query = query.where(Order.id == order_id)
    if buyer_email:
        query = query.where(func.lower(User.email).like(_like(buyer_email)))
    if vendor:
        parts = (
            select(VendorOrder.order_id)
            .join(Vendor, Vendor.id == VendorOrder.vendor_id)
            .where(func.lower(Vendor.display_name).like(_like(vendor)))
        )
        query = query.where(Order.id.in_(parts))
    if status is not None:
        query = query.where(Order.status == status)
    if since:
        query = query.where(Order.created_at >= datetime.combine(since, time.min, tzinfo=UTC))
    if until and until < date.max:
        end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
        query = query.where(Order.created_at < end)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.execute(
        query.order_by(Order.created_at.desc(), Order.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return [Found(order, email) for order, email in rows], int(total or 0)


@dataclass
class Event:
    at: datetime
    kind: str  # status, payment, capture, transfer, refund, reversal, dispute, email, notification
    part: int | None  # the vendor order's id, None for the whole order
    text: str


@dataclass
class OrderFile:
    order: Order
    buyer: User
    payment: Payment | None
    events: list[Event] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)


def _money(cents: int, currency: str) -> str:
    return shop_money(cents, currency)


def order_file(order_id: int) -> OrderFile:
    """The order, its parts and everything that happened to them, oldest first.

    :raises OrderNotFound:
    """
    order = db.session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .options(
            selectinload(Order.vendor_orders).selectinload(VendorOrder.vendor),
            selectinload(Order.vendor_orders).selectinload(VendorOrder.items),
        )
    )
    if order is None:
        raise OrderNotFound()
    buyer = db.session.get(User, order.buyer_id)
    part_ids = [vo.id for vo in order.vendor_orders]
    cur = order.currency
    found = OrderFile(
        order, buyer, db.session.scalar(select(Payment).where(Payment.order_id == order.id))
    )
    events = found.events
    events.append(
        Event(order.created_at, "status", None, f"Order placed: {_money(order.total_cents, cur)}")
    )
    for row in db.session.scalars(
        select(OrderHistory).where(OrderHistory.order_id == order.id).order_by(OrderHistory.id)
    ):
        reason = f" ({row.reason})" if row.reason else ""
        events.append(
            Event(
                row.created_at,
                "status",
                row.vendor_order_id,
                f"{row.from_status or '—'} → {row.to_status} by {row.actor}{reason}",
            )
        )
    payment = found.payment
    if payment is not None:
        events.append(
            Event(
                payment.created_at,
                "payment",
                None,
                f"Payment {payment.payment_intent_id} for {_money(payment.amount_cents, cur)}",
            )
        )
        if payment.authorized_at:
            events.append(
                Event(
                    payment.authorized_at,
                    "payment",
                    None,
                    f"Authorized {_money(payment.amount_authorized_cents, cur)}",
                )
            )
        if payment.captured_at:
            events.append(
                Event(
                    payment.captured_at,
                    "capture",
                    None,
                    f"Captured {_money(payment.amount_captured_cents, cur)}",
                )
            )
        if payment.void_refused_at:
            events.append(
                Event(
                    payment.void_refused_at, "payment", None, f"Void refused: {payment.last_error}"
                )
            )
    if part_ids:
        for transfer in db.session.scalars(
            select(Transfer).where(Transfer.vendor_order_id.in_(part_ids)).order_by(Transfer.id)
        ):
            found.transfers.append(transfer)
            events.append(
                Event(
                    transfer.sent_at or transfer.created_at,
                    "transfer",
                    transfer.vendor_order_id,
                    f"Transfer {_money(transfer.amount_cents, cur)} {transfer.status.value}"
                    + (f": {transfer.failure_reason}" if transfer.failure_reason else ""),
                )
            )
        for refund in db.session.scalars(
            select(Refund).where(Refund.vendor_order_id.in_(part_ids)).order_by(Refund.id)
        ):
            found.refunds.append(refund)
            events.append(
                Event(
                    refund.created_at,
                    "refund",
                    refund.vendor_order_id,
                    f"Refund {_money(refund.amount_cents, cur)} {refund.status.value} "
                    f"by {refund.actor}: {refund.reason}",
                )
            )
            if refund.transfer_reversal_cents:
                events.append(
                    Event(
                        refund.created_at,
                        "reversal",
                        refund.vendor_order_id,
                        f"Transfer reversal {_money(refund.transfer_reversal_cents, cur)}"
                        + (" (sent)" if refund.stripe_reversal_id else " (waiting)"),
                    )
                )
    dispute_ids = []
    for dispute in db.session.scalars(
        select(Dispute).where(Dispute.order_id == order.id).order_by(Dispute.id)
    ):
        dispute_ids.append(dispute.id)
        events.append(
            Event(
                dispute.created_at,
                "dispute",
                None,
                f"Dispute {_money(dispute.amount_cents, cur)} ({dispute.reason or 'no reason'}): "
                f"{dispute.status.value}",
            )
        )
        if dispute.closed_at:
            events.append(Event(dispute.closed_at, "dispute", None, "Dispute closed"))
    keys = [f"{kind}:{order.id}:%" for kind in _ORDER_KINDS]
    keys += [f"%:vo:{part}:user:%" for part in part_ids]
    keys += [f"{kind}:{refund.id}:%" for kind in _REFUND_KINDS for refund in found.refunds]
    keys += [f"transfer_refused:{transfer.id}:%" for transfer in found.transfers]
    keys += [f"{kind}:{dispute_id}:%" for kind in _DISPUTE_KINDS for dispute_id in dispute_ids]
    for email in db.session.scalars(
        select(SentEmail).where(or_(*(SentEmail.key.like(k) for k in keys)))
    ):
        events.append(
            Event(
                email.sent_at or email.claimed_at,
                "email",
                _part_of(email.key),
                f"Email to {email.to_address}: {email.subject}"
                + ("" if email.sent_at else " (not sent yet)"),
            )
        )
    for note in db.session.scalars(
        select(Notification).where(or_(*(Notification.key.like(k) for k in keys)))
    ):
        events.append(Event(note.created_at, "notification", _part_of(note.key), note.title))
    events.sort(key=lambda event: event.at)
    return found


# The keys notifications.services gives an order's messages: "<kind>:<id>:…" per subject.
_ORDER_KINDS = (
    "order_paid",
    "reservation_expired",
    "payment_failed",
    "payment_voided",
    "payment_lapsed",
    "capture_refused",
    "void_refused",
    "refunded_outside",
)
_REFUND_KINDS = ("refund", "refund_refused", "reversal_refused")
_DISPUTE_KINDS = ("dispute_opened", "dispute_closed")


def is_part_of(order_id: int, vendor_order_id: int) -> bool:
    """Whether the vendor order belongs to the order (the refund routes name both)."""
    found = db.session.get(VendorOrder, vendor_order_id)
    return found is not None and found.order_id == order_id


def _part_of(key: str) -> int | None:
    parts = key.split(":")
    if len(parts) > 2 and parts[1] == "vo" and parts[2].isdigit():
        return int(parts[2])
    return None


def timeline_json(found: OrderFile) -> list[dict[str, Any]]:
    return [
        {"at": e.at.isoformat(), "kind": e.kind, "vendor_order_id": e.part, "text": e.text}
        for e in found.events
    ]
