"""Minor-unit arithmetic: basis points round half up, splits always add up to the cent; each
currency's exponent, display and input as Stripe and a person in the locale expect."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from marketplace.money import (
    UnknownCurrency,
    apply_bps,
    chargeable,
    currency,
    format_money,
    input_text,
    parse_money,
    round_to_step,
    split_by_weights,
)


@pytest.mark.parametrize(
    ("amount", "bps", "expected"),
    [
        (10_000, 1000, 1000),
        (0, 1000, 0),
        (1, 10_000, 1),
        (999, 0, 0),
        (5, 1000, 1),  # 0.5 → 1 (half up)
        (4, 1000, 0),  # 0.4 → 0
        (15, 1000, 2),  # 1.5 → 2
        (25, 1000, 3),  # 2.5 → 3, not banker's 2
        (14, 1000, 1),  # 1.4 → 1
        (1999, 825, 165),  # 164.9175 → 165
        (1234, 1, 0),  # 0.1234 → 0
        (5000, 1, 1),  # 0.5 → 1
        (-5, 1000, -1),  # symmetric: half away from zero
        (-14, 1000, -1),
        (-25, 1000, -3),
    ],
)
def test_apply_bps(amount, bps, expected):
    assert apply_bps(amount, bps) == expected


def test_apply_bps_matches_exact_rounding():
    rng = random.Random(1234)
    for _ in range(2000):
        amount = rng.randint(-(10**9), 10**9)
        bps = rng.randint(0, 10_000)
        exact = Fraction(abs(amount) * bps, 10_000)
        expected = int(exact) + (1 if exact - int(exact) >= Fraction(1, 2) else 0)
        assert apply_bps(amount, bps) == (expected if amount >= 0 else -expected)
        assert isinstance(apply_bps(amount, bps), int)


def test_split_examples():
    assert split_by_weights(100, [1, 1, 1]) == [34, 33, 33]  # tie goes to the earlier weight
    assert split_by_weights(100, [1, 1]) == [50, 50]
    assert split_by_weights(10, [3, 7]) == [3, 7]
    assert split_by_weights(1, [1, 1, 1]) == [1, 0, 0]
    assert split_by_weights(2, [1, 3]) == [1, 1]  # 0.5 / 1.5: equal remainders, earlier wins
    assert split_by_weights(0, [5, 5]) == [0, 0]
    assert split_by_weights(7, [0, 0]) == [4, 3]  # all-zero weights split evenly
    assert split_by_weights(7, [0, 5]) == [0, 7]
    assert split_by_weights(-100, [1, 1, 1]) == [-34, -33, -33]
    assert split_by_weights(1000, [2500, 1500]) == [625, 375]


def test_split_rejects_bad_weights():
    with pytest.raises(ValueError):
        split_by_weights(100, [])
    with pytest.raises(ValueError):
        split_by_weights(100, [1, -1])


@pytest.mark.parametrize("seed", range(5))
def test_split_always_sums_exactly(seed):
    rng = random.Random(seed)
    for _ in range(2000):
        amount = rng.choice([0, 1, 2, 99, rng.randint(-(10**7), 10**7), rng.randint(0, 10**12)])
        count = rng.randint(1, 12)
        weights = [rng.choice([0, 1, rng.randint(0, 10**6)]) for _ in range(count)]
        parts = split_by_weights(amount, weights)
        assert len(parts) == count
        assert sum(parts) == amount
        assert all(isinstance(p, int) for p in parts)
        total = sum(weights) or count
        effective = weights if sum(weights) else [1] * count
        for part, weight in zip(parts, effective, strict=True):
            exact = Fraction(amount * weight, total)
            # Each part is its exact share rounded down or up, never further off.
            assert abs(part - exact) < 1
            if amount >= 0:
                assert part >= 0
            else:
                assert part <= 0


@pytest.mark.parametrize(
    ("code", "exponent", "digits", "step"),
    [
        ("usd", 2, 2, 1),
        ("eur", 2, 2, 1),
        ("jpy", 0, 0, 1),  # Stripe's zero-decimal list: 1234 is ¥1,234
        ("krw", 0, 0, 1),
        ("kwd", 3, 3, 10),  # three decimals at Stripe, the last one 0
        ("bhd", 3, 3, 10),
        ("isk", 2, 0, 100),  # no decimals in ISO, two at Stripe: whole krónur only
        ("huf", 2, 0, 100),
    ],
)
def test_currency_exponents_follow_stripe_and_iso(code, exponent, digits, step):
    money = currency(code.upper())
    assert (money.code, money.exponent, money.digits, money.step) == (code, exponent, digits, step)


def test_unknown_currency_is_refused():
    with pytest.raises(UnknownCurrency):
        currency("xyz")


@pytest.mark.parametrize(
    ("amount", "code", "locale", "shown"),
    [
        (123456, "usd", "en_US", "$1,234.56"),
        (5, "usd", "en_US", "$0.05"),
        (-250, "usd", "en_US", "-$2.50"),
        (100, "eur", "en_US", "€1.00"),
        (123456, "eur", "de_DE", "1.234,56\xa0€"),
        (123456, "eur", "fr_FR", "1\u202f234,56\xa0€"),
        (1234, "jpy", "en_US", "¥1,234"),
        (1234, "jpy", "ja_JP", "￥1,234"),
        (1230, "kwd", "en_US", "KWD1.230"),
        (123400, "isk", "en_US", "ISK1,234"),
        (100, "chf", "de_CH", "CHF\xa01.00"),
    ],
)
def test_format_money_in_the_locale(amount, code, locale, shown):
    assert format_money(amount, code, locale) == shown


@pytest.mark.parametrize(
    ("typed", "code", "locale", "amount"),
    [
        ("12.34", "usd", "en_US", 1234),
        ("$1,234.50", "usd", "en_US", 123450),
        ("12", "usd", "en_US", 1200),
        ("1.234,5", "eur", "de_DE", 123450),
        ("1000", "jpy", "en_US", 1000),  # what a vendor types in yen is what is stored
        ("1,000", "jpy", "en_US", 1000),
        ("¥500", "jpy", "en_US", 500),
        ("1.23", "kwd", "en_US", 1230),
        ("1.230", "kwd", "en_US", 1230),
        ("500", "isk", "en_US", 50000),
    ],
)
def test_parse_money_in_the_currencys_decimals(typed, code, locale, amount):
    assert parse_money(typed, code, locale) == amount
    assert parse_money(input_text(amount, code, locale), code, locale) == amount  # round-trips


@pytest.mark.parametrize(
    ("typed", "code", "message"),
    [
        ("1.5", "jpy", "whole amount"),
        ("12.345", "usd", "at most 2 decimals"),
        ("1.2345", "kwd", "at most 3 decimals"),
        ("1.235", "kwd", "multiple of 0.010"),
        ("1.5", "isk", "whole amount"),
        ("-1", "usd", "negative"),
        ("abc", "usd", "like 12.34"),
        ("1e5", "usd", "like 12.34"),
        ("NaN", "usd", "like 12.34"),
        ("", "usd", "like 12.34"),
        ("1234567890", "usd", "too large"),
    ],
)
def test_parse_money_refuses_with_a_message(typed, code, message):
    with pytest.raises(ValueError, match=message):
        parse_money(typed, code)


def test_round_to_step_and_chargeable_limits():
    assert round_to_step(1234, "usd") == 1234
    assert [round_to_step(a, "kwd") for a in (1234, 1235, 1239, -1235)] == [1230, 1240, 1240, -1240]
    assert round_to_step(12345, "isk") == 12300
    assert not chargeable(49, "usd") and chargeable(50, "usd")
    assert not chargeable(49, "jpy") and chargeable(50, "jpy")  # ¥50, not ¥0.50
    assert chargeable(99_999_999, "usd") and not chargeable(100_000_000, "usd")
    assert chargeable(1230, "kwd") and not chargeable(1235, "kwd")
