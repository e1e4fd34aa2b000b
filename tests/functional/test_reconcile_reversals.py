"""Reconciliation matches transfer reversals one by one (issue 9), not only their sum: each
reversal Stripe made is one the books have, for the same amount, and back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from marketplace.db import db
from marketplace.payments import gateway
from marketplace.payouts import reconciliation
from marketplace.payouts.models import Refund, Reversal, Transfer
from tests.functional.money import paid_order

SHIP = {"carrier": "UPS", "tracking_number": "1Z1"}


def _paid_out_and_refunded(api: Any, webhooks: Any) -> tuple[Refund, Transfer]:
    paid = paid_order(api, webhooks, vendors=1)
    part, seller = paid["vendor_orders"][0], paid["sellers"][0]
    assert api.post(f"/vendor/orders/{part['id']}/ship", seller.token, json=SHIP).status_code == 200
    assert api.post(f"/vendor/orders/{part['id']}/deliver", seller.token).status_code == 200
    refunded = api.post(
        f"/vendor/orders/{part['id']}/refund",
        seller.token,
        json={"amount_cents": 1000, "reason": "scratched"},
    )
    assert refunded.status_code == 201, refunded.get_json()
    webhooks.flush_webhooks()
    db.session.rollback()
    refund = db.session.get(Refund, refunded.get_json()["id"])
    transfer = db.session.query(Transfer).one()
    assert refund.stripe_reversal_id is not None
    return refund, transfer


def _mismatches() -> list[tuple[str, str | None]]:
    db.session.rollback()
    return sorted((m["kind"], m["object_id"]) for m in reconciliation.reconcile()["mismatches"])


def test_each_reversal_matches_one_of_ours(api, webhooks):
    _paid_out_and_refunded(api, webhooks)
    assert _mismatches() == []


def test_a_reversal_made_outside_the_marketplace_is_reported_by_its_id(api, webhooks):
    _, transfer = _paid_out_and_refunded(api, webhooks)
    outside = gateway.create_transfer_reversal(
        key="dashboard", transfer_id=transfer.stripe_transfer_id, amount_cents=100, metadata={}
    )

    assert _mismatches() == sorted(
        [("reversal_unknown", outside["id"]), ("transfer_reversed", transfer.stripe_transfer_id)]
    )


def test_a_recorded_reversal_stripe_does_not_have_or_of_another_amount_is_reported(api, webhooks):
    refund, _ = _paid_out_and_refunded(api, webhooks)
    real = refund.stripe_reversal_id
    db.session.execute(
        update(Reversal)
        .where(Reversal.refund_id == refund.id)
        .values(amount_cents=refund.transfer_reversal_cents - 1)
    )
    db.session.commit()
    assert ("reversal_amount", real) in _mismatches()

    db.session.execute(
        update(Reversal)
        .where(Reversal.refund_id == refund.id)
        .values(stripe_reversal_id="trr_not_at_stripe")
    )
    db.session.commit()
    found = _mismatches()
    assert ("reversal_missing", "trr_not_at_stripe") in found
    assert ("reversal_unknown", real) in found
