"""Cents arithmetic: basis points round half up, splits always add up to the cent."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from marketplace.money import apply_bps, format_cents, split_by_weights


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


def test_format_cents():
    assert format_cents(123456) == "$1,234.56"
    assert format_cents(5) == "$0.05"
    assert format_cents(-250) == "-$2.50"
    assert format_cents(100, "eur") == "€1.00"
    assert format_cents(100, "chf") == "1.00 CHF"
