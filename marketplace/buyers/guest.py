"""Guest checkout (HTML only): an email instead of an account, the receipt link, the account after.

`/checkout/guest` makes a guest buyer for the email and logs this browser in as it, which
moves the session cart into the guest's cart; from there it is the buyers' checkout, pay and
order pages, through the same services. docs/checkout.md says why guests are users.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from marketplace.accounts import guests
from marketplace.accounts.models import User
from marketplace.accounts.services import EmailTaken
from marketplace.buyers import bp
from marketplace.buyers.account_forms import ButtonForm, GuestCheckoutForm, KeepOrderForm
from marketplace.buyers.routes import RECEIPTS, _start_session
from marketplace.errors import DomainError
from marketplace.forms import add_domain_error
from marketplace.orders import guest_orders
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
    if _is_account_of(guest):  # the account with this email: offer to attach, stay logged in
        return redirect(url_for("buyers.guest_attach", order_id=order_id, token=token))
    if not (current_user.is_authenticated and current_user.id == guest.id):
        _start_session(guest)
    # The link is the proof of owning the order: kept in the session (through a login too) to
    # offer attaching the order to the account with this email.
    session[RECEIPTS] = {**session.get(RECEIPTS, {}), str(order_id): token}
    return redirect(url_for("buyers.order_detail", order_id=order_id))


def _is_account_of(guest: User) -> bool:
    return bool(
        current_user.is_authenticated
        and not current_user.is_guest
        and current_user.email == guest.email
    )


def receipt_link_for(order_id: int) -> str | None:
    """The attach page of this order, if this session opened its receipt link."""
    token = session.get(RECEIPTS, {}).get(str(order_id))
    return url_for("buyers.guest_attach", order_id=order_id, token=token) if token else None


def attach_offers() -> list[tuple[int, str]]:
    """(order id, attach page) for each guest order whose receipt link this session opened
    and that the logged-in account may attach (same email); shown on "Your orders"."""
    offers = []
    for order_id, token in sorted(session.get(RECEIPTS, {}).items()):
        try:
            guests.attachable(token, int(order_id), current_user)
        except DomainError:
            continue
        offers.append(
            (int(order_id), url_for("buyers.guest_attach", order_id=order_id, token=token))
        )
    return offers


@bp.route("/orders/<int:order_id>/attach/<token>", methods=["GET", "POST"])
def guest_attach(order_id: int, token: str) -> Any:
    """Attach a guest order (and the other orders of that guest checkout) to the account with
    the same email; the receipt link proves the order is the reader's (docs/checkout.md)."""
    try:
        guest = guests.open_link(token, order_id)
    except (guests.GuestLinkInvalid, guests.GuestLinkExpired) as error:
        return render_template("error.html", status=400, message=error.message), 400
    form = ButtonForm()
    if not _is_account_of(guest):
        login = url_for("buyers.login", next=request.path)
        return render_template(
            "buyers/guest_attach.html", order_id=order_id, email=guest.email, login=login
        ), (200 if request.method == "GET" else 403)
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template(
            "buyers/guest_attach.html", order_id=order_id, email=guest.email, form=form
        ), status
    try:
        moved = guest_orders.attach_orders(current_user.id, token, order_id)
    except DomainError as error:
        return render_template("error.html", status=error.status, message=error.message), (
            error.status
        )
    receipts = session.get(RECEIPTS, {})
    session[RECEIPTS] = {k: v for k, v in receipts.items() if int(k) not in moved}
    numbers = ", ".join(f"#{n}" for n in moved)
    flash(f"Order {numbers} is now in your account.", "success")
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
