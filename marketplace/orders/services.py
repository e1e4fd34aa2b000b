"""Checkout (the first step of the saga), order queries, cancellation and reservation expiry."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, delete, func, select
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from marketplace import jobs, metrics, money
from marketplace.accounts.services import require_verified_email
from marketplace.cart import services as carts
from marketplace.cart.models import Cart, CartItem
from marketplace.catalog.models import Product, ProductImage, Variant, Vendor, VendorStatus
from marketplace.coupons import services as coupons
from marketplace.coupons.models import Coupon
from marketplace.coupons.pricing import CouponNotApplicable, CouponTerms
from marketplace.db import (
    db,
    insert_loaded,
    insert_unless_present,
    on_commit,
    transaction,
    utcnow,
)
from marketplace.errors import Conflict, DomainError, NotFound, ValidationFailed
from marketplace.inventory import services as inventory
from marketplace.inventory.services import OutOfStock
from marketplace.jobs import outbox
from marketplace.observability import current_request_id
from marketplace.orders import commission, fulfilment, shipping_checks, tax
from marketplace.orders import quote as quotes
from marketplace.orders.models import (
    IdempotencyRecord,
    Order,
    OrderItem,
    OrderStatus,
    VendorOrder,
    VendorOrderStatus,
)
from marketplace.orders.quote import Quote, VendorQuote
from marketplace.orders.state import IllegalTransition, record_creation

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX = 255
# Stripe keeps idempotency keys for 24 hours; a week covers any client's retry window.
IDEMPOTENCY_RETENTION = timedelta(days=7)


class CartEmpty(Conflict):
    code, message = "cart_empty", "Your cart is empty."


class PriceChanged(Conflict):
    code = "price_changed"
    message = "Some prices changed since you added the items; your cart now shows the new prices."


class VendorUnavailable(Conflict):
    code, message = "vendor_unavailable", "A vendor in your cart is not selling right now."


class AmountNotChargeable(DomainError):
    status, code = 422, "amount_not_chargeable"
    message = "Card payments in this currency must be between the amounts in details."


class TooManyUnpaidOrders(Conflict):
    code = "too_many_unpaid_orders"
    message = "You have too many orders waiting for payment: pay or cancel one first."


class TooManyHeldUnits(Conflict):
    code = "too_many_held_units"
    message = "Your unpaid orders already hold as many units as one buyer may: pay them first."


class QuoteChanged(Conflict):
    code = "quote_changed"
    message = "The total changed since it was shown to you: check it and place the order again."


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request."


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    message = "A request with this Idempotency-Key is still being processed; retry shortly."


class OrderNotFound(NotFound):
    code, message = "order_not_found", "Order not found."


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    state: str | None = None

    def validated(self) -> Address:
        """:raises ValidationFailed:"""
        fields: dict[str, str] = {}
        for name in ("name", "line1", "city", "postal_code"):
            value = getattr(self, name)
            if not value or not value.strip() or len(value) > 200:
                fields[f"shipping_address.{name}"] = "must be 1 to 200 characters long"
        for name in ("line2", "state"):
            value = getattr(self, name)
            if value is not None and len(value) > 200:
                fields[f"shipping_address.{name}"] = "must be at most 200 characters long"
        if not (len(self.country) == 2 and self.country.isascii() and self.country.isalpha()):
            fields["shipping_address.country"] = "must be an ISO 3166-1 alpha-2 code"
        elif self.state is not None and len(self.state) <= 200:
            state = tax.normalise_region(self.country, self.state)
            try:  # where tax is set by state, only the country's states (tax.check_region)
                tax.check_region(self.country, state, has_region_rates=False)
            except ValidationFailed as unknown:
                fields["shipping_address.state"] = unknown.fields["region"]
        if fields:
            raise ValidationFailed(fields)
        return Address(
            name=self.name.strip(),
            line1=self.line1.strip(),
            line2=(self.line2 or "").strip() or None,
            city=self.city.strip(),
            state=tax.normalise_region(self.country, self.state),
            postal_code=self.postal_code.strip(),
            country=self.country.upper(),
        )


@dataclass
class CheckoutResult:
    order: Order
    replayed: bool


def request_fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@metrics.track_checkout
def checkout(
    buyer_id: int,
    address: Address,
    idempotency_key: str,
    request_hash: str,
    coupon_code: str | None = None,
    expected_total_cents: int | None = None,
    *,
    vat_number: str | None = None,
) -> CheckoutResult:
    """Reserve the cart's stock and create the order with one VendorOrder per vendor.

    The same key with the same request returns the first order (`replayed`); concurrent
    requests with one key create one order. With `expected_total_cents` (the total of the quote
    the buyer saw) nothing is placed when the total came out different. A new order comes back
    as committed, still loaded, so it can be shown without reading it back. With an EU
    `vat_number` of valid format the order is reverse-charged: no VAT (orders.tax).

    :raises CartEmpty, OutOfStock, PriceChanged, VendorUnavailable, IdempotencyKeyReused,
        IdempotencyInProgress, ValidationFailed, QuoteChanged, EmailNotVerified (only with
        REQUIRE_EMAIL_VERIFICATION):
    """
    if not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise ValidationFailed({"Idempotency-Key": "must be 1 to 255 characters long"})
    require_verified_email(buyer_id)
    address = address.validated()
    vat_number = tax.check_vat_number(address.country, vat_number)
    try:
        with transaction(keep_loaded=True):
            try:
                order = _place_order(
                    buyer_id,
                    address,
                    expected_total_cents,
                    (idempotency_key, request_hash),
                    coupon_code=coupon_code,
                    vat_number=vat_number,
                )
            except _REPLAYABLE as no:
                # The key is looked up only when the order could not be placed, not before
                # every checkout: a retry finds its cart emptied by the first order (or the
                # key taken), and a twin that waited on the cart's lock finds the order its
                # sibling committed (each statement sees what committed before it). Looked up
                # before this transaction rolls back, so a refusal costs no second one.
                raise _Refused(no, _key_record(buyer_id, idempotency_key)) from no
            on_commit(_schedule_expiry, order.id, order.reservation_expires_at)
    except _Refused as refused:
        previous = refused.previous
        if previous is not None:
            if previous.request_hash != request_hash:
                raise IdempotencyKeyReused() from None
            return CheckoutResult(buyer_order_details(buyer_id, previous.order_id), replayed=True)
        no = refused.reason
        if isinstance(no, _KeyTaken):
            raise IdempotencyInProgress() from None
        if isinstance(no, PriceChanged):
            _apply_new_prices(buyer_id, no.details["items"], no.details.get("vendors", []))
        raise no from None
    return CheckoutResult(order, replayed=False)


class _KeyTaken(Exception):
    pass


_REPLAYABLE = (_KeyTaken, CartEmpty, OutOfStock, PriceChanged, VendorUnavailable, QuoteChanged)


@dataclass(frozen=True)
class _KeyRecord:
    order_id: int
    request_hash: str


class _Refused(Exception):
    """An order not placed (`reason`), with what its Idempotency-Key had placed before."""

    def __init__(self, reason: Exception, previous: _KeyRecord | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.previous = previous


def _claim_key(buyer_id: int, key: str, request_hash: str, order_id: int) -> None:
    """Record the key with the order it placed: when the same key was committed first (a
    retry, a twin), the insert does nothing and the whole order is rolled back.

    :raises _KeyTaken:
    """
    claimed = db.session.execute(
        insert_unless_present(
            IdempotencyRecord,
            ["user_id", "key"],
            user_id=buyer_id,
            key=key,
            request_hash=request_hash,
            order_id=order_id,
        ).returning(IdempotencyRecord.id)
    ).scalar_one_or_none()
    if claimed is None:
        raise _KeyTaken()


def prune_idempotency_records(now: datetime | None = None) -> int:
    """Forget Idempotency-Keys older than the retention; the same key later is a new request."""
    cutoff = (now or utcnow()) - IDEMPOTENCY_RETENTION
    with transaction():
        result = db.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
        )
    return result.rowcount


@functools.cache
def _key_lookup() -> Any:
    # built once: every refused checkout (a hot SKU's losers) looks its key up
    records = IdempotencyRecord.__table__
    return select(records.c.order_id, records.c.request_hash).where(
        records.c.user_id == bindparam("buyer_id"), records.c.key == bindparam("key")
    )


def _key_record(buyer_id: int, key: str) -> _KeyRecord | None:
    row = db.session.execute(_key_lookup(), {"buyer_id": buyer_id, "key": key}).one_or_none()
    return None if row is None else _KeyRecord(row.order_id, row.request_hash)


@dataclass(frozen=True)
class _PricingContext:
    platform_bps: int
    tax: tax.TaxRates | None = None  # the destination's rates (None: no address, so no tax)
    has_declined_order: bool = False
    unpaid_orders: int = 0  # the buyer's orders holding stock while they await payment
    held_units: int = 0  # units those orders hold


@functools.cache
def _pricing_columns(*, with_region: bool | None, with_buyer: bool) -> tuple[Any, ...]:
    """The platform's commission, the destination's tax rates (`with_region` None: no address)
    and, `with_buyer`, whether a declined order of theirs is waiting to be abandoned, how many
    unpaid orders they have and the units those hold, as columns of one statement.

    Built once per shape, with the buyer and the destination as parameters (`_pricing_params`):
    building these columns and the cache key of the statement around them was, per request,
    more CPU than the statement's own execution (py-spy, bench/run.py's hot SKU).
    """
    columns: list[Any] = [commission.default_bps_column()]
    if with_region is not None:
        columns += tax.rates_columns(with_region=with_region)
    if with_buyer:
        buyer_id = bindparam("buyer_id")
        unpaid = select(Order.id).where(
            Order.buyer_id == buyer_id, Order.status == OrderStatus.PENDING_PAYMENT
        )
        columns += [
            select(func.count()).select_from(unpaid.subquery()).scalar_subquery(),
            inventory.held_units_column(unpaid),
            select(Order.id)
            .where(Order.buyer_id == buyer_id, Order.status == OrderStatus.PAYMENT_FAILED)
            .exists(),
        ]
    return tuple(columns)


def _pricing_shape(address: Address | None, buyer_id: int | None) -> dict[str, Any]:
    return {
        "with_region": None if address is None else bool(address.state),
        "with_buyer": buyer_id is not None,
    }


def _pricing_params(address: Address | None, buyer_id: int | None) -> dict[str, Any]:
    params: dict[str, Any] = commission.default_bps_params()
    if address is not None:
        params.update(tax.rates_params(address.country, address.state))
    if buyer_id is not None:
        params["buyer_id"] = buyer_id
    return params


@functools.cache
def _pricing_statement(*, with_region: bool | None, with_buyer: bool) -> Select[Any]:
    return select(*_pricing_columns(with_region=with_region, with_buyer=with_buyer))


@functools.cache
def _checkout_statements(*, with_region: bool) -> carts.CheckoutStatements:
    return carts.checkout_statements(*_pricing_columns(with_region=with_region, with_buyer=True))


def _pricing_context(
    address: Address | None, buyer_id: int | None = None, row: Any = None
) -> _PricingContext:
    """`_pricing_columns` read (or their values already read, `row`)."""
    if row is None:
        statement = _pricing_statement(**_pricing_shape(address, buyer_id))
        row = db.session.execute(statement, _pricing_params(address, buyer_id)).one()
    rates = tax.rates_from(row[1:5], address.country, address.state) if address else None
    if buyer_id is None:
        return _PricingContext(platform_bps=row[0], tax=rates)
    return _PricingContext(
        platform_bps=row[0],
        tax=rates,
        unpaid_orders=int(row[-3] or 0),
        held_units=int(row[-2] or 0),
        has_declined_order=bool(row[-1]),
    )


def _place_order(
    buyer_id: int,
    address: Address,
    expected_total_cents: int | None,
    idempotency: tuple[str, str],
    *,
    coupon_code: str | None = None,
    vat_number: str | None = None,
) -> Order:
    cart, figures = carts.for_checkout(
        _checkout_statements(with_region=bool(address.state)), _pricing_params(address, buyer_id)
    )
    items = list(cart.items) if cart is not None else []
    if not items:
        raise CartEmpty()
    variants = {item.variant_id: item.variant for item in items}
    _validate_lines(items, variants)
    shipping_checks.check_destination(items, variants, address.country)
    context = _pricing_context(address, buyer_id, figures)
    _check_buyer_caps(context, sum(item.quantity for item in items))
    coupon = _coupon_for(coupon_code, buyer_id, context) if coupon_code else None
    priced = _price(
        items, variants, context, coupon=coupon[1] if coupon else None, vat_number=vat_number
    )
    if expected_total_cents is not None and priced.total_cents != expected_total_cents:
        raise QuoteChanged(
            details={
                "expected_total_cents": expected_total_cents,
                "total_cents": priced.total_cents,
            }
        )
    if not money.chargeable(priced.total_cents, priced.currency):
        limits = money.currency(priced.currency)
        raise AmountNotChargeable(
            details={
                "total_cents": priced.total_cents,
                "min_cents": limits.min_charge,
                "max_cents": limits.max_charge,
                "currency": limits.code,
            }
        )
    inventory.refuse_if_short([(variants[i.variant_id], i.quantity) for i in items])
    ttl = timedelta(seconds=current_app.config["RESERVATION_TTL_SECONDS"])
    expires_at = utcnow() + ttl

    # The rows go out as INSERT … RETURNING statements and come back as the session's loaded
    # objects, the answer read from them: no unit of work to sort and flush on the hot path.
    now = utcnow()
    [order] = insert_loaded(
        Order,
        [
            {
                "buyer_id": buyer_id,
                "status": OrderStatus.PENDING_PAYMENT,
                "currency": priced.currency,
                "subtotal_cents": priced.subtotal_cents,
                "discount_cents": priced.discount_cents,
                "shipping_cents": priced.shipping_cents,
                "tax_cents": priced.tax_cents,
                "total_cents": priced.total_cents,
                "shipping_address": asdict(address),
                "reservation_expires_at": expires_at,
                "request_id": current_request_id(),
                "vat_number": priced.vat_number,
                "reverse_charge": priced.reverse_charge,
                "prices_include_tax": priced.prices_include_tax,
                "coupon_code": coupon[0].code if coupon else None,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    vendors = {variant.vendor_id: variant.product.vendor for variant in variants.values()}
    _add_vendor_orders(order, priced.vendors, vendors, now)
    record_creation(order, actor=f"buyer:{buyer_id}")
    carts.clear(cart)
    if context.has_declined_order:
        _abandon_declined(buyer_id, actor=f"buyer:{buyer_id}")
    if coupon is not None:
        coupons.redeem(coupon[0], order)
    _claim_key(buyer_id, *idempotency, order.id)
    # Last: the stock rows stay locked from their guarded UPDATEs until the commit, and every
    # checkout of the same SKU waits for them (a hot SKU's 100 winners queue on one row).
    try:
        inventory.reserve(order.id, [(i.variant_id, i.quantity) for i in items], expires_at)
    except OutOfStock as short:
        # The key was just claimed, by this order: nothing was placed with it before.
        raise _Refused(short, previous=None) from short
    return order


def _coupon_for(code: str, buyer_id: int, context: _PricingContext) -> tuple[Coupon, CouponTerms]:
    """:raises CouponNotApplicable:"""
    declined: list[int] = []
    if context.has_declined_order:  # abandoned by this checkout: their uses come back
        declined = list(
            db.session.scalars(
                select(Order.id).where(
                    Order.buyer_id == buyer_id, Order.status == OrderStatus.PAYMENT_FAILED
                )
            )
        )
    return coupons.for_checkout(code, buyer_id, releasing_order_ids=declined)


def _check_buyer_caps(context: _PricingContext, units: int) -> None:
    """Open unpaid orders and the stock they hold are capped per buyer, so one account cannot
    take a product off sale by checking out and never paying (the cart's lock orders a buyer's
    checkouts, so two at once cannot both pass)."""
    config = current_app.config
    order_cap, unit_cap = config["MAX_UNPAID_ORDERS_PER_BUYER"], config["MAX_HELD_UNITS_PER_BUYER"]
    if context.unpaid_orders >= order_cap:
        raise TooManyUnpaidOrders(
            details={"limit": order_cap, "unpaid_orders": context.unpaid_orders}
        )
    if context.held_units + units > unit_cap:
        raise TooManyHeldUnits(
            details={"limit": unit_cap, "held_units": context.held_units, "units": units}
        )


def _abandon_declined(buyer_id: int, *, actor: str) -> None:
    """A declined order gave its lines back to the cart, which was just checked out again:
    the old order is cancelled for good and its PaymentIntent voided, so that one cart can
    never be paid twice (an old pay page confirmed later is refused or voided)."""
    declined = db.session.scalars(
        select(Order)
        .where(Order.buyer_id == buyer_id, Order.status == OrderStatus.PAYMENT_FAILED)
        .order_by(Order.id)
        .with_for_update()
    ).all()
    for order in declined:
        fulfilment.abandon_unpaid(order, actor=actor, reason="checked_out_again")


def _variants_of(items: list[CartItem]) -> dict[int, Variant]:
    return {
        v.id: v
        for v in db.session.scalars(
            select(Variant)
            .where(Variant.id.in_([i.variant_id for i in items]))
            .options(selectinload(Variant.product))
        )
    }


def _price(
    items: list[CartItem],
    variants: dict[int, Variant],
    context: _PricingContext,
    *,
    coupon: CouponTerms | None = None,
    vat_number: str | None = None,
) -> Quote:
    """The cart's lines priced at the price each was added at (the checkout's own numbers);
    with a (checked) EU `vat_number`, reverse-charged: no VAT."""
    lines = [
        quotes.Line(variants[i.variant_id], i.quantity, i.unit_price_cents, ref=i.id) for i in items
    ]
    rates = tax.NO_TAX if vat_number else context.tax
    priced = quotes.price(
        lines,
        current_app.config["CURRENCY"],
        rates,
        context.platform_bps,
        coupon=coupon,
        shipping_terms=shipping_checks.seen_terms(items, variants),
        prices_include_tax=current_app.config["PRICES_INCLUDE_TAX"],
    )
    return replace(priced, reverse_charge=True, vat_number=vat_number) if vat_number else priced


def quote_checkout(
    buyer_id: int,
    address: Address,
    coupon_code: str | None = None,
    *,
    vat_number: str | None = None,
) -> Quote:
    """What `checkout` would charge for the cart now, shipped to `address`: every vendor's
    items, shipping, tax and the total. Reads only: no order, no reservation, no cart change.

    Refuses what the checkout would refuse, with the same errors.

    :raises CartEmpty, OutOfStock, PriceChanged, VendorUnavailable, ValidationFailed,
        CouponNotApplicable:
    """
    address = address.validated()
    vat_number = tax.check_vat_number(address.country, vat_number)
    cart = db.session.scalar(select(Cart).where(Cart.buyer_id == buyer_id))
    items = list(cart.items) if cart is not None else []
    if not items:
        raise CartEmpty()
    variants = _variants_of(items)
    try:
        _validate_lines(items, variants)
    except PriceChanged as changed:
        raise PriceChanged(
            "Some prices changed since you added the items: update your cart to see them.",
            details=changed.details,
        ) from None
    inventory.refuse_if_short([(variants[i.variant_id], i.quantity) for i in items])
    shipping_checks.check_destination(items, variants, address.country)
    coupon = coupons.for_checkout(coupon_code, buyer_id)[1] if coupon_code else None
    return _price(items, variants, _pricing_context(address), coupon=coupon, vat_number=vat_number)


@dataclass(frozen=True)
class CartPage:
    """The cart page's figures: the buyable lines priced per vendor (no tax: no address yet)
    and the lines that cannot be bought any more, `(ref, title, quantity)`."""

    quote: Quote
    unavailable: list[tuple[int, str, int]]
    coupon_error: str | None = None  # why the code entered does not apply (priced without it)
    covers: dict[int, ProductImage] = field(default_factory=dict)  # product id → its picture

    @property
    def empty(self) -> bool:
        return not self.quote.vendors and not self.unavailable


def cart_page(buyer_id: int, coupon_code: str | None = None) -> CartPage:
    """The buyer's cart priced as the checkout would price it, less the tax; with
    `coupon_code`, less its discount (or priced without it, saying why)."""
    cart = carts.get_cart(buyer_id)
    items = list(cart.items)
    variants = _variants_of(items) if items else {}
    sellable = [i for i in items if carts.is_sellable(variants[i.variant_id])]
    unavailable = [
        (i.id, quotes.item_title(variants[i.variant_id]), i.quantity)
        for i in items
        if i not in sellable
    ]
    context = _pricing_context(None)
    covers = _covers(variants.values())
    if coupon_code and sellable:
        try:
            coupon = coupons.for_checkout(coupon_code, buyer_id)[1]
            return CartPage(
                _price(sellable, variants, context, coupon=coupon), unavailable, covers=covers
            )
        except CouponNotApplicable as refused:
            return CartPage(
                _price(sellable, variants, context), unavailable, refused.message, covers=covers
            )
    return CartPage(_price(sellable, variants, context), unavailable, covers=covers)


def _covers(variants: Iterable[Variant]) -> dict[int, ProductImage]:
    """The pictures of the variants' products, loaded with them."""
    return {v.product_id: v.product.cover for v in variants if v.product.cover is not None}


def guest_cart_page(lines: list[tuple[int, int]]) -> CartPage:
    """A guest's cart, `(variant_id, quantity)` at today's prices (refs are variant ids)."""
    priced, unavailable = [], []
    variants = {
        v.id: v
        for v in db.session.scalars(
            select(Variant)
            .where(Variant.id.in_([variant_id for variant_id, _ in lines]))
            .options(joinedload(Variant.product).joinedload(Product.images))
        ).unique()
    }
    for variant_id, quantity in lines:
        variant = variants.get(variant_id)
        if variant is None or quantity < 1:
            continue
        if carts.is_sellable(variant):
            priced.append(quotes.Line(variant, quantity, variant.price_cents, ref=variant.id))
        else:
            unavailable.append((variant.id, quotes.item_title(variant), quantity))
    quote = quotes.price(priced, current_app.config["CURRENCY"], None, commission.default_bps())
    return CartPage(quote, unavailable, covers=_covers(variants.values()))


def _can_sell(vendor: Vendor) -> bool:
    """Approved, and able to receive its transfers (Connect onboarding finished)."""
    return vendor.status is VendorStatus.APPROVED and vendor.payouts_enabled


def _validate_lines(items: list[CartItem], variants: dict[int, Variant]) -> None:
    unavailable_vendors = sorted(
        {
            variants[i.variant_id].vendor_id
            for i in items
            if not _can_sell(variants[i.variant_id].product.vendor)
        }
    )
    if unavailable_vendors:
        raise VendorUnavailable(details={"vendor_ids": unavailable_vendors})
    unsellable = sorted(
        i.variant_id for i in items if not carts.is_sellable(variants[i.variant_id])
    )
    if unsellable:
        raise OutOfStock(details={"variant_ids": unsellable})
    changed = [
        {
            "variant_id": i.variant_id,
            "old_price_cents": i.unit_price_cents,
            "new_price_cents": variants[i.variant_id].price_cents,
        }
        for i in items
        if i.unit_price_cents != variants[i.variant_id].price_cents
    ]
    shipping_changed = shipping_checks.changed_terms(items, variants)
    if changed or shipping_changed:
        details: dict[str, Any] = {"items": changed}
        if shipping_changed:
            details["vendors"] = shipping_changed
        raise PriceChanged(details=details)


def _add_vendor_orders(
    order: Order, quotes: list[VendorQuote], vendors: dict[int, Vendor], now: datetime
) -> None:
    """The order's VendorOrders and their items, two statements for any number of vendors,
    kept on the order (and each on its vendor) for the answer."""
    vendor_orders = insert_loaded(
        VendorOrder,
        [
            {
                "order_id": order.id,
                "vendor_id": priced.vendor_id,
                "status": VendorOrderStatus.PENDING_PAYMENT,
                "subtotal_cents": priced.subtotal_cents,
                "shipping_cents": priced.shipping_cents,
                "discount_cents": priced.discount_cents,
                "tax_cents": priced.tax_cents,
                "shipping_tax_cents": priced.shipping_tax_cents,
                "total_cents": priced.total_cents,
                "platform_fee_cents": priced.platform_fee_cents,
                "vendor_earnings_cents": priced.vendor_earnings_cents,
                "created_at": now,
                "updated_at": now,
            }
            for priced in quotes
        ],
    )
    items = insert_loaded(
        OrderItem,
        [
            {
                "order_id": order.id,
                "vendor_order_id": vendor_order.id,
                "variant_id": line.variant_id,
                "product_id": line.product_id,
                "sku": line.sku,
                "title": line.title,
                "quantity": line.quantity,
                "unit_price_cents": line.unit_price_cents,
                "line_total_cents": line.line_total_cents,
                "tax_cents": line.tax_cents,
                "commission_bps": line.commission_bps,
                "platform_fee_cents": line.platform_fee_cents,
                "refunded_quantity": 0,
                "discount_cents": line.discount_cents,
            }
            for vendor_order, priced in zip(vendor_orders, quotes, strict=True)
            for line in priced.lines
        ],
    )
    lines_of: dict[int, list[OrderItem]] = {vo.id: [] for vo in vendor_orders}
    for item in items:
        lines_of[item.vendor_order_id].append(item)
    for vendor_order in vendor_orders:
        set_committed_value(vendor_order, "order", order)
        set_committed_value(vendor_order, "vendor", vendors[vendor_order.vendor_id])
        set_committed_value(vendor_order, "items", lines_of[vendor_order.id])
    set_committed_value(order, "vendor_orders", vendor_orders)


def _apply_new_prices(
    buyer_id: int,
    changes: list[dict[str, int]],
    shipping_changes: list[dict[str, Any]] | None = None,
) -> None:
    new_prices = {c["variant_id"]: c["new_price_cents"] for c in changes}
    new_terms = {c["vendor_id"] for c in shipping_changes or []}
    with transaction():
        cart: Cart = carts.for_buyer(buyer_id, lock=True)
        for item in cart.items:
            if item.variant_id in new_prices:
                item.unit_price_cents = new_prices[item.variant_id]
            if item.variant.vendor_id in new_terms:
                item.shipping_terms_seen = carts.terms_seen(item.variant)


def _whole_second_after(moment: datetime) -> datetime:
    """`moment` rounded up to a whole second. RQ's scheduler keeps whole seconds and drops the
    fraction, so a job scheduled at 12:00:00.7 could start at 12:00:00, before its time."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def _schedule_expiry(order_id: int, expires_at: datetime, *, again: bool = False) -> None:
    try:
        jobs.enqueue_at(
            _whole_second_after(expires_at),
            "marketplace.orders.jobs.expire_order",
            order_id,
            # A job running early schedules a fresh one: reusing its own id while it runs
            # would let RQ's bookkeeping of the finishing job clobber the new one.
            job_id=None if again else f"expire-order-{order_id}",
        )
    except Exception:  # Redis away: the periodic sweeper expires it instead
        log.warning("expiry of order %s not scheduled; the sweeper will catch it", order_id)


# --- queries -------------------------------------------------------------------------------


# Everything `order_json` reads, in two statements: the order with its own history, then its
# parts with their vendor, lines and history (few rows each, so joined rather than one query
# per collection).
_ORDER_DETAILS = (
    joinedload(Order.history),
    selectinload(Order.vendor_orders).options(
        joinedload(VendorOrder.vendor),
        joinedload(VendorOrder.items).joinedload(OrderItem.product).joinedload(Product.images),
        joinedload(VendorOrder.history),
    ),
)


def buyer_order(buyer_id: int, order_id: int) -> Order:
    """:raises OrderNotFound: missing or someone else's."""
    order = db.session.get(Order, order_id)
    if order is None or order.buyer_id != buyer_id:
        raise OrderNotFound()
    return order


class OrderItemNotFound(NotFound):
    code, message = "order_item_not_found", "That item is not part of this order."


def buyer_item(buyer_id: int, order_id: int, item_id: int) -> OrderItem:
    """:raises OrderItemNotFound: not this buyer's order, or not an item of it."""
    order = db.session.get(Order, order_id)
    item = db.session.get(OrderItem, item_id)
    if order is None or order.buyer_id != buyer_id or item is None or item.order_id != order_id:
        raise OrderItemNotFound()
    return item


def buyer_order_details(buyer_id: int, order_id: int) -> Order:
    """The order with its parts, lines and history loaded, for showing all of it.

    :raises OrderNotFound: missing or someone else's.
    """
    order = db.session.get(Order, order_id, options=_ORDER_DETAILS, populate_existing=True)
    if order is None or order.buyer_id != buyer_id:
        raise OrderNotFound()
    return order


def buyer_orders(buyer_id: int, page: int, per_page: int) -> tuple[list[Order], int]:
    from marketplace.catalog.services import _paginate

    query = (
        select(Order)
        .where(Order.buyer_id == buyer_id)
        .order_by(Order.id.desc())
        .options(*_ORDER_DETAILS)
    )
    return _paginate(query, page, per_page)


# --- cancellation and expiry ---------------------------------------------------------------


def cancel_by_buyer(buyer_id: int, order_id: int) -> Order:
    """Cancel what has not shipped: an unpaid order's stock is released at once; paid parts
    not yet shipped are cancelled, their stock restocked and their money voided or refunded.

    :raises OrderNotFound, IllegalTransition:
    """
    actor = f"buyer:{buyer_id}"
    with transaction():
        buyer_order(buyer_id, order_id)
        order = fulfilment.locked_order(order_id)
        assert order is not None
        if order.status in UNPAID:
            fulfilment.abandon_unpaid(order, actor=actor, reason="cancelled_by_buyer")
        elif fulfilment.cancel_paid_parts(order, actor=actor, reason="cancelled_by_buyer") == 0:
            raise IllegalTransition(
                "Nothing is left to cancel: every part has shipped, been cancelled or refunded.",
                details={"order_id": order.id, "from": order.status.value, "to": "cancelled"},
            )
    return order


UNPAID = fulfilment.UNPAID


@dataclass(frozen=True)
class StockHold:
    """How long checkout holds an unpaid order's stock; `seconds_left` 0 once it ran out."""

    expires_at: datetime
    seconds_left: int

    @property
    def expired(self) -> bool:
        return self.seconds_left <= 0

    @property
    def about(self) -> str:
        """The time left in words, for pages without JavaScript."""
        minutes = round(self.seconds_left / 60)
        if self.seconds_left < 60:
            return "less than a minute"
        return f"about {minutes} minute{'' if minutes == 1 else 's'}"


def stock_hold(order: Order, now: datetime | None = None) -> StockHold | None:
    """The hold of an order waiting for payment, or of one cancelled because the hold ran
    out; None for any other order (a declined payment already gave its stock back)."""
    if order.status is not OrderStatus.PENDING_PAYMENT and not fulfilment.expired_cancellation(
        order
    ):
        return None
    left = (order.reservation_expires_at - (now or utcnow())).total_seconds()
    if fulfilment.expired_cancellation(order):
        left = 0
    return StockHold(order.reservation_expires_at, max(0, int(left)))


def expire_order(order_id: int, now: datetime | None = None) -> bool:
    """Release an unpaid order's reservations once they expired and cancel it. Idempotent.

    Returns whether this call cancelled the order.
    """
    now = now or utcnow()
    with transaction():
        order = fulfilment.locked_order(order_id)
        if order is None:
            return False
        if order.status not in UNPAID or order.reservation_expires_at > now:
            return False
        fulfilment.cancel_unpaid(order, actor="system", reason="reservation_expired")
        outbox.add("marketplace.notifications.jobs.reservation_expired", order.id)
    return True


def expire_order_when_due(order_id: int, now: datetime | None = None) -> bool:
    """The scheduled expiry job: expire the order, or, if it ran before the reservation's
    expiry (clocks, the scheduler's whole seconds), schedule itself again at the expiry, so
    stock comes back at the TTL rather than at the next sweep. Returns whether it cancelled."""
    now = now or utcnow()
    if expire_order(order_id, now=now):
        return True
    order = db.session.get(Order, order_id)
    early = order is not None and order.status in UNPAID and order.reservation_expires_at > now
    expires_at = order.reservation_expires_at if early else None
    db.session.rollback()
    if expires_at is not None:
        _schedule_expiry(order_id, expires_at, again=True)
    return False


def expired_unpaid_order_ids(now: datetime | None = None, limit: int = 500) -> list[int]:
    now = now or utcnow()
    return list(
        db.session.scalars(
            select(Order.id)
            .where(Order.status.in_(UNPAID), Order.reservation_expires_at <= now)
            .order_by(Order.id)
            .limit(limit)
        )
    )
