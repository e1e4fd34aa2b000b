"""Form helpers shared by the faces: money typed in the shop's currency (held in exact integer
minor units), service errors copied back onto a form, and the coupon form the vendor's and the
admin's pages share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from babel.numbers import get_currency_symbol
from flask import current_app, has_app_context
from flask_wtf import FlaskForm
from wtforms import Field, Form, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import InputRequired, Length, Optional

from marketplace.errors import DomainError, ValidationFailed
from marketplace.money import input_text, parse_money


def money_input(amount: int | None) -> str:
    """1234 → '12.34' (¥: '1234') for pre-filling a money input in the shop's currency."""
    return input_text(amount, current_app.config["CURRENCY"], current_app.config["LOCALE"])


def money_label(text: str) -> str:
    """'Price' → 'Price ($)', 'Price (¥)', 'Price (KWD)': the shop's currency as people write it."""
    code = current_app.config["CURRENCY"].upper()
    return f"{text} ({get_currency_symbol(code, current_app.config['LOCALE'])})"


class MoneyField(StringField):
    """An amount typed as text in the shop's currency and LOCALE; `.cents` is its exact value in
    the currency's minor unit (None when blank). The label gets the currency's symbol."""

    cents: int | None = None

    def __init__(self, label: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(label, *args, **kwargs)
        if has_app_context() and self.label is not None:
            self.label.text = money_label(self.label.text)

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        self.cents = None
        text = (self.data or "").strip()
        if text:
            config = current_app.config
            self.cents = parse_money(text, config["CURRENCY"], config["LOCALE"])


def add_domain_error(
    form: Form,
    error: DomainError,
    names: dict[str, str] | None = None,
    reword: Callable[[str, str], str] | None = None,
) -> int:
    """Copy a service error onto `form`: ValidationFailed fields onto the matching inputs
    (renamed through `names`, messages through `reword(key, message)`), anything else as a
    form-wide message. Returns the HTTP status for re-rendering the form."""
    names = names or {}
    if isinstance(error, ValidationFailed):
        for key, message in error.fields.items():
            name = names.get(key, key)
            if reword is not None:
                message = reword(key, message)
            field: Field | None = form._fields.get(name)
            if field is not None:
                field.errors = [*field.errors, message]
            else:
                form.form_errors.append(f"{name}: {message}")
    else:
        form.form_errors.append(error.message)
    return error.status


def _percent_to_bps(text: str | None) -> int | None:
    """'12.5' → 1250: percent as a person types it, to basis points (None when blank)."""
    from decimal import Decimal, InvalidOperation

    text = (text or "").strip().rstrip("%").strip()
    if not text:
        return None
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return -1  # the service names the field
    bps = value * 100
    return int(bps) if bps == bps.to_integral_value() else -1


class CouponForm(FlaskForm):
    """A coupon's terms on the vendor's and the admin's coupon pages (shape only: the rules are
    `marketplace.coupons.services`)."""

    code = StringField("Code", validators=[InputRequired(), Length(max=40)])
    kind = SelectField(
        "Discount",
        choices=[SelectChoice("percent", "Percent off"), SelectChoice("fixed", "Amount off")],
        default="percent",
    )
    percent = StringField(
        "Percent off", validators=[Optional(), Length(max=8)], description="e.g. 10 or 12.5"
    )
    amount = MoneyField("Amount off", validators=[Optional(), Length(max=20)])
    min_order = MoneyField(
        "Minimum order",
        validators=[Optional(), Length(max=20)],
        description="of the lines it applies to",
    )
    starts_at = StringField(
        "Valid from",
        validators=[Optional(), Length(max=40)],
        description="UTC, e.g. 2026-12-24T00:00",
    )
    ends_at = StringField("Valid until", validators=[Optional(), Length(max=40)])
    max_uses = IntegerField("Uses in all", validators=[Optional()], description="blank: no limit")
    max_uses_per_buyer = IntegerField("Uses per buyer", validators=[Optional()])
    scope = SelectField(
        "Applies to",
        choices=[
            SelectChoice("cart", "Everything"),
            SelectChoice("categories", "Categories (ids below)"),
            SelectChoice("products", "Products (ids below)"),
        ],
        default="cart",
    )
    scope_ids = StringField(
        "Ids", validators=[Optional(), Length(max=2000)], description="comma separated"
    )

    def submitted_values(self) -> dict[str, Any] | None:
        """The posted terms (`values()`), or None when the form has errors to show."""
        if not self.validate_on_submit():
            return None
        values = self.values()
        return None if self.scope_ids.errors else values

    def values(self) -> dict[str, Any]:
        """The terms as `coupons.services.input_from` takes them; a money or id field that did
        not parse has an error of its own already."""
        ids: list[int] = []
        for part in (self.scope_ids.data or "").replace(" ", "").split(","):
            if part.isdigit():
                ids.append(int(part))
            elif part:
                self.scope_ids.errors = [*self.scope_ids.errors, f"{part!r} is not an id"]
        return {
            "code": self.code.data or "",
            "kind": self.kind.data,
            "percent_bps": _percent_to_bps(self.percent.data)
            if self.kind.data == "percent"
            else None,
            "amount_cents": self.amount.cents if self.kind.data == "fixed" else None,
            "min_order_cents": self.min_order.cents or 0,
            "starts_at": self.starts_at.data or None,
            "ends_at": self.ends_at.data or None,
            "max_uses": self.max_uses.data,
            "max_uses_per_buyer": self.max_uses_per_buyer.data,
            "scope": self.scope.data,
            "scope_ids": ids,
        }


def coupon_terms_as_typed(coupon: Any) -> dict[str, Any]:
    """A coupon's terms as the coupon form shows them, for its edit page (`CouponForm(data=…)`).

    `coupon` is a `marketplace.coupons.models.Coupon` (not imported: forms sit below the
    domains)."""
    return {
        "code": coupon.code,
        "kind": coupon.kind.value,
        "percent": _bps_to_percent(coupon.percent_bps),
        "amount": money_input(coupon.amount_cents),
        "min_order": money_input(coupon.min_order_cents) if coupon.min_order_cents else "",
        "starts_at": _time_as_typed(coupon.starts_at),
        "ends_at": _time_as_typed(coupon.ends_at),
        "max_uses": coupon.max_uses,
        "max_uses_per_buyer": coupon.max_uses_per_buyer,
        "scope": coupon.scope.value,
        "scope_ids": ", ".join(str(i) for i in coupon.scope_ids or []),
    }


def _bps_to_percent(bps: int | None) -> str:
    """1250 → '12.5', 1000 → '10': the inverse of `_percent_to_bps`."""
    from decimal import Decimal

    if bps is None:
        return ""
    return format((Decimal(bps) / 100).normalize(), "f")


def _time_as_typed(moment: Any) -> str:
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S" if moment.second else "%Y-%m-%dT%H:%M")


class ConfirmCouponForm(FlaskForm):
    """A bare form: a button with its CSRF token (withdraw a coupon)."""
