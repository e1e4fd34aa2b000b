"""The buyer's cart."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import body, current_user, require
from marketplace.cart import services as carts
from marketplace.ratelimits import cart_limit
from marketplace.validation import Body, Id


class AddItemBody(Body):
    variant_id: Id
    quantity: int = 1


class QuantityBody(Body):
    quantity: int


@bp.get("/cart")
@require(Role.BUYER)
def get_cart() -> Any:
    return jsonify(carts.cart_json(carts.get_cart(current_user().id)))


@bp.post("/cart/items")
@cart_limit
@require(Role.BUYER)
def add_cart_item() -> Any:
    data = body(AddItemBody)
    return jsonify(carts.add_item(current_user().id, data.variant_id, data.quantity)), 201


@bp.patch("/cart/items/<int:item_id>")
@cart_limit
@require(Role.BUYER)
def patch_cart_item(item_id: int) -> Any:
    data = body(QuantityBody)
    return jsonify(carts.set_quantity(current_user().id, item_id, data.quantity))


@bp.delete("/cart/items/<int:item_id>")
@cart_limit
@require(Role.BUYER)
def delete_cart_item(item_id: int) -> Any:
    return jsonify(carts.remove_item(current_user().id, item_id))
