"""Money as integers in a currency's minor unit: basis points and largest-remainder splits that
add up exactly, and what each currency's amounts look like (to Stripe, to a person).

Amounts are stored and sent to Stripe in Stripe's minor unit for the currency ("cents" in field
names is kept for every currency: 1234 is $12.34, ¥1,234 or 1.234 KWD). How many decimals a
person types and reads comes from ISO 4217 via Babel; where Stripe differs (ISK and HUF are sent
with two decimals although nobody writes them) the amount must be a whole number of what a
person writes, and Stripe's three-decimal currencies take only amounts ending in 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel.core import Locale, UnknownLocaleError
from babel.numbers import (
    NumberFormatError,
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    parse_decimal,
)

BPS_DENOMINATOR = 10_000


def apply_bps(amount_cents: int, bps: int) -> int:
    """`amount × bps / 10000`, rounded half up (commission, tax)."""
    if amount_cents < 0:
        return -apply_bps(-amount_cents, bps)
    return (amount_cents * bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR


def split_by_weights(amount_cents: int, weights: Sequence[int]) -> list[int]:
    """Split `amount_cents` in proportion to `weights`, largest remainder first.

    The parts always add up to `amount_cents`; ties go to the earlier weight.
    """
    if not weights:
        raise ValueError("no weights")
    if any(w < 0 for w in weights):
        raise ValueError("negative weight")
    total = sum(weights)
    if total == 0:
        weights = [1] * len(weights)
        total = len(weights)
    sign = -1 if amount_cents < 0 else 1
    amount = abs(amount_cents)
    floors = [amount * w // total for w in weights]
    remainders = [amount * w % total for w in weights]
    short = amount - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        floors[i] += 1
    parts = [sign * p for p in floors]
    assert sum(parts) == amount_cents
    return parts


# Stripe's lists (docs: "Supported currencies"): amounts in these are not multiplied by 100 ...
# fmt: off
STRIPE_ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
    "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
})
# fmt: on
# ... these take three decimals, the last of which must be 0 ...
STRIPE_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
# ... and every other currency is sent with two decimals, even where ISO 4217 has none (ISK).
STRIPE_DEFAULT_EXPONENT = 2
# Stripe's minimum charge per currency, in its minor unit (others: Stripe decides at payment).
STRIPE_MIN_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50,
    "czk": 1500, "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50,
    "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200,
    "sek": 300, "sgd": 50, "thb": 1000,
}  # fmt: skip
# Elsewhere "the equivalent of 0.50 USD", which needs a rate: 50 minor units is what is checked
# here; Stripe's own answer at payment covers the rest.
STRIPE_FALLBACK_MIN_CHARGE = 50
# "The amount value supports up to eight digits" in the minor unit.
STRIPE_MAX_CHARGE = 99_999_999
_NUMBER = re.compile(r"[0-9][0-9.,' \u202f]*")  # digits and separators: no signs, no 1e5
_EXAMPLES = {0: "1234", 1: "12.3", 2: "12.34", 3: "12.345"}
_MAJOR_DIGITS = 9  # more digits than this before the decimal point is nonsense, not a price


@dataclass(frozen=True)
class Currency:
    code: str  # lower-case ISO 4217, as Stripe wants it
    exponent: int  # amounts are integers of 10**-exponent of the unit, as Stripe takes them
    digits: int  # decimals a person types and reads
    step: int  # every amount is a multiple of this many minor units
    min_charge: int
    max_charge: int

    def multiple(self, amount: int) -> bool:
        return amount % self.step == 0


class UnknownCurrency(ValueError):
    pass


@lru_cache(maxsize=64)
def currency(code: str) -> Currency:
    code = code.lower()
    try:
        iso_digits = get_currency_precision(code.upper())
        Locale.parse("en").currencies[code.upper()]
    except (KeyError, UnknownLocaleError):
        raise UnknownCurrency(f"unknown currency {code!r}") from None
    if code in STRIPE_ZERO_DECIMAL:
        exponent = 0
    elif code in STRIPE_THREE_DECIMAL:
        exponent = 3
    else:
        exponent = STRIPE_DEFAULT_EXPONENT
    digits = min(iso_digits, exponent)
    step = 10 if code in STRIPE_THREE_DECIMAL else 10 ** (exponent - digits)
    return Currency(
        code=code,
        exponent=exponent,
        digits=digits,
        step=step,
        min_charge=STRIPE_MIN_CHARGE.get(code, max(STRIPE_FALLBACK_MIN_CHARGE, step)),
        max_charge=STRIPE_MAX_CHARGE,
    )


def round_to_step(amount: int, currency_code: str) -> int:
    """To the nearest amount the currency can be charged in, half up (three-decimal: tens)."""
    step = currency(currency_code).step
    if step == 1:
        return amount
    if amount < 0:
        return -round_to_step(-amount, currency_code)
    return (amount + step // 2) // step * step


def to_decimal(amount: int, currency_code: str) -> Decimal:
    """1234 → Decimal('12.34') in USD, Decimal('1234') in JPY."""
    return Decimal(amount).scaleb(-currency(currency_code).exponent)


def format_money(amount: int, currency_code: str, locale: str = "en_US") -> str:
    """How a person in `locale` reads the amount: '$12.34', '¥1,234', '1.234,56 €'."""
    money = currency(currency_code)
    return format_currency(
        to_decimal(amount, currency_code),
        money.code.upper(),
        locale=locale,
        currency_digits=False,
        format_type="standard",
        decimal_quantization=True,
        **({"format": _pattern(locale, money.digits)}),
    )


@lru_cache(maxsize=64)
def _pattern(locale: str, digits: int) -> str:
    pattern = Locale.parse(locale).currency_formats["standard"].pattern.split(";")[0]
    fraction = "0" * digits
    return re.sub(r"0(\.0+)?", "0" + (f".{fraction}" if digits else ""), pattern, count=1)


def shop_currency() -> str:
    """The shop's CURRENCY (a column default for prices and carts; 'usd' outside an app)."""
    from flask import current_app, has_app_context

    return current_app.config["CURRENCY"] if has_app_context() else "usd"


def shop_money(amount: int, currency_code: str | None = None) -> str:
    """`format_money` in the shop's currency (or the order's) and the shop's LOCALE."""
    from flask import current_app

    config = current_app.config
    return format_money(amount, currency_code or config["CURRENCY"], config["LOCALE"])


def input_text(amount: int | None, currency_code: str, locale: str = "en_US") -> str:
    """1234 → '12.34' (USD), '12,34' (EUR in de_DE), '1234' (JPY): what a money input is
    pre-filled with, in the locale's decimal mark and without grouping, so it parses back."""
    if amount is None:
        return ""
    money = currency(currency_code)
    text = f"{to_decimal(amount, currency_code):.{money.digits}f}"
    return text.replace(".", get_decimal_symbol(locale))


def example_text(currency_code: str, locale: str = "en_US") -> str:
    """An amount as a person would type it in the currency: '12.34', '1234', '12,340'."""
    money = currency(currency_code)
    text = _EXAMPLES[money.digits] if money.step < 10 or money.digits == 0 else "12.340"
    return text.replace(".", get_decimal_symbol(locale))


def parse_money(text: str, currency_code: str, locale: str = "en_US") -> int:
    """What a person typed ('12.34', '1,000', '¥500', '1.234,5' in de_DE) → minor units, exactly.

    :raises ValueError: with a message for the person: not a number, negative, more decimals
        than the currency has, not a multiple of what it can be charged in, absurdly large.
    """
    money = currency(currency_code)
    loc = Locale.parse(locale)
    cleaned = text.strip()
    for sign in {get_currency_symbol(money.code.upper(), locale), money.code.upper(), "$"}:
        cleaned = cleaned.replace(sign, "")
    cleaned = cleaned.replace("\u00a0", " ").strip()
    example = example_text(money.code, locale)
    if cleaned.startswith("-"):
        raise ValueError("Must not be negative.")
    if not _NUMBER.fullmatch(cleaned):
        raise ValueError(f"Enter an amount like {example}.")
    try:
        value = parse_decimal(cleaned, locale=loc, strict=True)
    except (NumberFormatError, InvalidOperation):
        raise ValueError(f"Enter an amount like {example}.") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"Enter an amount like {example}.")
    if value.adjusted() >= _MAJOR_DIGITS:
        raise ValueError("That amount is too large.")
    decimals = max(0, -value.normalize().as_tuple().exponent)  # type: ignore[operator]
    if decimals > money.digits:
        if money.digits == 0:
            raise ValueError(f"Enter a whole amount, like {example}: no decimals.")
        raise ValueError(f"Use at most {money.digits} decimals, like {example}.")
    amount = int(value.scaleb(money.exponent))
    if not money.multiple(amount):
        raise ValueError(
            f"Must be a multiple of {input_text(money.step, money.code)}"
            f" ({money.code.upper()} is charged in those)."
        )
    return amount


def chargeable(amount: int, currency_code: str) -> bool:
    """Whether Stripe takes this amount for a charge in the currency."""
    money = currency(currency_code)
    return money.min_charge <= amount <= money.max_charge and money.multiple(amount)
