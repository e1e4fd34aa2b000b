"""Admin page: the platform's coupons (its commission pays them), created, edited, paused and
withdrawn through `marketplace.coupons` (which audits it); access is the blueprint's
`require_admin`."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from wtforms import SelectChoice

from marketplace.admin import bp
from marketplace.coupons import services as coupons
from marketplace.errors import DomainError
from marketplace.forms import (
    ConfirmCouponForm,
    CouponForm,
    add_domain_error,
    coupon_terms_as_typed,
)

_FIELDS = {"percent_bps": "percent", "amount_cents": "amount", "min_order_cents": "min_order"}


def _form(formdata: Any = ..., data: dict[str, Any] | None = None) -> CouponForm:
    form = CouponForm() if formdata is ... else CouponForm(formdata=formdata, data=data)
    # A platform coupon may also be limited to one vendor's lines (the platform still pays).
    form.scope.choices = [*form.scope.choices, SelectChoice("vendor", "One vendor (its id below)")]
    return form


def _page(form: CouponForm, status: int = 200) -> Any:
    return render_template(
        "admin/coupons.html",
        coupons=coupons.list_coupons(vendor_id=None),
        form=form,
        withdraw=ConfirmCouponForm(formdata=None),
    ), status


@bp.get("/coupons")
def coupons_page() -> Any:
    return _page(_form(None))


@bp.post("/coupons")
def create_coupon() -> Any:
    form = _form()
    values = form.submitted_values()
    if values is None:
        return _page(form, 422)
    try:
        coupon = coupons.create(coupons.input_from(values, set(values)), vendor_id=None)
    except DomainError as error:
        return _page(form, add_domain_error(form, error, _FIELDS))
    flash(f"Coupon {coupon.code} created.", "success")
    return redirect(url_for("admin.coupons_page"))


def _edit_page(coupon_id: int, form: CouponForm | None = None, status: int = 200) -> Any:
    coupon = coupons.get(coupon_id, vendor_id=None)
    if form is None:
        form = _form(None, coupon_terms_as_typed(coupon))
    return render_template("admin/coupon_edit.html", coupon=coupon, form=form), status


@bp.get("/coupons/<int:coupon_id>/edit")
def edit_coupon_page(coupon_id: int) -> Any:
    return _edit_page(coupon_id)


@bp.post("/coupons/<int:coupon_id>/edit")
def edit_coupon(coupon_id: int) -> Any:
    """Change a platform coupon's terms (audited, before → after)."""
    form = _form()
    values = form.submitted_values()
    if values is None:
        return _edit_page(coupon_id, form, 422)
    try:
        coupon = coupons.update_coupon(
            coupon_id, coupons.input_from(values, set(values)), vendor_id=None
        )
    except DomainError as error:
        return _edit_page(coupon_id, form, add_domain_error(form, error, _FIELDS))
    flash(f"Coupon {coupon.code} saved.", "success")
    return redirect(url_for("admin.coupons_page"))


@bp.post("/coupons/<int:coupon_id>/active")
def toggle_coupon(coupon_id: int) -> Any:
    """Pause a platform coupon (it answers `unknown` meanwhile) or resume it (audited)."""
    if ConfirmCouponForm().validate_on_submit():
        coupon = coupons.get(coupon_id, vendor_id=None)
        wanted = {"active": not coupon.active}
        coupons.update_coupon(coupon_id, coupons.input_from(wanted, set(wanted)), vendor_id=None)
        flash("Coupon resumed." if wanted["active"] else "Coupon paused.", "success")
    return redirect(url_for("admin.coupons_page"))


@bp.post("/coupons/<int:coupon_id>/delete")
def delete_coupon(coupon_id: int) -> Any:
    if ConfirmCouponForm().validate_on_submit():
        coupons.delete_coupon(coupon_id, vendor_id=None)
        flash("Coupon withdrawn.", "success")
    return redirect(url_for("admin.coupons_page"))
