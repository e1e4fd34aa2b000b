"""Form helpers shared by the faces: money typed in dollars (held in exact integer cents) and
service errors copied back onto a form."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from wtforms import Field, Form, StringField

from marketplace.errors import DomainError, ValidationFailed

# Nine digits of dollars is far beyond any price the catalog accepts; the service decides the
# real limit. Anything longer is treated as nonsense rather than parsed.
_DOLLARS = re.compile(r"^(\d{1,9})(?:\.(\d*))?$")


def dollars_to_cents(text: str) -> int:
    """'12.34' → 1234, exactly (Decimal, never float).

    :raises ValueError: with a message for the user: not a number, negative, more than two
        decimals, or absurdly large.
    """
    text = text.strip().removeprefix("$").strip()
    if text.startswith("-"):
        raise ValueError("Must not be negative.")
    match = _DOLLARS.match(text)
    if match is None:
        if re.fullmatch(r"\d{10,}(\.\d*)?", text):
            raise ValueError("That amount is too large.")
        raise ValueError("Enter an amount in dollars, like 12.34.")
    if len(match.group(2) or "") > 2:
        raise ValueError("Use at most two decimals (whole cents).")
    return int(Decimal(text) * 100)


def cents_to_dollars(cents: int | None) -> str:
    """1234 → '12.34' for pre-filling money inputs."""
    if cents is None:
        return ""
    return f"{cents // 100}.{cents % 100:02d}"


class MoneyField(StringField):
    """A dollar amount typed as text; `.cents` is the exact value in cents (None when blank)."""

    cents: int | None = None

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        self.cents = None
        text = (self.data or "").strip()
        if text:
            self.cents = dollars_to_cents(text)


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
