"""Admin money routes: commission rules, reconciliation and the payouts CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, jsonify, request
from typing_extensions import TypedDict

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import body, require
from marketplace.api.vendor import vendor_json
from marketplace.errors import ValidationFailed
from marketplace.orders import commission
from marketplace.payouts import reconciliation
from marketplace.payouts.earnings import transfer_json
from marketplace.settlement import capture, payout, recovery
from marketplace.validation import Body


class DefaultCommissionBody(Body):
    default_bps: int


class CommissionBody(Body):
    bps: int | None


class DisputeRecoveryBody(Body):
    dispute_recovery: str


class DefaultCommissionJson(TypedDict):
    default_bps: int


class DisputeRecoveryJson(TypedDict):
    dispute_recovery: str
    choices: list[str]


class CategoryCommissionJson(TypedDict):
    category: str
    bps: int | None


class VoidRetryJson(TypedDict):
    order_id: int
    payment_status: str


@bp.put("/admin/commission")
@require(Role.ADMIN)
def set_default_commission() -> Any:
    data = body(DefaultCommissionBody)
    return jsonify({"default_bps": commission.set_default_bps(data.default_bps)})


@bp.get("/admin/commission")
@require(Role.ADMIN)
def get_default_commission() -> Any:
    return jsonify({"default_bps": commission.default_bps()})


@bp.get("/admin/dispute-recovery")
@require(Role.ADMIN)
def get_dispute_recovery() -> Any:
    return jsonify({"dispute_recovery": recovery.mode(), "choices": list(recovery.MODES)})


@bp.put("/admin/dispute-recovery")
@require(Role.ADMIN)
def set_dispute_recovery() -> Any:
    data = body(DisputeRecoveryBody)
    chosen = recovery.set_mode(data.dispute_recovery)
    return jsonify({"dispute_recovery": chosen, "choices": list(recovery.MODES)})


@bp.put("/admin/vendors/<int:vendor_id>/commission")
@require(Role.ADMIN)
def set_vendor_commission(vendor_id: int) -> Any:
    data = body(CommissionBody)
    if "bps" not in data.model_fields_set:
        raise ValidationFailed({"bps": "Field required"})
    return jsonify(vendor_json(commission.set_vendor_bps(vendor_id, data.bps)))


@bp.put("/admin/categories/<path:name>/commission")
@require(Role.ADMIN)
def set_category_commission(name: str) -> Any:
    data = body(CommissionBody)
    if "bps" not in data.model_fields_set:
        raise ValidationFailed({"bps": "Field required"})
    category = commission.set_category_bps(name, data.bps)
    return jsonify({"category": category.path, "bps": category.commission_bps})


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed({name: "must be an ISO 8601 date or time"}) from None
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value


@bp.get("/admin/reconciliation")
@require(Role.ADMIN)
def admin_reconciliation() -> Any:
    return jsonify(reconciliation.reconcile(_time_arg("from"), _time_arg("to")))


@bp.get("/admin/payouts.csv")
@require(Role.ADMIN)
def admin_payouts_csv() -> Any:
    return Response(
        reconciliation.payouts_csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=payouts.csv"},
    )


@bp.post("/admin/transfers/<int:transfer_id>/retry")
@require(Role.ADMIN)
def admin_retry_transfer(transfer_id: int) -> Any:
    return jsonify(transfer_json(payout.retry_refused_transfer(transfer_id)))


@bp.post("/admin/dispute-recoveries/<int:recovery_id>/retry")
@require(Role.ADMIN)
def admin_retry_dispute_return(recovery_id: int) -> Any:
    return jsonify(recovery.recovery_json(recovery.retry_refused_return(recovery_id)))


@bp.post("/admin/orders/<int:order_id>/void/retry")
@require(Role.ADMIN)
def admin_retry_void(order_id: int) -> Any:
    payment = capture.retry_refused_void(order_id)
    return jsonify({"order_id": order_id, "payment_status": payment.status.value})
