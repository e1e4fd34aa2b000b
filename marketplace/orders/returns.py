"""Returns: a buyer asks to send back delivered units; the vendor declines with a reason, or
accepts (`settlement.refund.accept_return`: the refund path, restock optional)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from typing_extensions import TypedDict

from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.jobs import outbox
from marketplace.orders.models import ReturnRequest, ReturnStatus, VendorOrderStatus
from marketplace.orders.services import buyer_item

RETURNABLE = (VendorOrderStatus.DELIVERED, VendorOrderStatus.COMPLETED)


class NotReturnable(Conflict):
    code, message = "not_returnable", "Only delivered items can be returned."


class ReturnNotFound(NotFound):
    code, message = "return_not_found", "Return request not found."


class ReturnAlreadyDecided(Conflict):
    code, message = "return_already_decided", "This return request was already decided."


def _open_quantity(order_item_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(ReturnRequest.quantity), 0)).where(
                ReturnRequest.order_item_id == order_item_id,
                ReturnRequest.status == ReturnStatus.REQUESTED,
            )
        )
        or 0
    )


def request_return(
    buyer_id: int, order_id: int, item_id: int, quantity: int, reason: str
) -> ReturnRequest:
    """:raises OrderItemNotFound, NotReturnable, ValidationFailed:"""
    if not 1 <= len(reason.strip()) <= 500:
        raise ValidationFailed({"reason": "must be 1 to 500 characters long"})
    with transaction():
        item = buyer_item(buyer_id, order_id, item_id)
        if item.vendor_order.status not in RETURNABLE:
            raise NotReturnable()
        left = item.quantity - item.refunded_quantity - _open_quantity(item.id)
        if not 1 <= quantity <= left:
            raise ValidationFailed({"quantity": f"must be between 1 and {max(left, 0)}"})
        request = ReturnRequest(
            order_item_id=item.id,
            vendor_order_id=item.vendor_order_id,
            buyer_id=buyer_id,
            quantity=quantity,
            reason=reason.strip(),
            status=ReturnStatus.REQUESTED,
        )
        db.session.add(request)
        db.session.flush()
        outbox.add("marketplace.notifications.jobs.return_requested", request.id)
    return request


def vendor_return(vendor_id: int, return_id: int) -> ReturnRequest:
    request = db.session.get(ReturnRequest, return_id)
    if request is None or request.vendor_order.vendor_id != vendor_id:
        raise ReturnNotFound()
    return request


def vendor_returns(vendor_id: int, status: ReturnStatus | None = None) -> list[ReturnRequest]:
    from marketplace.orders.models import VendorOrder

    query = (
        select(ReturnRequest)
        .join(VendorOrder, VendorOrder.id == ReturnRequest.vendor_order_id)
        .where(VendorOrder.vendor_id == vendor_id)
        .order_by(ReturnRequest.id.desc())
    )
    if status is not None:
        query = query.where(ReturnRequest.status == status)
    return list(db.session.scalars(query))


def claim_decision(return_id: int) -> None:
    """Stamp `decided_at` on a still-undecided request, so two deciders never both act.

    :raises ReturnAlreadyDecided: someone else decided (or is deciding) it first.
    """
    claimed = db.session.execute(
        update(ReturnRequest)
        .where(
            ReturnRequest.id == return_id,
            ReturnRequest.status == ReturnStatus.REQUESTED,
            ReturnRequest.decided_at.is_(None),
        )
        .values(decided_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise ReturnAlreadyDecided()


def release_decision(return_id: int) -> None:
    """The refund failed: the request is undecided again and can be retried."""
    db.session.execute(
        update(ReturnRequest)
        .where(ReturnRequest.id == return_id, ReturnRequest.status == ReturnStatus.REQUESTED)
        .values(decided_at=None)
        .execution_options(synchronize_session=False)
    )


def record_accepted(return_id: int, *, restock: bool, refund_id: int) -> ReturnRequest:
    """The return's refund was made (or is with Stripe): the request is accepted for good."""
    request = db.session.get(ReturnRequest, return_id)
    request.status = ReturnStatus.ACCEPTED
    request.restock = restock
    request.refund_id = refund_id
    outbox.add("marketplace.notifications.jobs.return_decided", request.id)
    return request


def decline_return(vendor_id: int, return_id: int, reason: str) -> ReturnRequest:
    """:raises ReturnNotFound, ReturnAlreadyDecided, ValidationFailed:"""
    if not 1 <= len(reason.strip()) <= 500:
        raise ValidationFailed({"reason": "must be 1 to 500 characters long"})
    with transaction():
        request = vendor_return(vendor_id, return_id)
        claim_decision(return_id)
        db.session.refresh(request)
        request.status = ReturnStatus.DECLINED
        request.decision_reason = reason.strip()
        outbox.add("marketplace.notifications.jobs.return_decided", request.id)
    return request


class ReturnJson(TypedDict):
    id: int
    order_item_id: int
    vendor_order_id: int
    quantity: int
    reason: str
    status: ReturnStatus
    decision_reason: str | None
    restock: bool
    refund_id: int | None
    created_at: str
    decided_at: str | None


def return_json(request: ReturnRequest) -> ReturnJson:
    return {
        "id": request.id,
        "order_item_id": request.order_item_id,
        "vendor_order_id": request.vendor_order_id,
        "quantity": request.quantity,
        "reason": request.reason,
        "status": request.status.value,
        "decision_reason": request.decision_reason,
        "restock": request.restock,
        "refund_id": request.refund_id,
        "created_at": request.created_at.isoformat(),
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
    }
