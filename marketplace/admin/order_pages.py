"""Admin pages: order lookup, one order's timeline, and a refund of a vendor part from there
(the refund preview first, then the confirm button). Reads go through `backoffice.orders`;
the refund is `settlement.refunds` (audited there). Access is the blueprint's `require_admin`."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from marketplace.admin import bp
from marketplace.backoffice import orders as lookup
from marketplace.errors import BadRequest, DomainError, ValidationFailed
from marketplace.forms import MoneyField
from marketplace.orders.models import OrderStatus
from marketplace.settlement import refunds

PER_PAGE = 50


class OrderSearchForm(FlaskForm):
    class Meta:
        csrf = False

    order_id = IntegerField("Order id", validators=[Optional(), NumberRange(1, 2**31 - 1)])
    buyer_email = StringField("Buyer email", validators=[Optional(), Length(max=254)])
    vendor = StringField("Vendor", validators=[Optional(), Length(max=120)])
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any")] + [SelectChoice(s.value, s.value) for s in OrderStatus],
        default="",
        validators=[Optional()],
    )
    since = DateField("From", validators=[Optional()])
    until = DateField("To (inclusive)", validators=[Optional()])

    def validate_until(self, field: DateField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("Must not be before the start date.")


class RefundPreviewForm(FlaskForm):
    """Asks for the preview (a GET: it changes nothing)."""

    class Meta:
        csrf = False

    amount = MoneyField("Amount", validators=[Optional()], description="Blank: all that is left.")
    reason = StringField("Reason", validators=[Optional(), Length(max=200)])


class RefundConfirmForm(FlaskForm):
    """The confirm button under the preview: exactly what was previewed."""

    amount_cents = HiddenField()
    reason = HiddenField()


@bp.get("/orders", endpoint="orders")
def orders_page() -> Any:
    form = OrderSearchForm(request.args)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 1_000_000)
    if not form.validate():
        return render_template(
            "admin/orders.html", form=form, found=[], total=0, page=1, pages=1, args={}
        ), 422
    found, total = lookup.search(
        order_id=form.order_id.data,
        buyer_email=(form.buyer_email.data or "").strip() or None,
        vendor=(form.vendor.data or "").strip() or None,
        status=OrderStatus(form.status.data) if form.status.data else None,
        since=form.since.data,
        until=form.until.data,
        page=page,
        per_page=PER_PAGE,
    )
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "admin/orders.html",
        form=form,
        found=found,
        total=total,
        page=page,
        pages=max((total + PER_PAGE - 1) // PER_PAGE, 1),
        args=args,
    )


def _order_page(order_id: int, status: int = 200, **extra: Any) -> Any:
    found = lookup.order_file(order_id)
    extra.setdefault("preview_forms", {})
    for part in found.order.vendor_orders:
        extra["preview_forms"].setdefault(part.id, RefundPreviewForm(formdata=None))
    return render_template("admin/order.html", file=found, **extra), status


@bp.get("/orders/<int:order_id>", endpoint="order")
def order_page(order_id: int) -> Any:
    return _order_page(order_id)


def _part(order_id: int, vendor_order_id: int) -> None:
    if not lookup.is_part_of(order_id, vendor_order_id):
        raise lookup.OrderNotFound("That vendor order is not part of this order.")


@bp.get("/orders/<int:order_id>/parts/<int:vendor_order_id>/refund-preview")
def admin_refund_preview(order_id: int, vendor_order_id: int) -> Any:
    _part(order_id, vendor_order_id)
    form = RefundPreviewForm(request.args)
    forms = {vendor_order_id: form}
    if not form.validate():
        return _order_page(order_id, 422, preview_forms=forms)
    try:
        plan = refunds.preview(vendor_order_id, None, amount_cents=form.amount.cents)
    except DomainError as error:
        form.form_errors.append(error.message)
        return _order_page(order_id, error.status, preview_forms=forms)
    confirm = RefundConfirmForm(
        formdata=None, amount_cents=str(plan.amount_cents), reason=form.reason.data or ""
    )
    return _order_page(
        order_id,
        preview_forms=forms,
        preview={"part": vendor_order_id, **plan.preview()},
        confirm=confirm,
    )


@bp.post("/orders/<int:order_id>/parts/<int:vendor_order_id>/refund")
def admin_refund(order_id: int, vendor_order_id: int) -> Any:
    _part(order_id, vendor_order_id)
    form = RefundConfirmForm()
    if not form.validate_on_submit():
        raise BadRequest("The form has expired; reload the page and try again.")
    raw = form.amount_cents.data or ""
    if not raw.isdigit():
        raise BadRequest("The refund form was changed; preview the refund again.")
    try:
        refund = refunds.refund_vendor_order(
            vendor_order_id,
            vendor_id=None,
            actor=f"admin:{current_user.id}",
            reason=form.reason.data or "Refunded by the marketplace",
            amount_cents=int(raw),
        )
    except ValidationFailed as error:
        flash(f"{error.message} {'; '.join(error.fields.values())}", "error")
    except DomainError as error:
        flash(error.message, "error")
    else:
        flash(f"Refund {refund.id} is {refund.status.value}.", "success")
    return redirect(url_for("admin.order", order_id=order_id), 303)
