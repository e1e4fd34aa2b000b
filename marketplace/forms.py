"""Form helpers shared by the faces: money typed in the shop's currency (held in exact integer
minor units) and service errors copied back onto a form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from babel.numbers import get_currency_symbol
from flask import current_app, has_app_context
from wtforms import Field, Form, StringField

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
