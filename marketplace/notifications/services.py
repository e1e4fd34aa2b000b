"""Notifications for order events: an in-app entry and an email per recipient, once each.

Jobs call these with ids after the state change committed (through the outbox). Every
recipient's notification and email carry a key like `shipped:vo:12:user:3`, so a job that
runs twice, or a row re-dispatched after a Redis outage, never notifies twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from operator import attrgetter
from typing import Any

from flask import render_template
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from marketplace.accounts import guests, passwords, verification
from marketplace.accounts.models import PasswordReset, Role, User
from marketplace.catalog.models import Variant, Vendor
from marketplace.db import db, insert_unless_present, transaction, utcnow
from marketplace.links import absolute, external_url
from marketplace.money import shop_money
from marketplace.notifications import mail
from marketplace.notifications.models import Notification, SentEmail
from marketplace.orders.models import Order, OrderItem, VendorOrder

log = logging.getLogger(__name__)

RECLAIM_AFTER = timedelta(minutes=5)


class EmailInFlight(RuntimeError):
    """The email's key is claimed by an attempt that has not sent it yet (the job retries)."""


@dataclass
class Message:
    key: str
    user: User
    kind: str
    title: str
    lines: list[str] = field(default_factory=list)
    items: list[OrderItem] = field(default_factory=list)
    link: str | None = None
    currency: str = "usd"
    # A link for the email only (it carries a secret the in-app entry must not show).
    email_link: str | None = None


def deliver(message: Message) -> bool:
    """Record the in-app notification and send the email, each at most once per key.

    The notification and the email's claim go in one transaction, and what the caller loaded
    stays loaded across this function's commits: a job sending several messages about one
    order used to read the order back after each of them.
    """
    with transaction(keep_loaded=True):
        db.session.execute(
            insert_unless_present(
                Notification,
                ["key"],
                user_id=message.user.id,
                key=message.key,
                kind=message.kind,
                title=message.title,
                body="\n".join(message.lines),
                link=message.link,
            )
        )
        claimed = db.session.execute(
            insert_unless_present(
                SentEmail,
                ["key"],
                key=message.key,
                to_address=message.user.email,
                subject=message.title,
            ).returning(SentEmail.id)
        ).scalar_one_or_none()
    if claimed is None and not _reclaim_email(message.key):
        if _email_sent(message.key):
            return False
        # Another attempt holds a recent claim and has not sent yet (it may still be sending,
        # or its worker died). Completing now would lose the email: fail so the job is retried,
        # and a retry after RECLAIM_AFTER takes the claim over.
        raise EmailInFlight(message.key)
    context: dict[str, Any] = {
        "name": message.user.name,
        "title": message.title,
        "lines": message.lines,
        "items": [_item_view(i) for i in message.items],
        "link": absolute(link) if (link := message.email_link or message.link) else None,
        "currency": message.currency,
    }
    email = mail.build(
        message.user.email,
        message.title,
        render_template("email/message.txt", **context),
        render_template("email/message.html", **context),
    )
    try:
        mail.send(email, message.key)
    except Exception:
        with transaction(keep_loaded=True):  # let a retry claim it again
            db.session.execute(
                update(SentEmail)
                .where(SentEmail.key == message.key, SentEmail.sent_at.is_(None))
                .values(claimed_at=utcnow() - RECLAIM_AFTER)
            )
        raise
    with transaction(keep_loaded=True):
        db.session.execute(
            update(SentEmail).where(SentEmail.key == message.key).values(sent_at=utcnow())
        )
    return True


def _reclaim_email(key: str) -> bool:
    """Take over a claim older than RECLAIM_AFTER whose email was never marked sent."""
    stale = utcnow() - RECLAIM_AFTER
    with transaction(keep_loaded=True):
        reclaimed = db.session.execute(
            update(SentEmail)
            .where(
                SentEmail.key == key,
                SentEmail.sent_at.is_(None),
                SentEmail.claimed_at <= stale,
            )
            .values(claimed_at=utcnow(), attempts=SentEmail.attempts + 1)
        )
    return reclaimed.rowcount == 1


def _email_sent(key: str) -> bool:
    sent_at = db.session.scalar(select(SentEmail.sent_at).where(SentEmail.key == key))
    return sent_at is not None


def _item_view(item: OrderItem) -> dict[str, Any]:
    return {
        "quantity": item.quantity,
        "title": item.title,
        "sku": item.sku,
        "line_total_cents": item.line_total_cents,
    }


def _vendor_user(vendor_id: int) -> User:
    return db.session.get(Vendor, vendor_id).user


def _money(cents: int, order: Order) -> str:
    return shop_money(cents, order.currency)


# --- accounts ------------------------------------------------------------------------------


def password_reset(reset_id: int) -> None:
    """The reset link, unless it was used or expired before the job ran."""
    reset = db.session.get(PasswordReset, reset_id)
    if reset is None or reset.used_at is not None or reset.expires_at <= utcnow():
        return
    user = db.session.get(User, reset.user_id)
    deliver(
        Message(
            key=f"password_reset:{reset.id}:user:{user.id}",
            user=user,
            kind="password_reset",
            title="Reset your password",
            lines=[
                "Someone (we hope you) asked to reset the password of your account.",
                "The link works once, for one hour. If it was not you, ignore this email.",
            ],
            email_link=external_url("buyers.reset_password", token=passwords.reset_token(reset)),
        )
    )


def email_verification(user_id: int, nonce: str) -> None:
    """A link that confirms the user's email address (one email per request for one)."""
    user = db.session.get(User, user_id)
    if user is None or user.email_verified_at is not None:
        return
    deliver(
        Message(
            key=f"verify_email:{nonce}:user:{user.id}",
            user=user,
            kind="verify_email",
            title="Confirm your email address",
            lines=[f"Open the link below to confirm that {user.email} is yours."],
            email_link=external_url("buyers.verify_email", token=verification.token_for(user)),
        )
    )


def password_changed(user_id: int, nonce: str) -> None:
    """Tell the user their password changed, in case it was not them."""
    user = db.session.get(User, user_id)
    if user is None:
        return
    deliver(
        Message(
            key=f"password_changed:{nonce}:user:{user.id}",
            user=user,
            kind="password_changed",
            title="Your password was changed",
            lines=[
                "The password of your account was just changed, and every other session "
                "and API token was logged out.",
                "If it was not you, reset your password now and tell us.",
            ],
            email_link=external_url("buyers.forgot_password"),
        )
    )


# --- events --------------------------------------------------------------------------------


def order_paid(order_id: int) -> None:
    """Confirmation to the buyer; each vendor hears of the new order with only its lines.

    The order comes with its parts and items in one statement, and stays loaded across the
    messages' commits (`deliver`).
    """
    order = (
        db.session.scalars(
            select(Order)
            .where(Order.id == order_id)
            .options(joinedload(Order.vendor_orders).joinedload(VendorOrder.items))
        )
        .unique()
        .one()
    )
    items = sorted((item for vo in order.vendor_orders for item in vo.items), key=attrgetter("id"))
    buyer = db.session.get(User, order.buyer_id)
    lines = [
        f"We received your payment of {_money(order.total_cents, order)}.",
        f"{len(order.vendor_orders)} seller(s) will ship your items.",
    ]
    if order.reverse_charge:
        lines.append(
            f"VAT reverse charged: no VAT was charged; as a business with VAT number "
            f"{order.vat_number}, you account for it."
        )
    elif order.tax_cents:
        included = " (included in the prices)" if order.prices_include_tax else ""
        lines.append(f"Tax {_money(order.tax_cents, order)}{included}.")
    receipt_link = None
    if buyer.is_guest:
        # The guest has no password: the signed link is their way back to the order.
        receipt_link = external_url(
            "buyers.guest_receipt", order_id=order.id, token=guests.order_token(buyer.id, order.id)
        )
        days = guests.LINK_MAX_AGE.days
        lines.append(f"You checked out as a guest: the link below opens your order ({days} days).")
        if guests.has_account(buyer.email):
            lines.append(
                "This email has an account with us; this guest order is not in it. "
                "Log in to your account to see its orders."
            )
        else:
            lines.append("On the order page you can set a password to keep it in an account.")
    deliver(
        Message(
            key=f"order_paid:{order.id}:user:{buyer.id}",
            user=buyer,
            kind="order_confirmed",
            title=f"Order #{order.id} confirmed",
            lines=lines,
            items=items,
            link=f"/orders/{order.id}",
            currency=order.currency,
            email_link=receipt_link,
        )
    )
    for vendor_order in order.vendor_orders:
        vendor_user = _vendor_user(vendor_order.vendor_id)
        deliver(
            Message(
                key=f"new_order:vo:{vendor_order.id}:user:{vendor_user.id}",
                user=vendor_user,
                kind="new_order",
                title=f"New order #{vendor_order.id} to ship",
                lines=[
                    f"Items {_money(vendor_order.subtotal_cents, order)}, shipping "
                    f"{_money(vendor_order.shipping_cents, order)}; you earn "
                    f"{_money(vendor_order.vendor_earnings_cents, order)}.",
                ],
                items=list(vendor_order.items),
                link=f"/vendor/orders/{vendor_order.id}",
                currency=order.currency,
            )
        )


def _buyer_message(vendor_order: VendorOrder, kind: str, title: str, lines: list[str]) -> None:
    order = vendor_order.order
    buyer = db.session.get(User, order.buyer_id)
    deliver(
        Message(
            key=f"{kind}:vo:{vendor_order.id}:user:{buyer.id}",
            user=buyer,
            kind=kind,
            title=title,
            lines=lines,
            items=list(vendor_order.items),
            link=f"/orders/{order.id}",
            currency=order.currency,
        )
    )


def vendor_order_shipped(vendor_order_id: int) -> None:
    vendor_order = db.session.get(VendorOrder, vendor_order_id)
    _buyer_message(
        vendor_order,
        "shipped",
        f"Your items from {vendor_order.vendor.display_name} are on their way",
        [f"Carrier: {vendor_order.carrier}, tracking number: {vendor_order.tracking_number}."],
    )


def vendor_order_delivered(vendor_order_id: int) -> None:
    vendor_order = db.session.get(VendorOrder, vendor_order_id)
    _buyer_message(
        vendor_order,
        "delivered",
        f"Your items from {vendor_order.vendor.display_name} were delivered",
        ["You can now review what you bought, or ask for a return."],
    )


def vendor_order_cancelled(vendor_order_id: int) -> None:
    vendor_order = db.session.get(VendorOrder, vendor_order_id)
    reason = vendor_order.cancel_reason or "cancelled"
    _buyer_message(
        vendor_order,
        "cancelled",
        f"Part of order #{vendor_order.order_id} was cancelled",
        [
            f"{vendor_order.vendor.display_name} will not ship these items ({reason}).",
            "You are not charged for them.",
        ],
    )
    vendor_user = _vendor_user(vendor_order.vendor_id)
    deliver(
        Message(
            key=f"cancelled:vo:{vendor_order.id}:user:{vendor_user.id}",
            user=vendor_user,
            kind="cancelled",
            title=f"Order #{vendor_order.id} was cancelled",
            lines=[f"Reason: {reason}. Its stock is back on hand."],
            items=list(vendor_order.items),
            link=f"/vendor/orders/{vendor_order.id}",
            currency=vendor_order.order.currency,
        )
    )


def refund_issued(refund_id: int) -> None:
    from marketplace.payouts.models import Refund

    refund = db.session.get(Refund, refund_id)
    vendor_order = db.session.get(VendorOrder, refund.vendor_order_id)
    order = vendor_order.order
    buyer = db.session.get(User, order.buyer_id)
    deliver(
        Message(
            key=f"refund:{refund.id}:user:{buyer.id}",
            user=buyer,
            kind="refund",
            title=f"Refund of {_money(refund.amount_cents, order)} for order #{order.id}",
            lines=[f"Reason: {refund.reason}.", "It reaches your card in 5–10 business days."],
            link=f"/orders/{order.id}",
            currency=order.currency,
        )
    )


def _order_message(order_id: int, kind: str, title: str, lines: list[str]) -> None:
    order = db.session.get(Order, order_id)
    buyer = db.session.get(User, order.buyer_id)
    deliver(
        Message(
            key=f"{kind}:{order.id}:user:{buyer.id}",
            user=buyer,
            kind=kind,
            title=title,
            lines=lines,
            items=list(order.items),
            link=f"/orders/{order.id}",
            currency=order.currency,
        )
    )


def reservation_expired(order_id: int) -> None:
    _order_message(
        order_id,
        "reservation_expired",
        f"Order #{order_id} expired",
        ["We held your items for a while but no payment arrived, so the order was cancelled."],
    )


def payment_failed(order_id: int) -> None:
    _order_message(
        order_id,
        "payment_failed",
        f"Payment for order #{order_id} failed",
        ["Your card was declined. Your items are back in your cart: try another card."],
    )


def payment_voided(order_id: int) -> None:
    _order_message(
        order_id,
        "payment_voided",
        f"Order #{order_id} could not be completed",
        ["Your payment arrived after the items sold out. Nothing was charged."],
    )


def low_stock(variant_id: int) -> None:
    variant = db.session.get(Variant, variant_id)
    if variant.available > variant.low_stock_threshold:
        return
    vendor_user = _vendor_user(variant.vendor_id)
    deliver(
        Message(
            key=f"low_stock:{variant.id}:{variant.on_hand}:user:{vendor_user.id}",
            user=vendor_user,
            kind="low_stock",
            title=f"Low stock: {variant.product.title} ({variant.sku})",
            lines=[f"{variant.available} left to sell (threshold {variant.low_stock_threshold})."],
            link=f"/vendor/variants/{variant.id}/edit",
        )
    )


def notifications_for(user_id: int, limit: int = 50) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.id.desc())
            .limit(limit)
        )
    )


def mark_read(user_id: int, notification_id: int | None = None) -> int:
    with transaction():
        query = update(Notification).where(
            Notification.user_id == user_id, Notification.read_at.is_(None)
        )
        if notification_id is not None:
            query = query.where(Notification.id == notification_id)
        return db.session.execute(query.values(read_at=utcnow())).rowcount


def return_requested(return_id: int) -> None:
    from marketplace.orders.models import ReturnRequest

    request = db.session.get(ReturnRequest, return_id)
    vendor_user = _vendor_user(request.vendor_order.vendor_id)
    deliver(
        Message(
            key=f"return_requested:{request.id}:user:{vendor_user.id}",
            user=vendor_user,
            kind="return_requested",
            title=f"Return requested for order #{request.vendor_order_id}",
            lines=[f"{request.quantity} × {request.item.title}: {request.reason}"],
            link=f"/vendor/orders/{request.vendor_order_id}",
        )
    )


def return_decided(return_id: int) -> None:
    from marketplace.orders.models import ReturnRequest

    request = db.session.get(ReturnRequest, return_id)
    buyer = db.session.get(User, request.buyer_id)
    accepted = request.status.value == "accepted"
    deliver(
        Message(
            key=f"return_decided:{request.id}:user:{buyer.id}",
            user=buyer,
            kind="return_decided",
            title=f"Your return was {'accepted' if accepted else 'declined'}",
            lines=[
                f"{request.quantity} × {request.item.title}.",
                "A refund is on its way." if accepted else f"Reason: {request.decision_reason}",
            ],
            link=f"/orders/{request.item.order_id}",
        )
    )


# --- money steps Stripe said no to: the buyer where it changes their order, and the admins ----


def _alert_admins(key: str, kind: str, title: str, lines: list[str], link: str) -> None:
    admins = db.session.scalars(
        select(User).where(User.role == Role.ADMIN, User.active.is_(True)).order_by(User.id)
    ).all()
    for admin in admins:
        deliver(
            Message(
                key=f"{key}:user:{admin.id}",
                user=admin,
                kind=kind,
                title=title,
                lines=lines,
                link=link,
            )
        )


def payment_lapsed(order_id: int) -> None:
    order = db.session.get(Order, order_id)
    unpaid = [vo for vo in order.vendor_orders if vo.cancel_reason != "authorization_lapsed"]
    _order_message(
        order_id,
        "payment_lapsed",
        f"The payment for order #{order_id} expired",
        [
            "Your card's authorization ran out before the sellers shipped, so nothing was "
            "charged and the parts not yet shipped are cancelled.",
        ],
    )
    shipped = [vo for vo in unpaid if vo.shipped_at is not None]
    _alert_admins(
        f"payment_lapsed:{order_id}",
        "payment_lapsed",
        f"Order #{order_id}: the card authorization lapsed before capture",
        [
            "Stripe released the authorization; nothing can be captured for this order.",
            f"Parts shipped without payment: {', '.join(f'#{vo.id}' for vo in shipped)}."
            if shipped
            else "No part had shipped: every part was cancelled and restocked.",
        ],
        "/admin/reconciliation",
    )


def capture_refused(order_id: int) -> None:
    from marketplace.payments.models import Capture, CaptureStatus

    refused = db.session.scalar(
        select(Capture)
        .where(Capture.order_id == order_id, Capture.status == CaptureStatus.FAILED)
        .order_by(Capture.id.desc())
        .limit(1)
    )
    if refused is None:
        return
    _alert_admins(
        f"capture_refused:{order_id}:{refused.id}",
        "capture_refused",
        f"Order #{order_id}: Stripe refused the capture",
        [
            f"Stripe answered: {refused.failure_reason or 'no reason given'}.",
            "The authorization is still there; the capture is tried again before it lapses.",
        ],
        "/admin/reconciliation",
    )


def void_refused(order_id: int) -> None:
    from marketplace.payments.models import Payment

    payment = db.session.scalar(select(Payment).where(Payment.order_id == order_id))
    _alert_admins(
        f"void_refused:{order_id}:{payment.id}",
        "void_refused",
        f"Order #{order_id}: Stripe refused to cancel the authorization",
        [
            f"Stripe answered: {payment.last_error or 'no reason given'}.",
            "The hold is still on the buyer's card; the void is tried again every hour.",
        ],
        "/admin/reconciliation",
    )


def reversal_refused(refund_id: int) -> None:
    from marketplace.payouts.models import Refund

    refund = db.session.get(Refund, refund_id)
    vendor_order = db.session.get(VendorOrder, refund.vendor_order_id)
    _alert_admins(
        f"reversal_refused:{refund_id}",
        "reversal_refused",
        f"Refund #{refund_id}: Stripe refused to take the vendor's share back",
        [
            f"The buyer was refunded; {vendor_order.vendor.display_name} still holds "
            f"{_money(refund.transfer_reversal_cents, vendor_order.order)} of it.",
            f"Stripe answered: {refund.reversal_failure_reason or 'no reason given'}.",
        ],
        "/admin/reconciliation",
    )


def refund_refused(refund_id: int) -> None:
    from marketplace.payouts.models import Refund

    refund = db.session.get(Refund, refund_id)
    vendor_order = db.session.get(VendorOrder, refund.vendor_order_id)
    _alert_admins(
        f"refund_refused:{refund_id}",
        "refund_refused",
        f"Refund #{refund_id} for order #{vendor_order.order_id}: Stripe refused it",
        [
            f"{_money(refund.amount_cents, vendor_order.order)} was not refunded; nothing "
            "was booked. Asked by " + refund.actor + ".",
            f"Stripe answered: {refund.failure_reason or 'no reason given'}.",
        ],
        "/admin/reconciliation",
    )


def dispute_opened(dispute_id: int) -> None:
    from marketplace.payments.models import Dispute

    dispute = db.session.get(Dispute, dispute_id)
    order = db.session.get(Order, dispute.order_id)
    _alert_admins(
        f"dispute_opened:{dispute_id}",
        "dispute_opened",
        f"Order #{order.id}: the buyer disputed {_money(dispute.amount_cents, order)}",
        [
            f"Reason given: {dispute.reason or 'none'}. Stripe withdrew the amount until the "
            "bank decides; refunds on this charge and transfers not yet sent are on hold.",
        ],
        "/admin/reconciliation",
    )


def dispute_closed(dispute_id: int) -> None:
    from marketplace.payments.models import Dispute

    dispute = db.session.get(Dispute, dispute_id)
    order = db.session.get(Order, dispute.order_id)
    _alert_admins(
        f"dispute_closed:{dispute_id}",
        "dispute_closed",
        f"Order #{order.id}: the dispute was {dispute.status.value}",
        [
            "The funds are back in the platform's balance."
            if dispute.status.value == "won"
            else "The buyer keeps the disputed amount; it is booked as the platform's loss.",
        ],
        "/admin/reconciliation",
    )


def refunded_outside(order_id: int, refunded_cents: int) -> None:
    order = db.session.get(Order, order_id)
    _alert_admins(
        f"refunded_outside:{order_id}:{refunded_cents}",
        "refunded_outside",
        f"Order #{order_id}: refunded at Stripe outside the marketplace",
        [
            f"Stripe shows {_money(refunded_cents, order)} refunded on the charge, more than "
            "the refunds made here; the order's books do not include the difference.",
        ],
        "/admin/reconciliation",
    )


def dispute_return_refused(recovery_id: int) -> None:
    from marketplace.payouts.models import DisputeRecovery

    recovery = db.session.get(DisputeRecovery, recovery_id)
    vendor_order = db.session.get(VendorOrder, recovery.vendor_order_id)
    _alert_admins(
        f"dispute_return_refused:{recovery_id}",
        "dispute_return_refused",
        f"Vendor order #{vendor_order.id}: Stripe refused to give back a dispute share",
        [
            "The dispute was won, but nothing was sent back to "
            f"{vendor_order.vendor.display_name}: the share is still owed to it.",
            f"Stripe answered: {recovery.failure_reason or 'no reason given'}.",
            f"Try it again with POST /api/v1/admin/dispute-recoveries/{recovery_id}/retry.",
        ],
        "/admin/reconciliation",
    )


def transfer_refused(transfer_id: int) -> None:
    from marketplace.payouts.models import Transfer

    transfer = db.session.get(Transfer, transfer_id)
    vendor_order = db.session.get(VendorOrder, transfer.vendor_order_id)
    _alert_admins(
        f"transfer_refused:{transfer_id}",
        "transfer_refused",
        f"Vendor order #{vendor_order.id}: Stripe refused the vendor's transfer",
        [
            f"Nothing was sent to {vendor_order.vendor.display_name}.",
            f"Stripe answered: {transfer.failure_reason or 'no reason given'}.",
            f"Try it again with POST /api/v1/admin/transfers/{transfer_id}/retry.",
        ],
        "/admin/reconciliation",
    )
