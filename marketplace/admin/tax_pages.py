"""Admin page: the sales tax rates editor (list, add, change, remove). Every change goes
through `orders.tax` (which audits it); access is the blueprint's `require_admin`."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import InputRequired, Length, Optional

from marketplace.admin import bp
from marketplace.errors import BadRequest, DomainError, ValidationFailed
from marketplace.orders import tax


class AddTaxRateForm(FlaskForm):
    country = StringField(
        "Country",
        validators=[
            InputRequired(),
            Length(min=2, max=2, message="Two letters, an ISO 3166-1 code like US."),
        ],
        description='e.g. "US"',
    )
    region = StringField(
        "Region",
        validators=[Optional(), Length(max=40)],
        description='e.g. "CA", "US-CA" or "California"; blank for the country-wide rate.',
    )
    rate_bps = IntegerField(
        "Standard rate (basis points)",
        validators=[InputRequired()],
        description="100 bps = 1%; 0 to 5000.",
    )
    reduced_rate_bps = IntegerField(
        "Reduced rate (basis points)",
        validators=[Optional()],
        description="For products of the reduced tax category; blank: they pay the standard rate.",
    )
    shipping_taxed = BooleanField("Shipping is taxed (at the standard rate)")


class ChangeTaxRateForm(FlaskForm):
    rate_bps = IntegerField("Rate (basis points)", validators=[InputRequired()])
    reduced_rate_bps = IntegerField("Reduced rate (basis points)", validators=[Optional()])
    shipping_taxed = BooleanField("Shipping taxed")


class RemoveTaxRateForm(FlaskForm):
    """The Remove button: nothing but its CSRF token."""


def _page(add: AddTaxRateForm | None = None, status: int = 200, **errors: Any) -> Any:
    return render_template(
        "admin/tax.html",
        rates=tax.rates(),
        add=add or AddTaxRateForm(formdata=None),
        change_errors=errors.get("change_errors", {}),
    ), status


def _put_on(form: FlaskForm, error: DomainError) -> None:
    if isinstance(error, ValidationFailed):
        for name, message in error.fields.items():
            if name in form._fields:
                form._fields[name].errors = [*form._fields[name].errors, message]
            else:
                form.form_errors.append(message)
    else:
        form.form_errors.append(error.message)


@bp.get("/tax", endpoint="tax")
def tax_page() -> Any:
    return _page()


@bp.post("/tax")
def add_tax_rate() -> Any:
    form = AddTaxRateForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            raise BadRequest("The form has expired; reload the page and try again.")
        return _page(form, 422)
    try:
        rate = tax.set_rate(
            form.country.data or "",
            form.region.data,
            form.rate_bps.data,
            reduced_rate_bps=form.reduced_rate_bps.data,
            shipping_taxed=bool(form.shipping_taxed.data),
        )
    except DomainError as error:
        _put_on(form, error)
        flash(error.message, "error")
        return _page(form, error.status)
    flash(
        f"Tax for {rate.country}{'/' + rate.region if rate.region else ''} is now "
        f"{rate.rate_bps} bps.",
        "success",
    )
    return redirect(url_for("admin.tax"), 303)


@bp.post("/tax/<int:rate_id>")
def change_tax_rate(rate_id: int) -> Any:
    form = ChangeTaxRateForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            raise BadRequest("The form has expired; reload the page and try again.")
        errors = [*form.rate_bps.errors, *form.reduced_rate_bps.errors]
        return _page(None, 422, change_errors={rate_id: errors})
    try:
        rate = tax.change_rate(
            rate_id,
            form.rate_bps.data,
            reduced_rate_bps=form.reduced_rate_bps.data,
            shipping_taxed=bool(form.shipping_taxed.data),
        )
    except ValidationFailed as error:
        flash(error.message, "error")
        return _page(None, error.status, change_errors={rate_id: list(error.fields.values())})
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for("admin.tax"), 303)
    flash(
        f"Tax for {rate.country}{'/' + rate.region if rate.region else ''} is now "
        f"{rate.rate_bps} bps.",
        "success",
    )
    return redirect(url_for("admin.tax"), 303)


@bp.post("/tax/<int:rate_id>/remove")
def remove_tax_rate(rate_id: int) -> Any:
    if not RemoveTaxRateForm().validate_on_submit():
        raise BadRequest("The form has expired; reload the page and try again.")
    try:
        rate = tax.remove_rate(rate_id)
    except DomainError as error:
        flash(error.message, "error")
    else:
        flash(
            f"The rate for {rate.country}{'/' + rate.region if rate.region else ''} is removed.",
            "success",
        )
    return redirect(url_for("admin.tax"), 303)
