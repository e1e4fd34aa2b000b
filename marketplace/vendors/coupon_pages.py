"""The vendor's coupons page: its codes with their uses, a form for a new one, edit, pause,
withdraw. The
vendor funds them; they apply to its own lines only (marketplace.coupons)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for

from marketplace.coupons import services as coupons
from marketplace.errors import DomainError
from marketplace.forms import (
    ConfirmCouponForm,
    CouponForm,
    add_domain_error,
    coupon_terms_as_typed,
)
from marketplace.vendors import bp
from marketplace.vendors.routes import current_vendor

_FIELDS = {"percent_bps": "percent", "amount_cents": "amount", "min_order_cents": "min_order"}


def _page(form: CouponForm, status: int = 200) -> Any:
    vendor = current_vendor()
    return render_template(
        "vendors/coupons.html",
        coupons=coupons.list_coupons(vendor_id=vendor.id),
        form=form,
        withdraw=ConfirmCouponForm(formdata=None),
    ), status


@bp.get("/coupons")
def coupons_page() -> Any:
    return _page(CouponForm(formdata=None))


@bp.post("/coupons")
def create_coupon() -> Any:
    form = CouponForm()
    values = form.submitted_values()
    if values is None:
        return _page(form, 422)
    try:
        coupon = coupons.create(
            coupons.input_from(values, set(values)), vendor_id=current_vendor().id
        )
    except DomainError as error:
        return _page(form, add_domain_error(form, error, _FIELDS))
    flash(f"Coupon {coupon.code} created.", "success")
    return redirect(url_for("vendors.coupons_page"))


def _edit_page(coupon_id: int, form: CouponForm | None = None, status: int = 200) -> Any:
    coupon = coupons.get(coupon_id, vendor_id=current_vendor().id)
    if form is None:
        form = CouponForm(formdata=None, data=coupon_terms_as_typed(coupon))
    return render_template("vendors/coupon_edit.html", coupon=coupon, form=form), status


@bp.get("/coupons/<int:coupon_id>/edit")
def edit_coupon_page(coupon_id: int) -> Any:
    return _edit_page(coupon_id)


@bp.post("/coupons/<int:coupon_id>/edit")
def edit_coupon(coupon_id: int) -> Any:
    form = CouponForm()
    values = form.submitted_values()
    if values is None:
        return _edit_page(coupon_id, form, 422)
    try:
        coupon = coupons.update_coupon(
            coupon_id, coupons.input_from(values, set(values)), vendor_id=current_vendor().id
        )
    except DomainError as error:
        return _edit_page(coupon_id, form, add_domain_error(form, error, _FIELDS))
    flash(f"Coupon {coupon.code} saved.", "success")
    return redirect(url_for("vendors.coupons_page"))


@bp.post("/coupons/<int:coupon_id>/active")
def toggle_coupon(coupon_id: int) -> Any:
    """Pause a coupon (it answers `unknown` meanwhile) or resume it."""
    if ConfirmCouponForm().validate_on_submit():
        vendor_id = current_vendor().id
        coupon = coupons.get(coupon_id, vendor_id=vendor_id)
        wanted = {"active": not coupon.active}
        coupons.update_coupon(
            coupon_id, coupons.input_from(wanted, set(wanted)), vendor_id=vendor_id
        )
        flash("Coupon resumed." if wanted["active"] else "Coupon paused.", "success")
    return redirect(url_for("vendors.coupons_page"))


@bp.post("/coupons/<int:coupon_id>/delete")
def delete_coupon(coupon_id: int) -> Any:
    if ConfirmCouponForm().validate_on_submit():
        coupons.delete_coupon(coupon_id, vendor_id=current_vendor().id)
        flash("Coupon withdrawn.", "success")
    return redirect(url_for("vendors.coupons_page"))
