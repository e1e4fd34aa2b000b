"""Vendor fulfilment pages: the order queue, one order with its actions, low stock, earnings
and reviews.

The views call the same service functions as the JSON API (`api/vendor_orders.py`): ship,
deliver, cancel, refund preview and refund, returns, earnings, review replies. Access is the
blueprint's: `require_vendor` (routes.py) runs before every view; another vendor's order,
return or review is reported as missing (404) before any form is looked at, so nothing about it
leaks and nothing changes. A service's refusal is flashed and the page shown again with the
service's 4xx status.
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from marketplace.accounts.models import User
from marketplace.catalog.models import Product, ProductStatus, Variant, Vendor
from marketplace.db import db
from marketplace.errors import DomainError, NotFound, ValidationFailed
from marketplace.money import shop_money
from marketplace.orders import fulfilment, returns
from marketplace.orders.models import (
    Order,
    OrderItem,
    ReturnRequest,
    ReturnStatus,
    VendorOrder,
    VendorOrderStatus,
)
from marketplace.payouts import earnings
from marketplace.payouts.models import Refund
from marketplace.reviews import services as reviews
from marketplace.reviews.models import Review
from marketplace.settlement import refunds
from marketplace.validation import is_whole_number
from marketplace.vendors import bp
from marketplace.vendors.forms import add_domain_error
from marketplace.vendors.fulfilment_forms import (
    DEFAULT_TAB,
    TABS,
    AcceptReturnForm,
    CancelForm,
    DeclineReturnForm,
    DeliverForm,
    OrderFilterForm,
    RefundFields,
    RefundForm,
    RefundPreviewForm,
    ReplyForm,
    ShipForm,
    quantities,
)
from marketplace.vendors.routes import current_vendor

PER_PAGE = 20
DEFAULT_REFUND_REASON = "requested_by_vendor"  # the API's default
V = VendorOrderStatus
SHIPPABLE = (V.PAID, V.PROCESSING)
REFUNDABLE = (V.PAID, V.PROCESSING, V.SHIPPED, V.DELIVERED, V.COMPLETED)


def _pages(total: int, per_page: int = PER_PAGE) -> int:
    return max(1, -(-total // per_page))


def _page_arg() -> int:
    page = request.args.get("page", 1, type=int) or 1
    return min(max(page, 1), 10**6)


# --- queries of these pages (read-only) ------------------------------------------------------


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _queue_filters(vendor_id: int, q: str) -> list[Any]:
    """WHERE clauses of the queue: this vendor's VendorOrders, matching the search text.

    Digits (optionally after '#') match the order number or the vendor order number;
    anything else is part of the buyer's email.
    """
    clauses: list[Any] = [VendorOrder.vendor_id == vendor_id]
    text = q.strip()
    number = text.removeprefix("#").strip()
    if is_whole_number(number):
        clauses.append(or_(VendorOrder.order_id == int(number), VendorOrder.id == int(number)))
    elif text:
        clauses.append(User.email.ilike(f"%{_escape_like(text.lower())}%", escape="\\"))
    return clauses


def _joined(query: Select[Any]) -> Select[Any]:
    return query.join(Order, Order.id == VendorOrder.order_id).join(User, User.id == Order.buyer_id)


def tab_counts(vendor_id: int, q: str = "") -> dict[str, int]:
    """How many of this vendor's VendorOrders (matching `q`) each tab holds."""
    rows = db.session.execute(
        _joined(select(VendorOrder.status, func.count(VendorOrder.id)))
        .where(*_queue_filters(vendor_id, q))
        .group_by(VendorOrder.status)
    ).all()
    by_status = {VendorOrderStatus(status).value: int(count) for status, count in rows}
    counts = {
        name: sum(by_status.get(s, 0) for s in statuses)
        for name, (_, statuses) in TABS.items()
        if statuses
    }
    counts["all"] = sum(by_status.values())
    return counts


def vendor_order_queue(
    vendor_id: int, tab: str, q: str, page: int, per_page: int = PER_PAGE
) -> tuple[list[tuple[VendorOrder, str]], int]:
    """One page of (VendorOrder, buyer email) for a tab; the oldest first in "to ship" (the
    order to work in), the newest first elsewhere."""
    clauses = _queue_filters(vendor_id, q)
    statuses = TABS[tab][1]
    if statuses:
        clauses.append(VendorOrder.status.in_([VendorOrderStatus(s) for s in statuses]))
    total = db.session.scalar(_joined(select(func.count(VendorOrder.id))).where(*clauses))
    order = VendorOrder.id.asc() if tab == DEFAULT_TAB else VendorOrder.id.desc()
    rows = db.session.execute(
        _joined(select(VendorOrder, User.email))
        .where(*clauses)
        .options(
            selectinload(VendorOrder.items).joinedload(OrderItem.product).joinedload(Product.images)
        )
        .order_by(order)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return [(vo, email) for vo, email in rows], int(total or 0)


def low_stock_variants(vendor_id: int, page: int, per_page: int = 50) -> tuple[list[Variant], int]:
    """This vendor's active variants (of products not archived) whose available stock is at
    or below their low-stock threshold, the emptiest first."""
    available = Variant.on_hand - Variant.reserved
    where = (
        Variant.vendor_id == vendor_id,
        Variant.is_active.is_(True),
        Product.status != ProductStatus.ARCHIVED,
        available <= Variant.low_stock_threshold,
    )
    total = db.session.scalar(
        select(func.count(Variant.id)).join(Product, Product.id == Variant.product_id).where(*where)
    )
    variants = db.session.scalars(
        select(Variant)
        .join(Product, Product.id == Variant.product_id)
        .where(*where)
        .options(selectinload(Variant.product))
        .order_by(available, Variant.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return list(variants), int(total or 0)


def refunds_of(vendor_order_id: int) -> list[Refund]:
    return list(
        db.session.scalars(
            select(Refund).where(Refund.vendor_order_id == vendor_order_id).order_by(Refund.id)
        )
    )


def returns_of(vendor_order_id: int) -> list[ReturnRequest]:
    return list(
        db.session.scalars(
            select(ReturnRequest)
            .where(ReturnRequest.vendor_order_id == vendor_order_id)
            .order_by(ReturnRequest.id.desc())
        )
    )


def product_titles(product_ids: set[int]) -> dict[int, str]:
    if not product_ids:
        return {}
    rows = db.session.execute(
        select(Product.id, Product.title).where(Product.id.in_(sorted(product_ids)))
    ).all()
    return {row[0]: row[1] for row in rows}


# --- the queue -------------------------------------------------------------------------------


@bp.get("/orders")
def orders() -> Any:
    vendor = current_vendor()
    form = OrderFilterForm(request.args)
    if not form.validate():
        return render_template(
            "vendors/orders.html",
            vendor=vendor,
            form=form,
            tabs=TABS,
            tab=DEFAULT_TAB,
            q="",
            counts=tab_counts(vendor.id),
            rows=[],
            total=0,
            page=1,
            pages=1,
        ), 422
    tab = form.tab.data or DEFAULT_TAB
    q = (form.q.data or "").strip()[:254]
    page = min(form.page.data or 1, 10**6)
    rows, total = vendor_order_queue(vendor.id, tab, q, page, PER_PAGE)
    return render_template(
        "vendors/orders.html",
        vendor=vendor,
        form=form,
        tabs=TABS,
        tab=tab,
        q=q,
        counts=tab_counts(vendor.id, q),
        rows=rows,
        total=total,
        page=page,
        pages=_pages(total, PER_PAGE),
    )


# --- one order -------------------------------------------------------------------------------


def _vendor_order(vendor_order_id: int) -> tuple[Vendor, VendorOrder]:
    """:raises VendorOrderNotFound: missing or another vendor's (→ 404, before anything else)."""
    vendor = current_vendor()
    return vendor, fulfilment.vendor_order_for(vendor.id, vendor_order_id)


def _items_with_pictures(vendor_order_id: int) -> list[OrderItem]:
    """A part's lines with their products' pictures, in one statement."""
    return list(
        db.session.scalars(
            select(OrderItem)
            .where(OrderItem.vendor_order_id == vendor_order_id)
            .order_by(OrderItem.id)
            .options(joinedload(OrderItem.product).joinedload(Product.images))
        ).unique()
    )


def _detail(
    vendor_order_id: int,
    *,
    status: int = 200,
    ship_form: ShipForm | None = None,
    cancel_form: CancelForm | None = None,
    refund_form: RefundFields | None = None,
    refund_quantities: dict[int, str] | None = None,
    preview: dict[str, Any] | None = None,
    return_id: int | None = None,
    decline_form: DeclineReturnForm | None = None,
) -> Any:
    """The order page (fresh from the database, after whatever the action did or undid)."""
    db.session.rollback()  # a refused service call may have left the session mid-transaction
    vendor, vendor_order = _vendor_order(vendor_order_id)
    order = vendor_order.order
    buyer = db.session.get(User, order.buyer_id)
    page = render_template(
        "vendors/order_detail.html",
        vendor=vendor,
        vo=vendor_order,
        order=order,
        currency=order.currency,
        buyer=buyer,
        address=order.shipping_address or {},
        items=_items_with_pictures(vendor_order.id),
        history=vendor_order.history,
        refunds=refunds_of(vendor_order.id),
        return_requests=returns_of(vendor_order.id),
        can_ship=vendor_order.status in SHIPPABLE,
        can_deliver=vendor_order.status is V.SHIPPED,
        can_refund=vendor_order.status in REFUNDABLE,
        ship_form=ship_form or ShipForm(formdata=None),
        deliver_form=DeliverForm(formdata=None),
        cancel_form=cancel_form or CancelForm(formdata=None),
        # restocking is offered for units that never left; shipped ones may stay with the buyer
        refund_form=refund_form
        or RefundPreviewForm(formdata=None, restock=vendor_order.shipped_at is None),
        refund_quantities=refund_quantities or {},
        preview=preview,
        accept_form=AcceptReturnForm(formdata=None),
        decline_form=DeclineReturnForm(formdata=None),
        failed_return_id=return_id,
        failed_decline_form=decline_form,
        requested=ReturnStatus.REQUESTED,
    )
    return page, status


def _invalid(form: Any) -> int:
    """The status for a form that failed its own checks: a missing or stale CSRF token is a
    bad request (said in a flash, as no field shows it); anything else is 422."""
    if "csrf_token" in form.errors:
        flash("The form has expired; reload the page and try again.", "error")
        return 400
    return 422


def _refused(form: Any, error: DomainError, names: dict[str, str] | None = None) -> int:
    """A service said no: flash why and put field errors on the form. NotFound stays a 404."""
    if isinstance(error, NotFound):
        raise error
    flash(error.message, "error")
    if isinstance(error, ValidationFailed):
        add_domain_error(form, error, names)
    return error.status


def _done(vendor_order_id: int, message: str) -> Any:
    flash(message, "success")
    return redirect(url_for("vendors.order_detail", vendor_order_id=vendor_order_id), 303)


@bp.get("/orders/<int:vendor_order_id>")
def order_detail(vendor_order_id: int) -> Any:
    return _detail(vendor_order_id)


@bp.post("/orders/<int:vendor_order_id>/ship")
def ship_order(vendor_order_id: int) -> Any:
    vendor, vendor_order = _vendor_order(vendor_order_id)
    form = ShipForm()
    if not form.validate_on_submit():
        return _detail(vendor_order.id, status=_invalid(form), ship_form=form)
    try:
        fulfilment.ship(
            vendor.id, vendor_order.id, form.carrier.data or "", form.tracking_number.data or ""
        )
    except DomainError as error:
        return _detail(vendor_order.id, status=_refused(form, error), ship_form=form)
    return _done(vendor_order.id, "Marked as shipped.")


@bp.post("/orders/<int:vendor_order_id>/deliver")
def deliver_order(vendor_order_id: int) -> Any:
    vendor, vendor_order = _vendor_order(vendor_order_id)
    form = DeliverForm()
    if not form.validate_on_submit():
        return _detail(vendor_order.id, status=_invalid(form))
    try:
        fulfilment.deliver(vendor.id, vendor_order.id)
    except DomainError as error:
        return _detail(vendor_order.id, status=_refused(form, error))
    return _done(vendor_order.id, "Marked as delivered.")


@bp.post("/orders/<int:vendor_order_id>/cancel")
def cancel_order(vendor_order_id: int) -> Any:
    vendor, vendor_order = _vendor_order(vendor_order_id)
    form = CancelForm()
    if not form.validate_on_submit():
        return _detail(vendor_order.id, status=_invalid(form), cancel_form=form)
    try:
        fulfilment.cancel_by_vendor(vendor.id, vendor_order.id, form.reason.data or "")
    except DomainError as error:
        return _detail(vendor_order.id, status=_refused(form, error), cancel_form=form)
    return _done(vendor_order.id, "Order cancelled; its stock is back on sale.")


_BETWEEN = re.compile(r"between (\d+) and (\d+)")


def _refund_refused(
    form: RefundFields, error: DomainError, vendor_order: VendorOrder, sent: list[Any] | None
) -> int:
    """Like `_refused`, with the refund's field names turned into what the page shows:
    amounts in the shop's currency, `items[0].quantity` as the item's SKU."""
    if isinstance(error, NotFound):
        raise error
    flash(error.message, "error")
    if not isinstance(error, ValidationFailed):
        return error.status
    skus = {item.id: item.sku for item in vendor_order.items}
    for key, message in error.fields.items():
        if key == "amount_cents":
            message = _BETWEEN.sub(
                lambda m: f"between {shop_money(int(m[1]))} and {shop_money(int(m[2]))}",
                message,
            )
            form.amount.errors = [*form.amount.errors, message]
        elif key == "reason":
            form.reason.errors = [*form.reason.errors, message]
        elif key.startswith("items[") and sent:
            index = int(key[len("items[") :].partition("]")[0])
            sku = skus.get(sent[index].order_item_id, "?") if index < len(sent) else "?"
            form.form_errors.append(f"{sku}: {message}")
        else:
            form.form_errors.append(f"{key}: {message}")
    return error.status


def _confirm_fields(
    form: RefundFields, source: Any, items: list[OrderItem]
) -> list[tuple[str, str]]:
    """The hidden inputs of the confirm form: exactly the request that was previewed."""
    fields: list[tuple[str, str]] = []
    if form.amount.cents is not None:
        fields.append(("amount", form.amount.data or ""))
    for item_request in form.item_requests(source, items) or []:
        fields.append((f"qty_{item_request.order_item_id}", str(item_request.quantity)))
    if form.include_shipping.data:
        fields.append(("include_shipping", "y"))
    if form.restock.data:
        fields.append(("restock", "y"))
    fields.append(("reason", form.reason.data or ""))
    return fields


@bp.get("/orders/<int:vendor_order_id>/refund-preview")
def refund_preview(vendor_order_id: int) -> Any:
    """What a refund would do (`refunds.preview`, the API's numbers), with a confirm button."""
    vendor, vendor_order = _vendor_order(vendor_order_id)
    form = RefundPreviewForm(request.args)
    typed = quantities(request.args)
    items = list(vendor_order.items)
    ok = form.validate()
    service_request = form.service_request(request.args, items) if ok else {}
    if not ok or form.form_errors:
        return _detail(vendor_order.id, status=422, refund_form=form, refund_quantities=typed)
    sent = service_request["items"]
    try:
        plan = refunds.preview(vendor_order.id, vendor.id, **service_request)
    except DomainError as error:
        status = _refund_refused(form, error, vendor_order, sent)
        return _detail(vendor_order.id, status=status, refund_form=form, refund_quantities=typed)
    preview = plan.preview()
    preview["fields"] = _confirm_fields(form, request.args, items)
    preview["variant_skus"] = {item.variant_id: item.sku for item in items}
    return _detail(vendor_order.id, refund_form=form, refund_quantities=typed, preview=preview)


@bp.post("/orders/<int:vendor_order_id>/refund")
def refund_order(vendor_order_id: int) -> Any:
    vendor, vendor_order = _vendor_order(vendor_order_id)
    form = RefundForm()
    typed = quantities(request.form)
    items = list(vendor_order.items)
    ok = form.validate_on_submit()
    service_request = form.service_request(request.form, items) if ok else {}
    if not ok or form.form_errors:
        status = _invalid(form) if not ok else 422
        return _detail(vendor_order.id, status=status, refund_form=form, refund_quantities=typed)
    sent = service_request["items"]
    try:
        refund = refunds.refund_vendor_order(
            vendor_order.id,
            vendor_id=vendor.id,
            actor=f"{current_user.role.value}:{current_user.id}",  # as the API records it
            reason=(form.reason.data or "").strip() or DEFAULT_REFUND_REASON,
            **service_request,
        )
    except DomainError as error:
        status = _refund_refused(form, error, vendor_order, sent)
        return _detail(vendor_order.id, status=status, refund_form=form, refund_quantities=typed)
    amount = shop_money(refund.amount_cents, vendor_order.order.currency)
    if refund.status.value == "succeeded":
        return _done(vendor_order.id, f"Refunded {amount} to the buyer.")
    return _done(vendor_order.id, f"Refund of {amount} recorded; Stripe will confirm it shortly.")


# --- returns ---------------------------------------------------------------------------------


def _return_of(vendor: Vendor, vendor_order: VendorOrder, return_id: int) -> ReturnRequest:
    """:raises ReturnNotFound: missing, another vendor's, or not of this VendorOrder."""
    return_request = returns.vendor_return(vendor.id, return_id)
    if return_request.vendor_order_id != vendor_order.id:
        raise returns.ReturnNotFound()
    return return_request


@bp.post("/orders/<int:vendor_order_id>/returns/<int:return_id>/accept")
def accept_return(vendor_order_id: int, return_id: int) -> Any:
    vendor, vendor_order = _vendor_order(vendor_order_id)
    _return_of(vendor, vendor_order, return_id)
    form = AcceptReturnForm()
    if not form.validate_on_submit():
        return _detail(vendor_order.id, status=_invalid(form))
    try:
        refunds.accept_return(vendor.id, return_id, restock=bool(form.restock.data))
    except DomainError as error:
        return _detail(vendor_order.id, status=_refused(form, error))
    return _done(vendor_order.id, "Return accepted; the buyer is refunded.")


@bp.post("/orders/<int:vendor_order_id>/returns/<int:return_id>/decline")
def decline_return(vendor_order_id: int, return_id: int) -> Any:
    vendor, vendor_order = _vendor_order(vendor_order_id)
    _return_of(vendor, vendor_order, return_id)
    form = DeclineReturnForm()
    if not form.validate_on_submit():
        status = _invalid(form)
        return _detail(vendor_order.id, status=status, return_id=return_id, decline_form=form)
    try:
        returns.decline_return(vendor.id, return_id, form.reason.data or "")
    except DomainError as error:
        status = _refused(form, error)
        return _detail(vendor_order.id, status=status, return_id=return_id, decline_form=form)
    return _done(vendor_order.id, "Return declined.")


# --- low stock, earnings, reviews ------------------------------------------------------------


@bp.get("/low-stock")
def low_stock() -> Any:
    vendor = current_vendor()
    page = _page_arg()
    variants, total = low_stock_variants(vendor.id, page)
    return render_template(
        "vendors/low_stock.html",
        vendor=vendor,
        variants=variants,
        total=total,
        page=page,
        pages=_pages(total, 50),
    )


@bp.get("/earnings")
def earnings_page() -> Any:
    vendor = current_vendor()
    data = earnings.vendor_earnings(vendor.id)
    return render_template("vendors/earnings.html", vendor=vendor, earnings=data)


def _reviews_page(
    page: int, *, status: int = 200, failed_id: int | None = None, failed: Any = None
) -> Any:
    db.session.rollback()
    vendor = current_vendor()
    items, total = reviews.vendor_reviews(vendor.id, page, PER_PAGE)
    rendered = render_template(
        "vendors/reviews.html",
        vendor=vendor,
        reviews=items,
        titles=product_titles({review.product_id for review in items}),
        total=total,
        page=page,
        pages=_pages(total),
        reply_form=ReplyForm(formdata=None),
        failed_id=failed_id,
        failed_form=failed,
    )
    return rendered, status


@bp.get("/reviews")
def reviews_page() -> Any:
    return _reviews_page(_page_arg())


@bp.post("/reviews/<int:review_id>/reply")
def reply_review(review_id: int) -> Any:
    vendor = current_vendor()
    review = db.session.get(Review, review_id)
    if review is None or review.vendor_id != vendor.id:
        raise reviews.ReviewNotFound()
    form = ReplyForm()
    raw_page = form.page.data or "1"
    page = min(int(raw_page), 10**6) if is_whole_number(raw_page) and int(raw_page) > 0 else 1
    if not form.validate_on_submit():
        return _reviews_page(page, status=_invalid(form), failed_id=review_id, failed=form)
    try:
        reviews.reply(vendor.id, review_id, form.body.data or "")
    except DomainError as error:
        status = _refused(form, error)
        return _reviews_page(page, status=status, failed_id=review_id, failed=form)
    flash("Reply posted.", "success")
    return redirect(url_for("vendors.reviews_page", page=page if page > 1 else None), 303)
