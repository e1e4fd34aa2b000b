"""Reviews: only verified purchases, only once delivered, once per item; ratings kept as
aggregates (sum and count) on the product and the vendor, in the same transaction."""

from __future__ import annotations

from sqlalchemy import select, update
from typing_extensions import TypedDict

from marketplace.catalog.models import Product, Vendor
from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.orders.models import VendorOrderStatus
from marketplace.orders.services import buyer_item
from marketplace.reviews.models import Review
from marketplace.search import indexing as search_indexing

REVIEWABLE = (VendorOrderStatus.DELIVERED, VendorOrderStatus.COMPLETED)


class NotDelivered(Conflict):
    code, message = "not_delivered", "You can review an item once it has been delivered."


class AlreadyReviewed(Conflict):
    code, message = "already_reviewed", "You already reviewed this item."


class AlreadyReplied(Conflict):
    code, message = "already_replied", "You already replied to this review."


class ReviewNotFound(NotFound):
    code, message = "review_not_found", "Review not found."


def create_review(buyer_id: int, order_id: int, item_id: int, rating: int, body: str) -> Review:
    """:raises OrderItemNotFound, NotDelivered, AlreadyReviewed, ValidationFailed:"""
    fields = {}
    if not 1 <= rating <= 5:
        fields["rating"] = "must be between 1 and 5"
    if len(body) > 5000:
        fields["body"] = "must be at most 5000 characters long"
    if fields:
        raise ValidationFailed(fields)
    with transaction():
        item = buyer_item(buyer_id, order_id, item_id)
        if item.vendor_order.status not in REVIEWABLE:
            raise NotDelivered()
        if db.session.scalar(select(Review.id).where(Review.order_item_id == item.id)):
            raise AlreadyReviewed()
        review = Review(
            order_item_id=item.id,
            buyer_id=buyer_id,
            product_id=item.product_id,
            vendor_id=item.vendor_order.vendor_id,
            rating=rating,
            body=body.strip(),
        )
        db.session.add(review)
        db.session.flush()
        for model, row_id in ((Product, item.product_id), (Vendor, review.vendor_id)):
            db.session.execute(
                update(model)
                .where(model.id == row_id)
                .values(rating_sum=model.rating_sum + rating, rating_count=model.rating_count + 1)
                .execution_options(synchronize_session=False)
            )
        search_indexing.product_changed(item.product_id)  # ratings are a search facet
    return review


def reply(vendor_id: int, review_id: int, body: str) -> Review:
    """:raises ReviewNotFound, AlreadyReplied, ValidationFailed:"""
    if not 1 <= len(body.strip()) <= 5000:
        raise ValidationFailed({"body": "must be 1 to 5000 characters long"})
    with transaction():
        review = db.session.get(Review, review_id)
        if review is None or review.vendor_id != vendor_id:
            raise ReviewNotFound()
        if review.reply is not None:
            raise AlreadyReplied()
        review.reply = body.strip()
        review.replied_at = utcnow()
    return review


def product_reviews(product_id: int, page: int, per_page: int) -> tuple[list[Review], int]:
    from marketplace.catalog.services import _paginate

    query = select(Review).where(Review.product_id == product_id).order_by(Review.id.desc())
    return _paginate(query, page, per_page)


def vendor_reviews(vendor_id: int, page: int, per_page: int) -> tuple[list[Review], int]:
    from marketplace.catalog.services import _paginate

    query = select(Review).where(Review.vendor_id == vendor_id).order_by(Review.id.desc())
    return _paginate(query, page, per_page)


class ReviewJson(TypedDict):
    id: int
    order_item_id: int
    product_id: int
    vendor_id: int
    rating: int
    body: str
    reply: str | None
    replied_at: str | None
    created_at: str


def review_json(review: Review) -> ReviewJson:
    return {
        "id": review.id,
        "order_item_id": review.order_item_id,
        "product_id": review.product_id,
        "vendor_id": review.vendor_id,
        "rating": review.rating,
        "body": review.body,
        "reply": review.reply,
        "replied_at": review.replied_at.isoformat() if review.replied_at else None,
        "created_at": review.created_at.isoformat(),
    }
