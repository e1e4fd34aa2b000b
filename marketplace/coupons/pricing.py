"""A coupon's discount on priced lines: which lines it applies to, how much, and each line's part.

Pure functions of the lines and the coupon's terms, used by `orders.quote.price()`, so the quote
a buyer sees and the order placed carry the same numbers.

Rules (docs/coupons.md):
- the discount is taken on items only, never on shipping or tax; tax is charged on the
  discounted line amounts;
- eligible lines: the coupon's scope, and only the funding vendor's lines for a vendor coupon;
  the minimum order value is measured on the eligible lines;
- a vendor coupon's discount is split over the eligible lines in proportion to their amounts
  (largest remainder), and commission is taken on what is left of each line;
- a platform coupon is paid out of the platform's commission: the vendor's earnings do not
  change, so the discount is capped at the commission on the eligible lines and split in
  proportion to each line's commission (largest remainder), which keeps every line's share
  (and so every VendorOrder's) within its commission.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplace.errors import DomainError
from marketplace.money import apply_bps, currency, split_by_weights

REASONS = {
    "unknown": "There is no coupon with this code.",
    "expired": "This coupon has expired.",
    "not_started": "This coupon is not valid yet.",
    "exhausted": "This coupon has been used as many times as it may be.",
    "buyer_limit": "You have already used this coupon as many times as you may.",
    "out_of_scope": "This coupon does not apply to anything in your cart.",
    "below_minimum": "Your cart does not reach this coupon's minimum order value.",
}


class CouponNotApplicable(DomainError):
    """422 `coupon_not_applicable`; `details.reason` names why and `details.fields` carries the
    message for the `coupon_code` field."""

    status, code = 422, "coupon_not_applicable"

    def __init__(self, reason: str, **extra: Any) -> None:
        message = REASONS[reason]
        super().__init__(
            message, details={"reason": reason, "fields": {"coupon_code": message}, **extra}
        )
        self.reason = reason


@dataclass(frozen=True)
class CouponTerms:
    """What pricing needs of a coupon (read from its row, or built by a test)."""

    code: str
    kind: str  # "percent" | "fixed"
    value: int  # basis points (percent) or minor units (fixed)
    vendor_id: int | None  # None: the platform's coupon
    scope: str = "cart"  # "cart" | "vendor" | "categories" | "products"
    scope_ids: frozenset[int] = frozenset()
    min_order_cents: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @property
    def platform_funded(self) -> bool:
        return self.vendor_id is None

    def check_window(self, now: datetime) -> None:
        """:raises CouponNotApplicable: not started or expired."""
        if self.starts_at is not None and now < self.starts_at:
            raise CouponNotApplicable("not_started")
        if self.ends_at is not None and now >= self.ends_at:
            raise CouponNotApplicable("expired")

    def applies_to(self, vendor_id: int, product_id: int, category_ids: Sequence[int]) -> bool:
        """Whether a line of this product (in these categories, nearest first) is eligible."""
        if self.vendor_id is not None and vendor_id != self.vendor_id:
            return False
        if self.scope == "vendor":
            return vendor_id in self.scope_ids
        if self.scope == "products":
            return product_id in self.scope_ids
        if self.scope == "categories":
            return any(c in self.scope_ids for c in category_ids)
        return True


@dataclass(frozen=True)
class EligibleLine:
    amount_cents: int  # the line's total before the discount
    commission_cents: int  # the commission on that total


def discount_total(terms: CouponTerms, lines: Sequence[EligibleLine], currency_code: str) -> int:
    """The coupon's discount on the eligible lines, in the currency's chargeable steps.

    :raises CouponNotApplicable: no eligible line, or below the minimum order value.
    """
    eligible = sum(line.amount_cents for line in lines)
    if not lines or eligible <= 0:
        raise CouponNotApplicable("out_of_scope")
    if eligible < terms.min_order_cents:
        raise CouponNotApplicable("below_minimum", min_order_cents=terms.min_order_cents)
    step = currency(currency_code).step
    wanted = apply_bps(eligible, terms.value) if terms.kind == "percent" else terms.value
    cap = eligible
    if terms.platform_funded:
        cap = min(cap, sum(line.commission_cents for line in lines))
    discount = min(wanted, cap)
    return discount - discount % step  # never rounded up past the cap


def allocate(terms: CouponTerms, lines: Sequence[EligibleLine], discount: int) -> list[int]:
    """Each eligible line's part of `discount`, by largest remainder: in proportion to the
    lines' amounts (vendor coupon) or their commission (platform coupon). With `discount`
    within the sum of the weights, no part exceeds its line's weight."""
    if not lines:
        return []
    if terms.platform_funded:
        weights = [line.commission_cents for line in lines]
    else:
        weights = [line.amount_cents for line in lines]
    assert 0 <= discount <= sum(weights)
    return split_by_weights(discount, weights) if discount else [0] * len(lines)


def discounted_commission(
    terms: CouponTerms, amount_cents: int, commission_cents: int, part: int, bps: int
) -> int:
    """The platform's commission on a line once `part` of the discount is on it: a vendor coupon
    takes commission on the discounted amount; a platform coupon pays out of the commission."""
    if terms.platform_funded:
        return commission_cents - part
    return apply_bps(amount_cents - part, bps)


def line_discounts(
    terms: CouponTerms,
    lines: Sequence[Any],
    currency_code: str,
    commission_bps: Callable[[Any], int],
) -> dict[int, int]:
    """The discount on each of `lines` (`orders.quote.Line`), keyed by `id(line)`; lines the
    coupon does not apply to are absent. `commission_bps(line)` is the line's commission rate.

    :raises CouponNotApplicable: out of scope, below the minimum.
    """
    eligible: list[tuple[Any, EligibleLine]] = []
    for line in lines:
        product = line.variant.product
        if not terms.applies_to(product.vendor_id, product.id, _category_ids(product.category)):
            continue
        amount = line.quantity * line.unit_price_cents
        bps = commission_bps(line)
        eligible.append((line, EligibleLine(amount, apply_bps(amount, bps))))
    weights = [e for _, e in eligible]
    discount = discount_total(terms, weights, currency_code)
    parts = allocate(terms, weights, discount)
    return {id(line): part for (line, _), part in zip(eligible, parts, strict=True) if part}


def _category_ids(category: Any) -> list[int]:
    ids = []
    while category is not None:
        ids.append(category.id)
        category = category.parent
    return ids
