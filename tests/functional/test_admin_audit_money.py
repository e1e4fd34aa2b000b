"""The money retries an admin makes through the API are audited: a refused transfer tried
again, a refused void tried again (refused once more, then done), each with its before and
after."""

from __future__ import annotations

from sqlalchemy import select

from marketplace.audit.models import AuditEntry
from marketplace.db import db
from marketplace.payouts.models import Transfer
from tests.functional.money import add_fault, clear_faults, paid_order
from tests.functional.test_void_refusals import _cancel_everything
from tests.helpers import make_admin

REFUSED = {"status": 400, "count": 100, "method": "POST"}
SHIP = {"carrier": "UPS", "tracking_number": "1Z1"}


def _rows(action: str) -> list[AuditEntry]:
    db.session.rollback()
    return list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
    )


def test_a_transfer_retry_is_audited(api, webhooks):
    paid = paid_order(api, webhooks, vendors=1)
    admin = make_admin()
    part, seller = paid["vendor_orders"][0]["id"], paid["sellers"][0]
    assert api.post(f"/vendor/orders/{part}/ship", seller.token, json=SHIP).status_code == 200
    add_fault(webhooks, "/v1/transfers", **REFUSED)
    assert api.post(f"/vendor/orders/{part}/deliver", seller.token).status_code == 200
    db.session.rollback()
    (transfer,) = db.session.scalars(select(Transfer)).all()
    clear_faults(webhooks)

    assert api.post(f"/admin/transfers/{transfer.id}/retry", admin.token).status_code == 200
    (row,) = _rows("transfer.retry")
    assert (row.target_type, row.target_id, row.actor_id) == (
        "transfer",
        str(transfer.id),
        admin.id,
    )
    assert row.before == {"status": "refused"} and row.after == {"status": "pending"}
    assert api.post(f"/admin/transfers/{transfer.id}/retry", admin.token).status_code == 409
    assert len(_rows("transfer.retry")) == 1  # a refused retry is not an action taken


def test_a_void_retry_is_audited_refused_or_not(api, webhooks):
    admin = make_admin()
    _paid, order_id = _cancel_everything(api, webhooks)
    assert api.post(f"/admin/orders/{order_id}/void/retry", admin.token).status_code == 409
    clear_faults(webhooks)
    assert api.post(f"/admin/orders/{order_id}/void/retry", admin.token).status_code == 200

    refused, done = _rows("void.retry")
    assert refused.target_id == done.target_id == str(order_id)
    assert refused.actor_id == done.actor_id == admin.id
    assert refused.before == {"payment_status": "authorized"}
    assert refused.after["payment_status"] == "authorized" and refused.after["error"]
    assert done.after == {"payment_status": "canceled", "error": None}
