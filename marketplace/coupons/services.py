"""Coupons: vendors and admins manage them; checkout applies, redeems and gives back their uses.

The use limits hold under concurrency because the counter `coupons.uses_count` only moves by a
conditional UPDATE inside the checkout's transaction (`uses_count < max_uses`): PostgreSQL
re-checks the condition on the row once a concurrent transaction holding it commits, so of 100
checkouts racing for the last use exactly one matches. SQLite takes its write lock at the
start of every write transaction (BEGIN IMMEDIATE), so checkouts there run one after another.
A buyer's own limit is counted from the redemptions while the cart's row lock (taken first by
checkout) keeps that buyer's checkouts apart.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from flask import current_app
from sqlalchemy import delete, func, select, update
from typing_extensions import TypedDict

from marketplace.audit import services as audit
from marketplace.catalog.models import Category, Product, Vendor
from marketplace.coupons.models import Coupon, CouponKind, CouponRedemption, CouponScope
from marketplace.coupons.pricing import CouponNotApplicable, CouponTerms
from marketplace.db import db, transaction, utcnow
from marketplace.errors import NotFound, ValidationFailed
from marketplace.money import currency

CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{2,39}")
MAX_AMOUNT = 10**9
MAX_SCOPE_IDS = 200


class CouponNotFound(NotFound):
    code, message = "coupon_not_found", "Coupon not found."


def normalize_code(code: str) -> str:
    return code.strip().upper()


# --- checkout ------------------------------------------------------------------------------


def terms_of(coupon: Coupon) -> CouponTerms:
    return CouponTerms(
        code=coupon.code,
        kind=coupon.kind.value,
        value=coupon.percent_bps if coupon.kind is CouponKind.PERCENT else coupon.amount_cents,  # type: ignore[arg-type]
        vendor_id=coupon.vendor_id,
        scope=coupon.scope.value,
        scope_ids=frozenset(coupon.scope_ids or []),
        min_order_cents=coupon.min_order_cents,
        starts_at=coupon.starts_at,
        ends_at=coupon.ends_at,
    )


def for_checkout(
    code: str,
    buyer_id: int,
    now: datetime | None = None,
    *,
    releasing_order_ids: Collection[int] = (),
) -> tuple[Coupon, CouponTerms]:
    """The coupon behind `code` if `buyer_id` may use it now (its window and limits; its scope
    and minimum are checked when the cart is priced). Uses by `releasing_order_ids` (declined
    orders this very checkout abandons, which gives their uses back) do not count.

    :raises CouponNotApplicable: unknown, not started, expired, exhausted, buyer_limit.
    """
    coupon = db.session.scalar(
        select(Coupon).where(
            Coupon.code == normalize_code(code), Coupon.active, Coupon.deleted_at.is_(None)
        )
    )
    if coupon is None:
        raise CouponNotApplicable("unknown")
    terms = terms_of(coupon)
    terms.check_window(now or utcnow())
    mine, releasing = db.session.execute(
        select(
            func.count(CouponRedemption.id),
            func.count(CouponRedemption.id).filter(
                CouponRedemption.order_id.in_(list(releasing_order_ids))
            ),
        ).where(CouponRedemption.coupon_id == coupon.id, CouponRedemption.buyer_id == buyer_id)
    ).one()
    if coupon.max_uses is not None and coupon.uses_count - releasing >= coupon.max_uses:
        raise CouponNotApplicable("exhausted")
    if coupon.max_uses_per_buyer is not None and mine - releasing >= coupon.max_uses_per_buyer:
        raise CouponNotApplicable("buyer_limit")
    return coupon, terms


def redeem(coupon: Coupon, order: Any) -> None:
    """Count the order as a use of the coupon (in the checkout's transaction, after any declined
    order was abandoned).

    :raises CouponNotApplicable: exhausted by a checkout that committed meanwhile.
    """
    taken = db.session.execute(
        update(Coupon)
        .where(
            Coupon.id == coupon.id,
            (Coupon.max_uses.is_(None)) | (Coupon.uses_count < Coupon.max_uses),
        )
        .values(uses_count=Coupon.uses_count + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise CouponNotApplicable("exhausted")
    db.session.add(
        CouponRedemption(
            coupon_id=coupon.id,
            order_id=order.id,
            buyer_id=order.buyer_id,
            discount_cents=order.discount_cents,
        )
    )
    if order.coupon_code != coupon.code:  # a checkout inserts the order with its code
        order.coupon_code = coupon.code


def release(order: Any) -> None:
    """An order that ends unpaid (cancelled, abandoned, its hold expired) gives its use back."""
    if order.coupon_code is None:
        return
    coupon_id = db.session.scalar(
        delete(CouponRedemption)
        .where(CouponRedemption.order_id == order.id)
        .returning(CouponRedemption.coupon_id)
    )
    if coupon_id is not None:
        db.session.execute(
            update(Coupon)
            .where(Coupon.id == coupon_id)
            .values(uses_count=Coupon.uses_count - 1)
            .execution_options(synchronize_session=False)
        )


def retake(order: Any) -> None:
    """An expired order paid late takes its use again: it was priced with the coupon and is
    bought at that price, so it counts even if the limit was reached meanwhile."""
    if order.coupon_code is None:
        return
    if db.session.scalar(select(CouponRedemption.id).where(CouponRedemption.order_id == order.id)):
        return
    coupon = db.session.scalar(select(Coupon).where(Coupon.code == order.coupon_code))
    if coupon is None:
        return
    db.session.execute(
        update(Coupon)
        .where(Coupon.id == coupon.id)
        .values(uses_count=Coupon.uses_count + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.add(
        CouponRedemption(
            coupon_id=coupon.id,
            order_id=order.id,
            buyer_id=order.buyer_id,
            discount_cents=order.discount_cents,
        )
    )


# --- management ----------------------------------------------------------------------------


@dataclass
class CouponInput:
    """A coupon's terms as given by a vendor or an admin (a PATCH sets only `sent`)."""

    code: str | None = None
    kind: str | None = None
    percent_bps: int | None = None
    amount_cents: int | None = None
    min_order_cents: int | None = None
    starts_at: str | datetime | None = None
    ends_at: str | datetime | None = None
    max_uses: int | None = None
    max_uses_per_buyer: int | None = None
    scope: str | None = None
    scope_ids: list[int] | None = None
    active: bool | None = None
    sent: frozenset[str] = field(default_factory=frozenset)


_REQUIRED = ("code", "kind")


def _parse_time(value: str | datetime | None, name: str, errors: dict[str, str]) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors[name] = "must be an ISO 8601 date and time"
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _apply(coupon: Coupon, data: CouponInput, vendor_id: int | None) -> None:
    """Set the sent fields on `coupon` and check the result. :raises ValidationFailed:"""
    errors: dict[str, str] = {}
    sent = data.sent
    if "code" in sent:
        code = normalize_code(data.code or "")
        if not CODE.fullmatch(code):
            errors["code"] = "must be 3 to 40 letters, digits, '-' or '_'"
        elif code != coupon.code and db.session.scalar(
            select(Coupon.id).where(Coupon.code == code)
        ):
            errors["code"] = "is taken already"
        else:
            coupon.code = code
    if "kind" in sent:
        if data.kind not in {k.value for k in CouponKind}:
            errors["kind"] = "must be 'percent' or 'fixed'"
        else:
            coupon.kind = CouponKind(data.kind)
    for name in ("percent_bps", "amount_cents", "max_uses", "max_uses_per_buyer"):
        if name in sent:
            setattr(coupon, name, getattr(data, name))
    if "min_order_cents" in sent:
        coupon.min_order_cents = data.min_order_cents or 0
    for name in ("starts_at", "ends_at"):
        if name in sent:
            setattr(coupon, name, _parse_time(getattr(data, name), name, errors))
    if "scope" in sent:
        if data.scope not in {s.value for s in CouponScope}:
            errors["scope"] = "must be one of cart, vendor, categories, products"
        else:
            coupon.scope = CouponScope(data.scope)
    if "scope_ids" in sent:
        coupon.scope_ids = sorted(set(data.scope_ids or []))
    if "active" in sent and data.active is not None:
        coupon.active = data.active
    if coupon.kind is CouponKind.PERCENT:
        coupon.amount_cents = None
        if coupon.percent_bps is None or not 1 <= coupon.percent_bps <= 10_000:
            errors.setdefault("percent_bps", "must be between 1 and 10000")
    elif coupon.kind is CouponKind.FIXED:
        coupon.percent_bps = None
        step = currency(current_app.config["CURRENCY"]).step
        if coupon.amount_cents is None or not 1 <= coupon.amount_cents <= MAX_AMOUNT:
            errors.setdefault("amount_cents", f"must be between 1 and {MAX_AMOUNT}")
        elif coupon.amount_cents % step:
            errors.setdefault("amount_cents", f"must be a multiple of {step}")
    if not 0 <= (coupon.min_order_cents or 0) <= MAX_AMOUNT:
        errors["min_order_cents"] = f"must be between 0 and {MAX_AMOUNT}"
    for name in ("max_uses", "max_uses_per_buyer"):
        value = getattr(coupon, name)
        if value is not None and not 1 <= value <= MAX_AMOUNT:
            errors[name] = f"must be between 1 and {MAX_AMOUNT}, or null for no limit"
    if coupon.starts_at and coupon.ends_at and coupon.ends_at <= coupon.starts_at:
        errors["ends_at"] = "must be after starts_at"
    _check_scope(coupon, vendor_id, errors)
    if errors:
        raise ValidationFailed(errors)


def _check_scope(coupon: Coupon, vendor_id: int | None, errors: dict[str, str]) -> None:
    ids = list(coupon.scope_ids or [])
    scope = coupon.scope
    if len(ids) > MAX_SCOPE_IDS:
        errors["scope_ids"] = f"at most {MAX_SCOPE_IDS}"
        return
    if scope is CouponScope.CART:
        if ids:
            errors["scope_ids"] = "must be empty for scope 'cart'"
        return
    if scope is CouponScope.VENDOR:
        if vendor_id is not None:
            errors["scope"] = "a vendor's coupon applies to its own lines: use 'cart'"
        elif len(ids) != 1 or db.session.get(Vendor, ids[0]) is None:
            errors["scope_ids"] = "must be the id of one vendor"
        return
    if not ids:
        errors["scope_ids"] = f"must list at least one id for scope '{scope.value}'"
        return
    if scope is CouponScope.CATEGORIES:
        found = db.session.scalars(select(Category.id).where(Category.id.in_(ids))).all()
    else:
        query = select(Product.id).where(Product.id.in_(ids))
        if vendor_id is not None:
            query = query.where(Product.vendor_id == vendor_id)
        found = db.session.scalars(query).all()
    missing = sorted(set(ids) - set(found))
    if missing:
        what = "categories" if scope is CouponScope.CATEGORIES else "your products"
        if vendor_id is None and scope is CouponScope.PRODUCTS:
            what = "products"
        errors["scope_ids"] = f"not {what}: {', '.join(map(str, missing))}"


def _input_fields() -> list[str]:
    return [f.name for f in fields(CouponInput) if f.name != "sent"]


def create(data: CouponInput, *, vendor_id: int | None) -> Coupon:
    """A new coupon: `vendor_id` None is the platform's (audited).

    :raises ValidationFailed:
    """
    missing = {name: "required" for name in _REQUIRED if name not in data.sent}
    if missing:
        raise ValidationFailed(missing)
    with transaction():
        coupon = Coupon(
            vendor_id=vendor_id,
            code="",
            min_order_cents=0,
            uses_count=0,
            scope=CouponScope.CART,
            scope_ids=[],
            active=True,
        )
        _apply(coupon, data, vendor_id)
        db.session.add(coupon)
        db.session.flush()
        if vendor_id is None:
            audit.record("coupon.create", "coupon", coupon.id, None, coupon.to_audit())
    return coupon


def get(coupon_id: int, *, vendor_id: int | None) -> Coupon:
    """:raises CouponNotFound: missing, deleted, or not this owner's (vendor or platform)."""
    coupon = db.session.get(Coupon, coupon_id)
    if coupon is None or coupon.deleted_at is not None or coupon.vendor_id != vendor_id:
        raise CouponNotFound()
    return coupon


def update_coupon(coupon_id: int, data: CouponInput, *, vendor_id: int | None) -> Coupon:
    """:raises CouponNotFound, ValidationFailed:"""
    with transaction():
        coupon = get(coupon_id, vendor_id=vendor_id)
        before = coupon.to_audit()
        _apply(coupon, data, vendor_id)
        if vendor_id is None:
            audit.record("coupon.update", "coupon", coupon.id, before, coupon.to_audit())
    return coupon


def delete_coupon(coupon_id: int, *, vendor_id: int | None) -> None:
    """Withdraw a coupon: it stops applying; its row, code and redemptions stay.

    :raises CouponNotFound:
    """
    with transaction():
        coupon = get(coupon_id, vendor_id=vendor_id)
        coupon.deleted_at = utcnow()
        coupon.active = False
        if vendor_id is None:
            audit.record("coupon.delete", "coupon", coupon.id, coupon.to_audit(), None)


def list_coupons(*, vendor_id: int | None) -> list[Coupon]:
    """The owner's coupons (the platform's: `vendor_id` None), newest first."""
    owner = Coupon.vendor_id.is_(None) if vendor_id is None else Coupon.vendor_id == vendor_id
    return list(
        db.session.scalars(
            select(Coupon).where(owner, Coupon.deleted_at.is_(None)).order_by(Coupon.id.desc())
        )
    )


class CouponJson(TypedDict):
    id: int
    code: str
    funded_by: Literal["platform", "vendor"]
    vendor_id: int | None
    kind: Literal["percent", "fixed"]
    percent_bps: int | None
    amount_cents: int | None
    min_order_cents: int
    starts_at: str | None
    ends_at: str | None
    max_uses: int | None
    max_uses_per_buyer: int | None
    uses_count: int
    scope: Literal["cart", "vendor", "categories", "products"]
    scope_ids: list[int]
    active: bool
    created_at: str


class CouponListJson(TypedDict):
    items: list[CouponJson]


def coupon_json(coupon: Coupon) -> CouponJson:
    return {
        "id": coupon.id,
        "code": coupon.code,
        "funded_by": "platform" if coupon.vendor_id is None else "vendor",
        "vendor_id": coupon.vendor_id,
        "kind": coupon.kind.value,  # type: ignore[typeddict-item]
        "percent_bps": coupon.percent_bps,
        "amount_cents": coupon.amount_cents,
        "min_order_cents": coupon.min_order_cents,
        "starts_at": coupon.starts_at.isoformat() if coupon.starts_at else None,
        "ends_at": coupon.ends_at.isoformat() if coupon.ends_at else None,
        "max_uses": coupon.max_uses,
        "max_uses_per_buyer": coupon.max_uses_per_buyer,
        "uses_count": coupon.uses_count,
        "scope": coupon.scope.value,  # type: ignore[typeddict-item]
        "scope_ids": list(coupon.scope_ids or []),
        "active": coupon.active,
        "created_at": coupon.created_at.isoformat(),
    }


def input_from(values: dict[str, Any], sent: set[str] | frozenset[str]) -> CouponInput:
    known = set(_input_fields())
    return CouponInput(
        **{k: v for k, v in values.items() if k in known}, sent=frozenset(sent & known)
    )
