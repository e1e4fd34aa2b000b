"""Guest checkout (HTML only): an email instead of an account, the receipt link, the account after.

`/checkout/guest` makes a guest buyer for the email and logs this browser in as it, which
moves the session cart into the guest's cart; from there it is the buyers' checkout, pay and
order pages, through the same services. docs/checkout.md says why guests are users.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from marketplace.accounts import guests
from marketplace.accounts.services import EmailTaken
from marketplace.buyers import bp
from marketplace.buyers.account_forms import GuestCheckoutForm, KeepOrderForm
from marketplace.buyers.routes import _start_session
from marketplace.errors import DomainError
from marketplace.forms import add_domain_error
from marketplace.orders import services as orders
from marketplace.ratelimits import guest_checkout_limit

TAKEN = (
    "An account with this email exists already: log in to it to see its orders. "
    "This guest order stays on its own; the link in its receipt email opens it."
)


def _is_guest() -> bool:
    return bool(current_user.is_authenticated and current_user.is_guest)


@bp.route("/checkout/guest", methods=["GET", "POST"])
@guest_checkout_limit
def guest_checkout() -> Any:
    """The email form; then the checkout form as for any buyer."""
    if current_user.is_authenticated and not _is_guest():
        return redirect(url_for("buyers.checkout"))
    form = GuestCheckoutForm()
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("buyers/guest_checkout.html", form=form), status
    try:
        guest = guests.start(form.email.data)
    except DomainError as error:
        status = add_domain_error(form, error)
        return render_template("buyers/guest_checkout.html", form=form), status
    _start_session(guest)  # the session cart moves into the guest's cart
    flash(f"Checking out as a guest: the receipt goes to {guest.email}.", "success")
    return redirect(url_for("buyers.checkout"))


@bp.get("/orders/<int:order_id>/receipt/<token>")
def guest_receipt(order_id: int, token: str) -> Any:
    """The receipt email's link: opens the guest's order in this browser, no account needed."""
    try:
        guest = guests.open_link(token, order_id)
        orders.buyer_order(guest.id, order_id)
    except (guests.GuestLinkInvalid, guests.GuestLinkExpired, orders.OrderNotFound) as error:
        message = error.message
        if isinstance(error, orders.OrderNotFound):
            message = guests.GuestLinkInvalid.message
        return render_template("error.html", status=400, message=message), 400
    if not (current_user.is_authenticated and current_user.id == guest.id):
        _start_session(guest)
    return redirect(url_for("buyers.order_detail", order_id=order_id))


@bp.route("/account/keep", methods=["GET", "POST"])
@login_required
def guest_keep() -> Any:
    """ "Set a password to keep track of this order": the guest becomes a buyer account."""
    if not _is_guest():
        return redirect(url_for("buyers.account"))
    form = KeepOrderForm()
    taken = guests.has_account(current_user.email)
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("buyers/guest_keep.html", form=form, taken=taken), status
    try:
        user = guests.claim(current_user.id, form.password.data)
    except EmailTaken:
        form.form_errors.append(TAKEN)
        return render_template("buyers/guest_keep.html", form=form, taken=True), 409
    except DomainError as error:
        status = add_domain_error(form, error)
        return render_template("buyers/guest_keep.html", form=form, taken=taken), status
    _start_session(user)
    flash(
        "Your account is ready and your orders are in it; we sent you a link to confirm "
        "your email. Next time, log in with your email and this password.",
        "success",
    )
    return redirect(url_for("buyers.order_list"))
