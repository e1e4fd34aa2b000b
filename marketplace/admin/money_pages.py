"""Admin money pages: reconciliation (with the payouts CSV), commission rules and who
carries a dispute (`dispute_recovery`).

The same service calls as the JSON twins in `api/admin_money.py`. Access is the blueprint's:
`require_admin` (routes.py) runs before every view. Forms check shape (an integer is an
integer); the range 0–10000 and whether a vendor or category exists are the services' rules,
and a refused change is shown on its form with the service's status and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import InputRequired, Optional, ValidationError

from marketplace.admin import bp
from marketplace.catalog import services as catalog
from marketplace.errors import DomainError, ValidationFailed
from marketplace.orders import commission
from marketplace.payments.gateway import PaymentProviderError
from marketplace.payouts import reconciliation
from marketplace.settlement import recovery

# --- forms -----------------------------------------------------------------------------------


def _no_nul(form: Any, field: Any) -> None:
    if isinstance(field.data, str) and "\x00" in field.data:
        raise ValidationError("Must not contain NUL characters.")


class ReconciliationFilter(FlaskForm):
    """`?from=YYYY-MM-DD&to=YYYY-MM-DD`, both optional; `to` is inclusive."""

    class Meta:
        csrf = False

    since = DateField("From", name="from", validators=[Optional()])
    until = DateField("To (inclusive)", name="to", validators=[Optional()])

    def validate_until(self, field: DateField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("Must not be before the start date.")


class DefaultCommissionForm(FlaskForm):
    default_bps = IntegerField(
        "Default commission (basis points)",
        validators=[InputRequired()],
        description="100 bps = 1%. Applies to every sale without a vendor or category rule.",
    )


class VendorCommissionForm(FlaskForm):
    vendor_id = SelectField("Vendor", coerce=int)
    vendor_bps = IntegerField(
        "Vendor commission (basis points)",
        validators=[Optional()],
        description="Leave blank to remove the vendor's own rate.",
    )


class CategoryCommissionForm(FlaskForm):
    category = StringField(
        "Category",
        validators=[InputRequired(), _no_nul],
        description='A path like "Clothing/Tops".',
    )
    category_bps = IntegerField(
        "Category commission (basis points)",
        validators=[Optional()],
        description="Leave blank to remove the category's rate (its parent's applies).",
    )


class DisputeRecoveryForm(FlaskForm):
    dispute_recovery = SelectField(
        "Who carries a dispute",
        choices=[
            SelectChoice(recovery.PLATFORM_ABSORBS, "The platform absorbs it"),
            SelectChoice(
                recovery.REVERSE_VENDOR_SHARE, "Reverse the vendor's share from its transfer"
            ),
        ],
        validators=[InputRequired()],
        description="Applies to disputes opened from now on; a won dispute gives back "
        "what was taken.",
    )


FORMS = {
    "default": DefaultCommissionForm,
    "vendor": VendorCommissionForm,
    "category": CategoryCommissionForm,
    "dispute_recovery": DisputeRecoveryForm,
}


# --- reconciliation --------------------------------------------------------------------------


def _start_of(day: date | None) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


@bp.get("/reconciliation", endpoint="reconciliation")
def reconciliation_page() -> Any:
    form = ReconciliationFilter(request.args)
    if not form.validate():
        return render_template("admin/reconciliation.html", form=form, report=None), 422
    since = _start_of(form.since.data)
    # The last day runs to midnight after it; the calendar's last day has no "after".
    last = form.until.data
    until = _start_of(last + timedelta(days=1)) if last and last < date.max else None
    try:
        report = reconciliation.reconcile(since, until)
    except PaymentProviderError as error:
        flash(f"Stripe could not be reached: {error.message}", "error")
        return render_template("admin/reconciliation.html", form=form, report=None), 503
    return render_template("admin/reconciliation.html", form=form, report=report)


@bp.get("/payouts.csv")
def payouts_csv() -> Any:
    return Response(
        reconciliation.payouts_csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=payouts.csv"},
    )


# --- commission ------------------------------------------------------------------------------


def _vendor_choices() -> list[SelectChoice]:
    return [
        SelectChoice(vendor.id, f"{vendor.display_name} ({vendor.user.email})")
        for vendor in catalog.list_vendors()
    ]


def _forms(posted: str | None = None) -> dict[str, FlaskForm]:
    """The three forms, the posted one (if any) reading the request, the others blank."""
    forms: dict[str, FlaskForm] = {}
    for name, cls in FORMS.items():
        forms[name] = cls() if name == posted else cls(formdata=None)
    forms["vendor"].vendor_id.choices = _vendor_choices()
    if posted != "default":
        forms["default"].default_bps.data = commission.default_bps()
    if posted != "dispute_recovery":
        forms["dispute_recovery"].dispute_recovery.data = recovery.mode()
    return forms


def _page(forms: dict[str, FlaskForm], status: int = 200) -> Any:
    vendors = [v for v in catalog.list_vendors() if v.commission_bps is not None]
    categories = catalog.list_categories()
    return render_template(
        "admin/commission.html",
        default_bps=commission.default_bps(),
        dispute_recovery=recovery.mode(),
        forms=forms,
        vendor_overrides=vendors,
        categories=categories,
        category_overrides=[c for c in categories if c.commission_bps is not None],
    ), status


@bp.get("/commission", endpoint="commission")
def commission_page() -> Any:
    return _page(_forms())


def _refused(form: FlaskForm, error: DomainError, field: str) -> int:
    """Put the service's refusal on the form's field; returns the status to answer with."""
    if isinstance(error, ValidationFailed):
        for message in error.fields.values():
            target = form._fields[field]
            target.errors = [*target.errors, message]
    else:
        form.form_errors.append(error.message)
    flash(error.message, "error")
    return error.status


@bp.post("/commission")
def set_commission() -> Any:
    action = request.form.get("action", "")
    if action not in FORMS:
        flash("Choose which commission to change.", "error")
        return _page(_forms(), 400)
    forms = _forms(action)
    form = forms[action]
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            flash("The form has expired; reload the page and try again.", "error")
            return _page(forms, 400)
        return _page(forms, 422)
    try:
        if action == "default":
            bps = commission.set_default_bps(form.default_bps.data)
            done = f"Default commission is now {bps} bps."
        elif action == "vendor":
            vendor = commission.set_vendor_bps(form.vendor_id.data, form.vendor_bps.data)
            done = (
                f"{vendor.display_name} now pays {vendor.commission_bps} bps."
                if vendor.commission_bps is not None
                else f"{vendor.display_name} now pays the category or default rate."
            )
        elif action == "dispute_recovery":
            chosen = recovery.set_mode(form.dispute_recovery.data or "")
            done = (
                "Disputes are now recovered from the vendors' transfers."
                if chosen == recovery.REVERSE_VENDOR_SHARE
                else "The platform now absorbs disputes."
            )
        else:
            category = commission.set_category_bps(form.category.data or "", form.category_bps.data)
            done = (
                f"{category.path} now carries {category.commission_bps} bps."
                if category.commission_bps is not None
                else f"{category.path} has no rate of its own any more."
            )
    except DomainError as error:
        field = {
            "default": "default_bps",
            "vendor": "vendor_bps",
            "category": "category_bps",
            "dispute_recovery": "dispute_recovery",
        }
        if error.code == "category_not_found":
            field["category"] = "category"
        return _page(forms, _refused(form, error, field[action]))
    flash(done, "success")
    return redirect(url_for("admin.commission"), 303)
