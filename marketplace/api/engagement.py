"""Reviews, returns and in-app notifications."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from typing_extensions import TypedDict

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import (
    body,
    current_user,
    current_vendor,
    page_of,
    pagination,
    require,
)
from marketplace.catalog.services import public_product
from marketplace.errors import ValidationFailed
from marketplace.notifications import services as notifications
from marketplace.orders import returns
from marketplace.orders.models import ReturnStatus
from marketplace.reviews import services as reviews
from marketplace.settlement import refunds
from marketplace.validation import Body


class ReviewBody(Body):
    rating: int
    body: str = ""


class ReplyBody(Body):
    body: str


class ReturnBody(Body):
    quantity: int = 1
    reason: str


class AcceptReturnBody(Body):
    restock: bool = True


class DeclineReturnBody(Body):
    reason: str


class NotificationJson(TypedDict):
    id: int
    kind: str
    title: str
    body: str
    link: str | None
    created_at: str
    read: bool


class NotificationsJson(TypedDict):
    items: list[NotificationJson]
    unread: int


class MarkedJson(TypedDict):
    marked: int


@bp.post("/orders/<int:order_id>/items/<int:item_id>/review")
@require(Role.BUYER)
def create_review(order_id: int, item_id: int) -> Any:
    data = body(ReviewBody)
    review = reviews.create_review(current_user().id, order_id, item_id, data.rating, data.body)
    return jsonify(reviews.review_json(review)), 201


@bp.get("/products/<int:product_id>/reviews")
def product_reviews(product_id: int) -> Any:
    public_product(product_id)
    page, per_page = pagination()
    items, total = reviews.product_reviews(product_id, page, per_page)
    return jsonify(page_of([reviews.review_json(r) for r in items], total, page, per_page))


@bp.get("/vendor/reviews")
@require(Role.VENDOR)
def list_vendor_reviews() -> Any:
    page, per_page = pagination()
    items, total = reviews.vendor_reviews(current_vendor().id, page, per_page)
    return jsonify(page_of([reviews.review_json(r) for r in items], total, page, per_page))


@bp.post("/vendor/reviews/<int:review_id>/reply")
@require(Role.VENDOR)
def reply_to_review(review_id: int) -> Any:
    data = body(ReplyBody)
    return jsonify(reviews.review_json(reviews.reply(current_vendor().id, review_id, data.body)))


@bp.post("/orders/<int:order_id>/items/<int:item_id>/return")
@require(Role.BUYER)
def request_return(order_id: int, item_id: int) -> Any:
    data = body(ReturnBody)
    created = returns.request_return(
        current_user().id, order_id, item_id, data.quantity, data.reason
    )
    return jsonify(returns.return_json(created)), 201


@bp.get("/vendor/returns")
@require(Role.VENDOR)
def list_vendor_returns() -> Any:
    status_arg = request.args.get("status")
    status = None
    if status_arg:
        if status_arg not in {s.value for s in ReturnStatus}:
            raise ValidationFailed({"status": "must be requested, accepted or declined"})
        status = ReturnStatus(status_arg)
    items = [returns.return_json(r) for r in returns.vendor_returns(current_vendor().id, status)]
    return jsonify({"items": items, "total": len(items), "page": 1, "per_page": len(items)})


@bp.post("/vendor/returns/<int:return_id>/accept")
@require(Role.VENDOR)
def accept_return(return_id: int) -> Any:
    data = body(AcceptReturnBody)
    decided = refunds.accept_return(current_vendor().id, return_id, restock=data.restock)
    return jsonify(returns.return_json(decided))


@bp.post("/vendor/returns/<int:return_id>/decline")
@require(Role.VENDOR)
def decline_return(return_id: int) -> Any:
    data = body(DeclineReturnBody)
    return jsonify(
        returns.return_json(returns.decline_return(current_vendor().id, return_id, data.reason))
    )


@bp.get("/notifications")
@require()
def list_notifications() -> Any:
    items = notifications.notifications_for(current_user().id)
    return jsonify(
        {
            "items": [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "title": n.title,
                    "body": n.body,
                    "link": n.link,
                    "created_at": n.created_at.isoformat(),
                    "read": n.read_at is not None,
                }
                for n in items
            ],
            "unread": sum(1 for n in items if n.read_at is None),
        }
    )


@bp.post("/notifications/read")
@require()
def read_notifications() -> Any:
    return jsonify({"marked": notifications.mark_read(current_user().id)})
