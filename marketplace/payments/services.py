"""The order's payment record and the vendors' Connect accounts: the Stripe side only.

The steps that move an order's money (authorize, capture, transfer, refund) live in
`marketplace.settlement`, which calls this package; this package never calls back up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from marketplace.accounts.services import require_verified_email
from marketplace.catalog.models import Vendor
from marketplace.catalog.services import get_vendor
from marketplace.db import db, transaction
from marketplace.payments import gateway
from marketplace.payments.models import Payment, StripeEvent


def last_webhook() -> StripeEvent | None:
    """The Stripe event received last (None before the first)."""
    return db.session.scalar(select(StripeEvent).order_by(StripeEvent.received_at.desc()).limit(1))


def stripe_reachable() -> bool:
    return gateway.reachable()


def payment_of(order_id: int) -> Payment | None:
    return db.session.scalar(select(Payment).where(Payment.order_id == order_id))


def start_onboarding(vendor_id: int, refresh_url: str, return_url: str) -> tuple[str, str]:
    """Create the vendor's Express account (once) and a fresh onboarding link.

    :raises EmailNotVerified: with REQUIRE_EMAIL_VERIFICATION, until the email is confirmed.
    """
    vendor = get_vendor(vendor_id)
    require_verified_email(vendor.user_id)
    account_id = vendor.stripe_account_id
    email = vendor.user.email
    db.session.rollback()
    if account_id is None:
        account = gateway.create_express_account(vendor_id, email)
        with transaction():
            db.session.execute(
                update(Vendor)
                .where(Vendor.id == vendor_id, Vendor.stripe_account_id.is_(None))
                .values(stripe_account_id=account["id"])
            )
        account_id = get_vendor(vendor_id).stripe_account_id
    url = gateway.create_account_link(account_id, refresh_url, return_url)
    return account_id, url


def refresh_account(vendor_id: int) -> Vendor:
    """Re-read the vendor's account from Stripe (reaching return_url proves nothing)."""
    vendor = get_vendor(vendor_id)
    if vendor.stripe_account_id is None:
        return vendor
    account = gateway.retrieve_account(vendor.stripe_account_id)
    with transaction():
        vendor = get_vendor(vendor_id)
        vendor.payouts_enabled = gateway.account_is_payable(account)
    return vendor


def apply_account_update(account: dict[str, Any], happened_at: datetime) -> str:
    """`account.updated`: whether the vendor can be paid. An event older than the last one
    applied changes nothing (Stripe does not deliver events in order)."""
    vendor = db.session.scalar(select(Vendor).where(Vendor.stripe_account_id == account["id"]))
    if vendor is None:
        return "unknown_account"
    if vendor.stripe_account_event_at is not None and happened_at < vendor.stripe_account_event_at:
        return "ignored_out_of_order"
    vendor.payouts_enabled = gateway.account_is_payable(account)
    vendor.stripe_account_event_at = happened_at
    return "account_updated"
