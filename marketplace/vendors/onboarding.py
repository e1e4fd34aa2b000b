"""Stripe Connect onboarding pages: start, refresh (a new single-use link), return."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, url_for
from flask_login import current_user, login_required

from marketplace.accounts.models import Role
from marketplace.catalog.services import vendor_for_user
from marketplace.payments import services as payments
from marketplace.payments.gateway import PaymentProviderError, PaymentProviderRejected
from marketplace.vendors import bp


def _vendor_id() -> int:
    if current_user.role is not Role.VENDOR:
        abort(403)
    return vendor_for_user(current_user.id).id


def _link() -> Any:
    try:
        _, url = payments.start_onboarding(
            _vendor_id(),
            refresh_url=url_for("vendors.onboarding_refresh", _external=True),
            return_url=url_for("vendors.onboarding_return", _external=True),
        )
    except (PaymentProviderError, PaymentProviderRejected) as error:
        flash(error.message, "error")
        return redirect(url_for("vendors.onboarding_return"))
    return redirect(url)


@bp.post("/onboarding/start")
@login_required
def onboarding_start() -> Any:
    return _link()


@bp.get("/onboarding/refresh")
@login_required
def onboarding_refresh() -> Any:
    """Stripe sends the vendor here when a link expired. A GET never creates an account (any
    page could embed it): without one, back to the dashboard's button."""
    if vendor_for_user(current_user.id).stripe_account_id is None:
        return redirect(url_for("vendors.dashboard"))
    return _link()


@bp.get("/onboarding/return")
@login_required
def onboarding_return() -> Any:
    try:
        vendor = payments.refresh_account(_vendor_id())
    except (PaymentProviderError, PaymentProviderRejected) as error:
        flash(error.message, "error")
        return redirect("/vendor/")
    if vendor.payouts_enabled:
        flash("Your Stripe account is ready: you can receive payouts.", "success")
    else:
        flash("Stripe still needs some details before you can receive payouts.", "error")
    return redirect("/vendor/")
