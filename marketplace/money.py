"""Money as integer cents: basis points and largest-remainder splits that add up exactly."""

from __future__ import annotations

from collections.abc import Sequence

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


def format_cents(amount_cents: int, currency: str = "usd") -> str:
    """Human display, e.g. 1234 → '$12.34'."""
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency.lower(), "")
    sign = "-" if amount_cents < 0 else ""
    whole, cents = divmod(abs(amount_cents), 100)
    text = f"{sign}{symbol}{whole:,}.{cents:02d}"
    return text if symbol else f"{text} {currency.upper()}"
