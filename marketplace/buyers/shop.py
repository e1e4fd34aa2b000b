"""Cart, checkout, payment hand-off and the buyer's orders (HTML).

Guests keep a cart in their session (variant id → quantity, with the price seen); it merges
into their database cart when they log in, quantities adding up, capped by availability.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, user_logged_in

from marketplace.accounts import guests
from marketplace.accounts.models import Role, User
from marketplace.buyers import bp
from marketplace.buyers.account_forms import KeepOrderForm
from marketplace.buyers.guest import attach_offers, receipt_link_for
from marketplace.buyers.shop_forms import (
    AddToCartForm,
    CheckoutForm,
    ConfirmForm,
    CouponForm,
    QuantityForm,
    ReturnForm,
    ReviewForm,
)
from marketplace.cart import services as carts
from marketplace.coupons.pricing import CouponNotApplicable
from marketplace.db import db
from marketplace.errors import DomainError, ValidationFailed
from marketplace.notifications import services as notifications
from marketplace.orders import returns, shipping_checks
from marketplace.orders import services as orders
from marketplace.orders.models import VendorOrderStatus
from marketplace.ratelimits import cart_limit, checkout_limit
from marketplace.reviews import services as reviews
from marketplace.reviews.models import Review
from marketplace.settlement import authorize

GUEST_CART = "guest_cart"
COUPON = "coupon_code"  # the code the buyer applied in the cart, kept for checkout
MAX_PAGE = 10**6  # far past any real history; keeps OFFSET within the database's integers


# --- guest cart ----------------------------------------------------------------------------


def _is_buyer() -> bool:
    return current_user.is_authenticated and current_user.role is Role.BUYER


def _guest_lines() -> dict[str, int]:
    return dict(session.get(GUEST_CART) or {})


@bp.before_app_request
def _remember_guest_cart() -> None:
    # The login view clears the session (no fixation); keep the guest cart for the merge.
    g.guest_cart = _guest_lines()


@user_logged_in.connect
def _merge_guest_cart(sender: Any, user: User, **extra: Any) -> None:
    lines = g.get("guest_cart") or {}
    session.pop(GUEST_CART, None)
    if user.role is Role.BUYER and lines:
        carts.merge_guest_lines(user.id, [(int(v), int(q)) for v, q in lines.items()])


# --- cart ----------------------------------------------------------------------------------


@bp.get("/cart")
def cart() -> Any:
    if current_user.is_authenticated and not _is_buyer():
        abort(403)
    coupon_form = None
    if _is_buyer():
        page = orders.cart_page(current_user.id, session.get(COUPON))
        coupon_form = CouponForm(coupon_code=session.get(COUPON))
        if page.coupon_error:
            coupon_form.coupon_code.errors = [page.coupon_error]
    else:
        page = orders.guest_cart_page([(int(v), int(q)) for v, q in _guest_lines().items()])
    return render_template(
        "buyers/cart.html",
        page=page,
        guest=not _is_buyer(),
        coupon_form=coupon_form,
        shipping_notes=shipping_checks.summaries(page.quote),
    )


@bp.post("/cart/coupon")
@cart_limit
@login_required
def cart_coupon() -> Any:
    """Apply a coupon code to the cart (shown with its discount) or remove it."""
    if not _is_buyer():
        abort(403)
    form = CouponForm()
    if not form.validate_on_submit():
        flash("A coupon code is at most 40 characters.", "error")
        return redirect(url_for("buyers.cart"))
    code = (form.coupon_code.data or "").strip().upper()
    if request.form.get("action") == "remove" or not code:
        session.pop(COUPON, None)
        flash("Coupon removed.", "success")
    else:
        session[COUPON] = code
        page = orders.cart_page(current_user.id, code)
        if page.coupon_error:
            flash(page.coupon_error, "error")
        else:
            flash(f"Coupon {code} applied.", "success")
    return redirect(url_for("buyers.cart"))


@bp.post("/cart/add")
@cart_limit
def cart_add() -> Any:
    form = AddToCartForm()
    back = request.referrer or url_for("buyers.cart")
    if not form.validate_on_submit():
        flash("Choose an option and a quantity from 1 to 100.", "error")
        return redirect(back)
    try:
        if _is_buyer():
            carts.add_item(current_user.id, form.variant_id.data, form.quantity.data)
        elif current_user.is_authenticated:
            abort(403)
        else:
            _guest_add(form.variant_id.data, form.quantity.data)
    except DomainError as error:
        flash(error.message, "error")
        return redirect(back)
    flash("Added to your cart.", "success")
    return redirect(url_for("buyers.cart"))


def _guest_add(variant_id: int, quantity: int) -> None:
    variant = carts.sellable_variant(variant_id)
    lines = _guest_lines()
    wanted = lines.get(str(variant_id), 0) + quantity
    if wanted > min(variant.available, carts.MAX_QUANTITY):
        raise carts.InsufficientStock(details={"available": variant.available})
    lines[str(variant_id)] = wanted
    session[GUEST_CART] = lines


@bp.post("/cart/items/<int:item_id>")
@cart_limit
def cart_update(item_id: int) -> Any:
    form = QuantityForm()
    if not form.validate_on_submit():
        flash("Quantity must be between 0 and 100.", "error")
        return redirect(url_for("buyers.cart"))
    try:
        if _is_buyer():
            carts.set_quantity(current_user.id, item_id, form.quantity.data)
        else:
            lines = _guest_lines()
            if str(item_id) not in lines:
                abort(404)
            if form.quantity.data == 0:
                lines.pop(str(item_id))
            else:
                variant = carts.sellable_variant(item_id)
                if form.quantity.data > variant.available:
                    raise carts.InsufficientStock()
                lines[str(item_id)] = form.quantity.data
            session[GUEST_CART] = lines
    except DomainError as error:
        flash(error.message, "error")
    return redirect(url_for("buyers.cart"))


# --- checkout and payment ------------------------------------------------------------------


@bp.route("/checkout", methods=["GET", "POST"])
@checkout_limit
@login_required
def checkout() -> Any:
    """The address form with the cart per vendor. "Show shipping and tax" re-renders it with
    the quote; "Place order and pay" places the order if it still costs what was shown."""
    if not _is_buyer():
        abort(403)
    form = CheckoutForm()
    if request.method == "GET":
        form.idempotency_key.data = uuid.uuid4().hex
        form.coupon_code.data = session.get(COUPON)
        return _checkout_page(form, _cart_quote(session.get(COUPON)))
    if not form.validate_on_submit():
        return _checkout_page(form, _cart_quote(session.get(COUPON)), 422)
    coupon_code = (form.coupon_code.data or "").strip().upper() or None
    vat_number = (form.vat_number.data or "").strip() or None
    address = orders.Address(
        name=form.name.data,
        line1=form.line1.data,
        line2=form.line2.data or None,
        city=form.city.data,
        state=form.state.data or None,
        postal_code=form.postal_code.data,
        country=form.country.data,
    )
    try:
        if request.form.get("step") == "quote":
            quote = orders.quote_checkout(
                current_user.id, address, coupon_code=coupon_code, vat_number=vat_number
            )
            form.quoted_total.data = str(quote.total_cents)
            _keep_coupon(coupon_code)
            return _checkout_page(form, quote, quoted=True)
        request_data: dict[str, Any] = {"address": address.__dict__}
        if coupon_code:
            request_data["coupon_code"] = coupon_code
        if vat_number:
            request_data["vat_number"] = vat_number
        result = orders.checkout(
            current_user.id,
            address,
            form.idempotency_key.data,
            orders.request_fingerprint(request_data),
            coupon_code=coupon_code,
            expected_total_cents=int(form.quoted_total.data) if form.quoted_total.data else None,
            vat_number=vat_number,
        )
    except CouponNotApplicable as refused:
        form.coupon_code.errors = [*form.coupon_code.errors, refused.message]
        form.quoted_total.data = ""
        return _checkout_page(form, _cart_quote(None), 422)
    except ValidationFailed as error:
        for name, message in error.fields.items():
            field = form._fields.get(name.removeprefix("shipping_address."))
            if field is not None:
                field.errors = [*field.errors, message]
            else:
                form.form_errors.append(message)
        return _checkout_page(form, _cart_quote(coupon_code), 422)
    except shipping_checks.DestinationNotServed as refused:
        form.country.errors = [*form.country.errors, refused.message]
        form.form_errors.extend(shipping_checks.explain(refused))
        form.quoted_total.data = ""
        return _checkout_page(form, _cart_quote(coupon_code), 422)
    except orders.QuoteChanged as error:
        flash(error.message, "error")
        quote = orders.quote_checkout(
            current_user.id, address, coupon_code=coupon_code, vat_number=vat_number
        )
        form.quoted_total.data = str(quote.total_cents)
        return _checkout_page(form, quote, 409, quoted=True)
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for("buyers.cart"))
    session.pop(COUPON, None)
    return redirect(url_for("buyers.pay", order_id=result.order.id))


def _cart_quote(coupon_code: str | None) -> Any:
    """The cart priced with the coupon when it applies (else without it)."""
    return orders.cart_page(current_user.id, coupon_code).quote


def _keep_coupon(coupon_code: str | None) -> None:
    if coupon_code:
        session[COUPON] = coupon_code
    else:
        session.pop(COUPON, None)


def _checkout_page(form: CheckoutForm, quote: Any, status: int = 200, quoted: bool = False) -> Any:
    page = render_template("buyers/checkout.html", form=form, quote=quote, quoted=quoted)
    return page, status


@bp.get("/orders/<int:order_id>/pay")
@login_required
def pay(order_id: int) -> Any:
    """The pay page: what is paid, how long the stock is held, and the card form (the
    emulator's card page offline, Stripe.js with real keys). Once the hold ran out it says so."""
    order = orders.buyer_order(current_user.id, order_id)
    hold = orders.stock_hold(order)
    if hold is not None and hold.expired:
        return render_template("buyers/hold_expired.html", order=order, hold=hold)
    if order.status not in orders.UNPAID:
        flash(f"This order is {order.status.value.replace('_', ' ')}: there is nothing to pay.")
        return redirect(url_for("buyers.order_detail", order_id=order.id))
    payment = authorize.payment_for_checkout(order.id)
    if payment.get("error") or not payment.get("client_secret"):
        flash("We could not reach the payment provider; please try again in a moment.", "error")
        return redirect(url_for("buyers.order_detail", order_id=order.id))
    return_url = url_for("buyers.payment_return", order_id=order.id, _external=True)
    card_page = None
    if payment["api_base"] != "https://api.stripe.com":
        query = urlencode({"client_secret": payment["client_secret"], "return_url": return_url})
        card_page = f"{payment['api_base']}/_emulator/pay/{payment['payment_intent_id']}?{query}"
    return render_template(
        "buyers/pay.html",
        order=order,
        hold=hold,
        payment=payment,
        card_page=card_page,
        return_url=return_url,
    )


@bp.get("/orders/<int:order_id>/payment-return")
@login_required
def payment_return(order_id: int) -> Any:
    order = orders.buyer_order(current_user.id, order_id)
    if request.args.get("redirect_status") == "failed":
        flash("Your card was declined. Your items are back in your cart.", "error")
    else:
        flash("Thank you! Your payment is being confirmed.", "success")
    return redirect(url_for("buyers.order_detail", order_id=order.id))


# --- orders --------------------------------------------------------------------------------


@bp.get("/orders")
@login_required
def order_list() -> Any:
    if not _is_buyer():
        abort(403)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
    items, total = orders.buyer_orders(current_user.id, page, 20)
    offers = [] if current_user.is_guest else attach_offers()
    return render_template(
        "buyers/orders.html", orders=items, total=total, page=page, attach_offers=offers
    )


@bp.get("/orders/<int:order_id>")
@login_required
def order_detail(order_id: int) -> Any:
    order = orders.buyer_order_details(current_user.id, order_id)
    reviewed = {
        r.order_item_id
        for r in db.session.query(Review).filter(
            Review.order_item_id.in_([i.id for i in order.items])
        )
    }
    delivered = (VendorOrderStatus.DELIVERED, VendorOrderStatus.COMPLETED)
    return render_template(
        "buyers/order.html",
        order=order,
        hold=orders.stock_hold(order),
        reviewed=reviewed,
        delivered=delivered,
        confirm_form=ConfirmForm(),
        review_form=ReviewForm(),
        return_form=ReturnForm(),
        keep=_keep_offer(order.id),
    )


def _keep_offer(order_id: int) -> dict[str, Any] | None:
    """For a guest: the "set a password to keep track of this order" form, or (an account
    has the email) the way to attach the order to it, if this browser opened its receipt."""
    if not current_user.is_guest:
        return None
    taken = guests.has_account(current_user.email)
    attach = receipt_link_for(order_id) if taken else None
    return {"form": KeepOrderForm(), "taken": taken, "attach": attach}


@bp.post("/orders/<int:order_id>/cancel")
@login_required
def order_cancel(order_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        orders.cancel_by_buyer(current_user.id, order_id)
        flash("Cancelled what had not shipped yet.", "success")
    except DomainError as error:
        if error.status == 404:
            raise
        flash(error.message, "error")
    return redirect(url_for("buyers.order_detail", order_id=order_id))


@bp.post("/orders/<int:order_id>/items/<int:item_id>/review")
@login_required
def item_review(order_id: int, item_id: int) -> Any:
    form = ReviewForm()
    if not form.validate_on_submit():
        flash("A rating from 1 to 5 is needed.", "error")
        return redirect(url_for("buyers.order_detail", order_id=order_id))
    try:
        reviews.create_review(
            current_user.id, order_id, item_id, form.rating.data, form.body.data or ""
        )
        flash("Thank you for your review.", "success")
    except DomainError as error:
        if error.status == 404:
            raise
        flash(error.message, "error")
    return redirect(url_for("buyers.order_detail", order_id=order_id))


@bp.post("/orders/<int:order_id>/items/<int:item_id>/return")
@login_required
def item_return(order_id: int, item_id: int) -> Any:
    form = ReturnForm()
    if not form.validate_on_submit():
        flash("Say how many and why.", "error")
        return redirect(url_for("buyers.order_detail", order_id=order_id))
    try:
        returns.request_return(
            current_user.id, order_id, item_id, form.quantity.data, form.reason.data
        )
        flash("Return requested: the seller will answer soon.", "success")
    except DomainError as error:
        if error.status == 404:
            raise
        flash(error.message, "error")
    return redirect(url_for("buyers.order_detail", order_id=order_id))


@bp.get("/notifications")
@login_required
def notification_list() -> Any:
    items = notifications.notifications_for(current_user.id)
    notifications.mark_read(current_user.id)
    return render_template("buyers/notifications.html", notifications=items)
