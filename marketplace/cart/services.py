"""The buyer's cart: lines keep their price; guest carts merge in at login."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, Select, bindparam, delete, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value
from typing_extensions import TypedDict

from marketplace.cart.models import Cart, CartItem
from marketplace.catalog import shipping
from marketplace.catalog.models import Category, Product, ProductStatus, Variant, VendorStatus
from marketplace.db import db, transaction
from marketplace.errors import Conflict, NotFound, ValidationFailed

MAX_QUANTITY = 100


class CartItemNotFound(NotFound):
    code, message = "cart_item_not_found", "That item is not in your cart."


class VariantUnavailable(NotFound):
    code, message = "variant_not_found", "That product is not for sale."


class InsufficientStock(Conflict):
    code, message = "out_of_stock", "Not enough stock for that quantity."


# A cart with its lines, their variants, products and the products' images (all `cart_json`
# reads), in one statement.
_WITH_LINES = (
    joinedload(Cart.items)
    .joinedload(CartItem.variant)
    .joinedload(Variant.product)
    .joinedload(Product.images)
)


@functools.cache
def _cart_query(lock: bool) -> Select[tuple[Cart]]:
    # Built once, the buyer a parameter (`buyer_id`): see `checkout_statements`.
    query = select(Cart).where(Cart.buyer_id == bindparam("buyer_id")).options(_WITH_LINES)
    return query.with_for_update(of=Cart) if lock else query


def for_buyer(buyer_id: int, *, lock: bool = False) -> Cart:
    """The buyer's cart with its lines, created on first use (call inside a transaction)."""
    cart = db.session.scalars(_cart_query(lock), {"buyer_id": buyer_id}).unique().one_or_none()
    if cart is None:
        cart = Cart(buyer_id=buyer_id)
        db.session.add(cart)
        db.session.flush()
        if lock:
            cart = db.session.scalars(_cart_query(lock), {"buyer_id": buyer_id}).unique().one()
    return cart


class CheckoutStatements(NamedTuple):
    locked_cart: Select[Any]  # the cart, locked, with what pricing reads, then the figures
    figures: Select[Any]  # the figures alone (a buyer without a cart)


def checkout_statements(*also: ColumnElement[Any]) -> CheckoutStatements:
    """The statements `for_checkout` runs, with the buyer as the parameter `buyer_id`: the cart
    locked until the transaction ends, with everything pricing reads, in one statement (lines,
    variants, products, their vendors and categories two levels up), and `also`, more figures
    the checkout needs, read in the same round trip. Build them once and keep them: a statement
    object keeps its cache key, which is otherwise computed again on every request."""
    product = joinedload(Cart.items).joinedload(CartItem.variant).joinedload(Variant.product)
    locked_cart = (
        select(Cart, *also)
        .where(Cart.buyer_id == bindparam("buyer_id"))
        .options(
            product.joinedload(Product.vendor),
            product.joinedload(Product.category)
            .joinedload(Category.parent)
            .joinedload(Category.parent),
        )
        .with_for_update(of=Cart)
    )
    return CheckoutStatements(locked_cart, select(*also))


def for_checkout(
    statements: CheckoutStatements, params: dict[str, Any]
) -> tuple[Cart | None, Row[Any]]:
    """The buyer's cart (`params["buyer_id"]`) locked until the transaction ends, with what
    pricing reads; and the row of the other figures' values (read on their own without a
    cart). See `checkout_statements`."""
    found = db.session.execute(statements.locked_cart, params).unique().one_or_none()
    if found is None:
        return None, db.session.execute(statements.figures, params).one()
    return found[0], found[1:]


def get_cart(buyer_id: int) -> Cart:
    cart = db.session.scalars(_cart_query(False), {"buyer_id": buyer_id}).unique().one_or_none()
    if cart is None:
        with transaction():
            cart = for_buyer(buyer_id)
    return cart


def sellable_variant(variant_id: int) -> Variant:
    """An active variant of an active product of an approved vendor. :raises VariantUnavailable:"""
    variant = (
        db.session.scalars(_sellable_variant_query(), {"variant_id": variant_id})
        .unique()
        .one_or_none()
    )
    if variant is None or not is_sellable(variant):
        raise VariantUnavailable()
    return variant


@functools.cache
def _sellable_variant_query() -> Select[tuple[Variant]]:
    return (
        select(Variant)
        .where(Variant.id == bindparam("variant_id"))
        .options(
            joinedload(Variant.product).joinedload(Product.vendor),
            # its cover goes into the cart's answer when the line is new
            joinedload(Variant.product).joinedload(Product.images),
        )
    )


def terms_seen(variant: Variant) -> dict[str, Any]:
    """What a line remembers of its vendor's shipping terms (like its unit price)."""
    return dict(shipping.terms_of(variant.product.vendor).to_json())


def is_sellable(variant: Variant) -> bool:
    product: Product = variant.product
    return (
        variant.is_active
        and product.status is ProductStatus.ACTIVE
        and product.vendor.status is VendorStatus.APPROVED
    )


def _check_quantity(quantity: int, low: int) -> None:
    if not low <= quantity <= MAX_QUANTITY:
        raise ValidationFailed({"quantity": f"must be between {low} and {MAX_QUANTITY}"})


def add_item(buyer_id: int, variant_id: int, quantity: int) -> CartJson:
    """Add units of a variant; the same variant adds up. Returns the cart's JSON.

    :raises ValidationFailed, VariantUnavailable, InsufficientStock:
    """
    _check_quantity(quantity, 1)
    with transaction():
        variant = sellable_variant(variant_id)
        cart = for_buyer(buyer_id, lock=True)
        item = next((i for i in cart.items if i.variant_id == variant_id), None)
        wanted = quantity + (item.quantity if item else 0)
        _check_quantity(wanted, 1)
        if wanted > variant.available:
            raise InsufficientStock(
                details={"variant_ids": [variant_id], "available": variant.available}
            )
        if item is None:
            cart.items.append(
                CartItem(
                    variant=variant,
                    quantity=quantity,
                    unit_price_cents=variant.price_cents,
                    shipping_terms_seen=terms_seen(variant),
                )
            )
        else:
            item.quantity = wanted
        return _answer(cart)


def _answer(cart: Cart) -> dict[str, Any]:
    """The changed cart's JSON, read before the commit expires it, so answering costs no query."""
    db.session.flush()
    return cart_json(cart)


def _own_item(cart: Cart, item_id: int) -> CartItem:
    item = next((i for i in cart.items if i.id == item_id), None)
    if item is None:
        raise CartItemNotFound()
    return item


def set_quantity(buyer_id: int, item_id: int, quantity: int) -> CartJson:
    """Change a line's quantity; 0 removes it. Returns the cart's JSON.

    :raises ValidationFailed, CartItemNotFound, InsufficientStock:
    """
    _check_quantity(quantity, 0)
    with transaction():
        cart = for_buyer(buyer_id, lock=True)
        item = _own_item(cart, item_id)
        if quantity == 0:
            cart.items.remove(item)
        else:
            if quantity > item.quantity and quantity > item.variant.available:
                raise InsufficientStock(
                    details={"variant_ids": [item.variant_id], "available": item.variant.available}
                )
            item.quantity = quantity
        return _answer(cart)


def remove_item(buyer_id: int, item_id: int) -> CartJson:
    """:raises CartItemNotFound:"""
    return set_quantity(buyer_id, item_id, 0)


def merge_guest_lines(buyer_id: int, lines: list[tuple[int, int]]) -> None:
    """Merge a guest cart at login: quantities add, capped by what is available."""
    with transaction():
        cart = for_buyer(buyer_id, lock=True)
        for variant_id, quantity in lines:
            variant = db.session.get(Variant, variant_id)
            if variant is None or not is_sellable(variant) or quantity < 1:
                continue
            item = next((i for i in cart.items if i.variant_id == variant_id), None)
            have = item.quantity if item else 0
            wanted = min(have + quantity, variant.available, MAX_QUANTITY)
            if wanted <= have:
                continue
            if item is None:
                cart.items.append(
                    CartItem(
                        variant_id=variant_id,
                        quantity=wanted,
                        unit_price_cents=variant.price_cents,
                        shipping_terms_seen=terms_seen(variant),
                    )
                )
            else:
                item.quantity = wanted


def take_back_lines(buyer_id: int, lines: list[tuple[int, int]]) -> None:
    """Remove units restored by a failed payment once the order got paid after all."""
    cart = for_buyer(buyer_id, lock=True)
    wanted = dict(lines)
    for item in list(cart.items):
        if item.variant_id in wanted:
            left = item.quantity - wanted[item.variant_id]
            if left <= 0:
                cart.items.remove(item)
            else:
                item.quantity = left


def clear(cart: Cart) -> None:
    """Empty the cart in one statement, in the caller's transaction."""
    db.session.execute(_clear_statement(), {"cart_id": cart.id})
    set_committed_value(cart, "items", [])


@functools.cache
def _clear_statement() -> Any:
    table = CartItem.__table__
    return delete(table).where(table.c.cart_id == bindparam("cart_id"))


def _line_image(product: Product) -> LineImageJson | None:
    """The product's cover at both widths, for the cart line (None without images)."""
    cover = product.cover
    if cover is None:
        return None
    return {"alt_text": cover.alt_text, "urls": cover.to_dict()["urls"]}


class LineImageJson(TypedDict):
    alt_text: str
    urls: dict[str, str]


class CartItemJson(TypedDict):
    id: int
    variant_id: int
    product_id: int
    sku: str
    title: str
    attributes: dict[str, str | int | float | bool]
    vendor_id: int
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    available: int
    image: LineImageJson | None


class CartVendorJson(TypedDict):
    vendor_id: int
    subtotal_cents: int


class CartJson(TypedDict):
    id: int
    currency: str
    items: list[CartItemJson]
    subtotal_cents: int
    vendors: list[CartVendorJson]


def cart_json(cart: Cart) -> CartJson:
    items: list[CartItemJson] = []
    vendors: dict[int, int] = {}
    for item in cart.items:
        variant = item.variant
        items.append(
            {
                "id": item.id,
                "variant_id": item.variant_id,
                "product_id": variant.product_id,
                "sku": variant.sku,
                "title": variant.product.title,
                "attributes": variant.attributes or {},
                "vendor_id": variant.vendor_id,
                "quantity": item.quantity,
                "unit_price_cents": item.unit_price_cents,
                "line_total_cents": item.line_total_cents,
                "available": variant.available,
                "image": _line_image(variant.product),
            }
        )
        vendors[variant.vendor_id] = vendors.get(variant.vendor_id, 0) + item.line_total_cents
    return {
        "id": cart.id,
        "currency": cart.currency,
        "items": items,
        "subtotal_cents": sum(i["line_total_cents"] for i in items),
        "vendors": [{"vendor_id": v, "subtotal_cents": s} for v, s in sorted(vendors.items())],
    }
