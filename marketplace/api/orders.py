"""Checkout and the buyer's orders."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from flask import jsonify, request
from typing_extensions import TypedDict

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import current_user, json_body, page_of, pagination, require
from marketplace.errors import ValidationFailed
from marketplace.orders import services as orders
from marketplace.orders.presenters import OrderJson, order_json
from marketplace.orders.quote import quote_json
from marketplace.ratelimits import checkout_limit
from marketplace.settlement import authorize
from marketplace.validation import Body, parse


class AddressBody(Body):
    name: str
    line1: str
    line2: str | None = None
    city: str
    state: str | None = None
    postal_code: str
    country: str


class CheckoutBody(Body):
    shipping_address: AddressBody
    coupon_code: str | None = None
    # An EU business buyer's VAT number (format checked, no VIES lookup): reverse charge.
    vat_number: str | None = None


class PaymentErrorJson(TypedDict):
    code: str
    message: str


class PaymentJson(TypedDict):
    """What the client needs to confirm the card payment with Stripe.js."""

    provider: Literal["stripe"]
    payment_intent_id: str | None
    client_secret: str | None
    publishable_key: str | None
    api_base: str
    status: str | None
    error: NotRequired[PaymentErrorJson]  # Stripe could not be reached: replay the checkout


class CheckoutJson(TypedDict):
    order: OrderJson
    payment: PaymentJson


@bp.post("/checkout")
@checkout_limit
@require(Role.BUYER)
def checkout() -> Any:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise ValidationFailed(
            {"Idempotency-Key": "header required"}, "An Idempotency-Key header is required."
        )
    raw = json_body()
    data = parse(CheckoutBody, raw)
    buyer_id = current_user().id  # read before the commit expires the user
    result = orders.checkout(
        buyer_id,
        orders.Address(**data.shipping_address.model_dump()),
        key,
        orders.request_fingerprint(raw),
        coupon_code=data.coupon_code,
        vat_number=data.vat_number,
    )
    payment = authorize.payment_for_checkout(result.order.id)
    response = jsonify({"order": order_json(result.order), "payment": payment})
    response.status_code = 201
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.post("/checkout/quote")
@require(Role.BUYER)
def checkout_quote() -> Any:
    """What the checkout would charge now: each vendor's items, shipping, tax, the total.

    The same body as `POST /checkout`; nothing is reserved, placed or changed.
    """
    data = parse(CheckoutBody, json_body())
    address = orders.Address(**data.shipping_address.model_dump())
    quote = orders.quote_checkout(
        current_user().id, address, coupon_code=data.coupon_code, vat_number=data.vat_number
    )
    return jsonify(quote_json(quote))


@bp.get("/orders")
@require(Role.BUYER)
def list_orders() -> Any:
    page, per_page = pagination()
    items, total = orders.buyer_orders(current_user().id, page, per_page)
    return jsonify(page_of([order_json(o) for o in items], total, page, per_page))


@bp.get("/orders/<int:order_id>")
@require(Role.BUYER)
def get_order(order_id: int) -> Any:
    return jsonify(order_json(orders.buyer_order_details(current_user().id, order_id)))


@bp.post("/orders/<int:order_id>/cancel")
@require(Role.BUYER)
def cancel_order(order_id: int) -> Any:
    return jsonify(order_json(orders.cancel_by_buyer(current_user().id, order_id)))
