"""Disputes: the platform setting `dispute_recovery` decides who carries them (issue 9).

`platform_absorbs` (the default) leaves the vendors' transfers alone; `reverse_vendor_share`
reverses each vendor's share of the disputed amount from its transfer (or holds it back from
its next transfers when it cannot be reversed), and a won dispute gives it back. Whatever
happens the ledger sums to zero and reconciliation stays `ok`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from marketplace.db import db, transaction, utcnow
from marketplace.money import split_by_weights
from marketplace.notifications.models import Notification
from marketplace.payments import gateway
from marketplace.payouts import ledger, reconciliation
from marketplace.payouts.models import DisputeRecovery, RecoveryStatus
from marketplace.settlement import recovery as recovery_steps
from tests.functional.money import (
    REFUSED,
    SHIP,
    add_fault,
    assert_books_match_stripe,
    checkout,
    clear_faults,
    close_dispute,
    deliver_all,
    emulator_post,
    open_dispute,
    paid_order,
    pay,
    set_dispute_mode,
    stripe_objects,
)
from tests.helpers import make_admin, make_buyer, make_product


def _vendor_net_at_stripe(emulator: Any, account_id: str) -> int:
    return sum(
        t["amount"] - t["amount_reversed"]
        for t in stripe_objects(emulator, "transfers")
        if t["destination"] == account_id
    )


def _share(paid: dict[str, Any], index: int, disputed: int) -> int:
    """The vendor's share of the disputed amount: the amount spread over the parts by their
    totals, then the vendor's earnings' part of its slice."""
    parts = paid["vendor_orders"]
    slices = split_by_weights(disputed, [p["total_cents"] for p in parts])
    part = parts[index]
    earned = part["vendor_earnings_cents"]
    return split_by_weights(slices[index], [earned, part["total_cents"] - earned])[0]


def _recoveries() -> list[DisputeRecovery]:
    db.session.rollback()
    return list(db.session.scalars(select(DisputeRecovery).order_by(DisputeRecovery.id)))


# --- the setting --------------------------------------------------------------------------


def test_the_setting_defaults_to_the_platform_absorbing_and_rejects_unknown_values(api):
    admin = make_admin()
    shown = api.get("/admin/dispute-recovery", admin.token).get_json()
    assert shown["dispute_recovery"] == "platform_absorbs"
    assert set(shown["choices"]) == {"platform_absorbs", "reverse_vendor_share"}
    bad = api.put("/admin/dispute-recovery", admin.token, json={"dispute_recovery": "vendor"})
    assert bad.status_code == 422
    assert bad.get_json()["error"]["code"] == "validation_error"
    assert "dispute_recovery" in bad.get_json()["error"]["details"]["fields"]
    missing = api.put("/admin/dispute-recovery", admin.token, json={})
    assert missing.status_code == 422
    assert api.get("/admin/dispute-recovery", admin.token).get_json()["dispute_recovery"] == (
        "platform_absorbs"
    )
    set_dispute_mode(api, admin, "reverse_vendor_share")
    assert api.get("/admin/dispute-recovery", admin.token).get_json()["dispute_recovery"] == (
        "reverse_vendor_share"
    )
    buyer = make_buyer()
    forbidden = api.put(
        "/admin/dispute-recovery", buyer.token, json={"dispute_recovery": "platform_absorbs"}
    )
    assert forbidden.status_code == 403


# --- platform absorbs ---------------------------------------------------------------------


def test_the_platform_absorbs_a_lost_dispute_by_default(api, webhooks, client):
    paid = paid_order(api, webhooks, vendors=1)
    deliver_all(api, paid)
    (transfer,) = stripe_objects(webhooks, "transfers")
    dispute = open_dispute(webhooks)
    close_dispute(client, dispute, "lost")

    assert stripe_objects(webhooks, "transfer_reversals") == []
    assert _recoveries() == []
    assert ledger.balance(ledger.DISPUTE_LOSSES) == paid["order"]["total_cents"]
    account = paid["sellers"][0].vendor.stripe_account_id
    assert _vendor_net_at_stripe(webhooks, account) == transfer["amount"]
    assert_books_match_stripe()


# --- the vendor's share reversed ------------------------------------------------------------


def test_a_lost_dispute_reverses_each_vendors_share_and_the_platform_keeps_the_rest(
    api, webhooks, client
):
    admin = make_admin()
    set_dispute_mode(api, admin, "reverse_vendor_share")
    paid = paid_order(api, webhooks, vendors=2)
    deliver_all(api, paid)
    disputed = paid["order"]["total_cents"] - 700  # a partial dispute
    dispute = open_dispute(webhooks, amount=disputed)

    shares = [_share(paid, 0, disputed), _share(paid, 1, disputed)]
    reversals = stripe_objects(webhooks, "transfer_reversals")
    assert sorted(r["amount"] for r in reversals) == sorted(shares)
    recoveries = _recoveries()
    assert [r.status for r in recoveries] == [RecoveryStatus.REVERSED] * 2
    assert {r["metadata"]["dispute_recovery_id"] for r in reversals} == {
        str(r.id) for r in recoveries
    }
    # while the bank decides, the vendors cover their shares of the withdrawn amount
    assert ledger.balance(ledger.DISPUTED) == disputed - sum(shares)
    assert_books_match_stripe()

    close_dispute(client, dispute, "lost")
    assert ledger.balance(ledger.DISPUTED) == 0
    assert ledger.balance(ledger.DISPUTE_LOSSES) == disputed - sum(shares)
    for part, seller, share in zip(paid["vendor_orders"], paid["sellers"], shares, strict=True):
        account = seller.vendor.stripe_account_id
        kept = part["vendor_earnings_cents"] - share
        assert _vendor_net_at_stripe(webhooks, account) == kept
        earnings = api.get("/vendor/earnings", seller.token).get_json()
        assert earnings["owed_cents"] == 0
    report = assert_books_match_stripe()
    assert report["failed_steps"] == []


def test_a_won_dispute_gives_the_vendors_share_back_by_a_new_transfer(api, webhooks, client):
    admin = make_admin()
    set_dispute_mode(api, admin, "reverse_vendor_share")
    paid = paid_order(api, webhooks, vendors=1)
    deliver_all(api, paid)
    dispute = open_dispute(webhooks)
    (reversal,) = stripe_objects(webhooks, "transfer_reversals")
    earned = paid["vendor_orders"][0]["vendor_earnings_cents"]
    assert reversal["amount"] == _share(paid, 0, paid["order"]["total_cents"]) == earned

    close_dispute(client, dispute, "won")
    close_dispute(client, dispute, "won")  # a repeated decision gives nothing twice

    account = paid["sellers"][0].vendor.stripe_account_id
    returned = [
        t for t in stripe_objects(webhooks, "transfers") if t["transfer_group"].startswith("d")
    ]
    assert [t["amount"] for t in returned] == [reversal["amount"]]
    assert returned[0]["destination"] == account
    assert _vendor_net_at_stripe(webhooks, account) == earned  # whole again
    shown = api.get("/vendor/earnings", paid["sellers"][0].token).get_json()
    assert (shown["dispute_recovered_cents"], shown["dispute_returned_cents"]) == (
        reversal["amount"],
        reversal["amount"],
    )
    (recovery,) = _recoveries()
    assert recovery.status is RecoveryStatus.RETURNED
    assert recovery.stripe_return_transfer_id == returned[0]["id"]
    assert ledger.balance(ledger.DISPUTED) == 0
    assert ledger.balance(ledger.DISPUTE_LOSSES) == 0
    assert ledger.balance(ledger.VENDOR_PAYABLE, vendor_id=paid["sellers"][0].vendor.id) == 0
    assert_books_match_stripe()


def test_a_refused_recovery_is_owed_and_netted_from_the_vendors_next_transfer(
    api, webhooks, client
):
    admin = make_admin()
    set_dispute_mode(api, admin, "reverse_vendor_share")
    paid = paid_order(api, webhooks, vendors=1)
    deliver_all(api, paid)
    (transfer,) = stripe_objects(webhooks, "transfers")
    add_fault(webhooks, f"/v1/transfers/{transfer['id']}/reversals", **REFUSED)
    dispute = open_dispute(webhooks)
    clear_faults(webhooks)

    assert stripe_objects(webhooks, "transfer_reversals") == []
    (recovery,) = _recoveries()
    assert recovery.status is RecoveryStatus.OWED and recovery.failure_reason
    seller = paid["sellers"][0]
    owed = recovery.amount_cents
    assert api.get("/vendor/earnings", seller.token).get_json()["owed_cents"] == owed
    report = assert_books_match_stripe()
    assert [(s["kind"], s["id"]) for s in report["failed_steps"]] == [
        ("dispute_recovery_refused", recovery.id)
    ]
    close_dispute(client, dispute, "lost")
    assert ledger.balance(ledger.DISPUTE_LOSSES) == paid["order"]["total_cents"] - owed

    # the vendor's next sale pays it back
    variant_id = make_product(seller, price_cents=9000, stock=5).variants[0].id
    buyer = make_buyer()
    api.post("/cart/items", buyer.token, json={"variant_id": variant_id, "quantity": 1})
    body = checkout(api, buyer, key="next")
    assert pay(body)["status"] == "requires_capture"
    assert webhooks.flush_webhooks()
    (next_part,) = body["order"]["vendor_orders"]
    assert next_part["vendor_earnings_cents"] > owed
    api.post(f"/vendor/orders/{next_part['id']}/ship", seller.token, json=SHIP)
    assert api.post(f"/vendor/orders/{next_part['id']}/deliver", seller.token).status_code == 200
    second = [t for t in stripe_objects(webhooks, "transfers") if t["id"] != transfer["id"]]
    assert [t["amount"] for t in second] == [next_part["vendor_earnings_cents"] - owed]
    assert api.get("/vendor/earnings", seller.token).get_json()["owed_cents"] == 0
    report = assert_books_match_stripe()
    assert report["failed_steps"] == []


def test_a_dispute_before_the_payout_holds_the_vendors_share_back_from_it(api, webhooks, client):
    admin = make_admin()
    set_dispute_mode(api, admin, "reverse_vendor_share")
    paid = paid_order(api, webhooks, vendors=1)
    part, seller = paid["vendor_orders"][0], paid["sellers"][0]
    assert api.post(f"/vendor/orders/{part['id']}/ship", seller.token, json=SHIP).status_code == 200
    disputed = 1500
    dispute = open_dispute(webhooks, amount=disputed)  # captured, nothing sent yet
    share = _share(paid, 0, disputed)
    (recovery,) = _recoveries()
    assert (recovery.status, recovery.amount_cents) == (RecoveryStatus.OWED, share)
    assert api.post(f"/vendor/orders/{part['id']}/deliver", seller.token).status_code == 200
    assert stripe_objects(webhooks, "transfers") == []  # held while the bank decides
    assert_books_match_stripe()

    close_dispute(client, dispute, "lost")
    (transfer,) = stripe_objects(webhooks, "transfers")
    assert transfer["amount"] == part["vendor_earnings_cents"] - share
    assert ledger.balance(ledger.DISPUTE_LOSSES) == disputed - share
    report = assert_books_match_stripe()
    assert report["failed_steps"] == []


def test_a_won_dispute_drops_a_share_still_owed(api, webhooks, client):
    admin = make_admin()
    set_dispute_mode(api, admin, "reverse_vendor_share")
    paid = paid_order(api, webhooks, vendors=1)
    part, seller = paid["vendor_orders"][0], paid["sellers"][0]
    api.post(f"/vendor/orders/{part['id']}/ship", seller.token, json=SHIP)
    dispute = open_dispute(webhooks)
    assert api.post(f"/vendor/orders/{part['id']}/deliver", seller.token).status_code == 200
    close_dispute(client, dispute, "won")

    (recovery,) = _recoveries()
    assert recovery.status is RecoveryStatus.WAIVED
    (transfer,) = stripe_objects(webhooks, "transfers")
    assert transfer["amount"] == part["vendor_earnings_cents"]  # paid in full
    assert api.get("/vendor/earnings", seller.token).get_json()["owed_cents"] == 0
    assert_books_match_stripe()


def test_a_recovery_whose_answer_was_lost_is_found_at_stripe_not_taken_twice(
    api, webhooks, client, app
):
    admin = make_admin()
    set_dispute_mode(api, admin, "reverse_vendor_share")
    paid = paid_order(api, webhooks, vendors=1)
    deliver_all(api, paid)
    (transfer,) = stripe_objects(webhooks, "transfers")
    app.config["JOBS_SYNCHRONOUS"] = False  # the recovery job waits in the queue
    open_dispute(webhooks, amount=1000)  # a small share: reversing it twice would fit
    (recovery,) = _recoveries()
    assert recovery.status is RecoveryStatus.PENDING
    assert "dispute_recovery_pending" in [
        m["kind"] for m in reconciliation.reconcile()["mismatches"]
    ]
    # An earlier run asked Stripe, which made the reversal, but its answer never came back;
    # a day later Stripe has forgotten the key, so asking again would reverse twice.
    gateway.create_transfer_reversal(
        key=f"dispute_recovery:{recovery.id}",
        transfer_id=transfer["id"],
        amount_cents=recovery.amount_cents,
        metadata={"dispute_recovery_id": str(recovery.id)},
    )
    db.session.rollback()
    with transaction():
        db.session.execute(update(DisputeRecovery).values(created_at=utcnow() - timedelta(days=1)))
    emulator_post(webhooks, "/_emulator/idempotency/forget")

    recovery_steps.recover_share(recovery.id)

    assert len(stripe_objects(webhooks, "transfer_reversals")) == 1
    (recovery,) = _recoveries()
    assert recovery.status is RecoveryStatus.REVERSED
    assert_books_match_stripe()


# --- the return of a won dispute's share, refused ------------------------------------------


def test_a_refused_return_stays_owed_to_the_vendor_is_listed_and_an_admin_retries_it(
    api, webhooks, client
):
    admin = make_admin()
    set_dispute_mode(api, admin, "reverse_vendor_share")
    paid = paid_order(api, webhooks, vendors=1)
    deliver_all(api, paid)
    dispute = open_dispute(webhooks)
    (reversal,) = stripe_objects(webhooks, "transfer_reversals")
    vendor_id = paid["sellers"][0].vendor.id
    add_fault(webhooks, "/v1/transfers", **REFUSED)

    close_dispute(client, dispute, "won")

    (recovery,) = _recoveries()
    assert recovery.status is RecoveryStatus.RETURN_REFUSED and recovery.failure_reason
    assert [
        t for t in stripe_objects(webhooks, "transfers") if t["transfer_group"].startswith("d")
    ] == []
    # compensation: nothing booked as given back, so the books still owe the vendor its share
    assert ledger.balance(ledger.VENDOR_PAYABLE, vendor_id=vendor_id) == -reversal["amount"]
    assert ledger.total("dispute_return", ledger.CASH) == 0
    report = assert_books_match_stripe()  # matches Stripe: nothing was sent
    assert [(s["kind"], s["id"]) for s in report["failed_steps"]] == [
        ("dispute_return_refused", recovery.id)
    ]
    kinds = {n.kind for n in _notifications(admin.id)}
    assert "dispute_return_refused" in kinds
    shown = api.get("/vendor/earnings", paid["sellers"][0].token).get_json()
    assert shown["dispute_returned_cents"] == 0
    not_refused = api.post(f"/admin/dispute-recoveries/{recovery.id + 1}/retry", admin.token)
    assert not_refused.status_code == 409
    assert not_refused.get_json()["error"]["code"] == "dispute_return_not_refused"

    clear_faults(webhooks)
    retried = api.post(f"/admin/dispute-recoveries/{recovery.id}/retry", admin.token)

    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["status"] == "returned"
    (returned,) = [
        t for t in stripe_objects(webhooks, "transfers") if t["transfer_group"].startswith("d")
    ]
    assert returned["amount"] == reversal["amount"]
    account = paid["sellers"][0].vendor.stripe_account_id
    assert (
        _vendor_net_at_stripe(webhooks, account)
        == paid["vendor_orders"][0]["vendor_earnings_cents"]
    )
    assert ledger.balance(ledger.VENDOR_PAYABLE, vendor_id=vendor_id) == 0
    again = api.post(f"/admin/dispute-recoveries/{recovery.id}/retry", admin.token)
    assert again.status_code == 409
    report = assert_books_match_stripe()
    assert report["failed_steps"] == []


def _notifications(user_id: int) -> list[Any]:
    db.session.rollback()
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user_id)))


def test_a_return_retried_after_the_cause_was_fixed_is_asked_with_a_new_key(api, webhooks, client):
    """The refusal is stored under the first attempt's key: the retry asks with its own."""
    admin = make_admin()
    set_dispute_mode(api, admin, "reverse_vendor_share")
    paid = paid_order(api, webhooks, vendors=1)
    deliver_all(api, paid)
    dispute = open_dispute(webhooks)
    (reversal,) = stripe_objects(webhooks, "transfer_reversals")
    account = paid["sellers"][0].vendor.stripe_account_id
    emulator_post(webhooks, f"/_emulator/accounts/{account}/restrict")  # a real 4xx, stored

    close_dispute(client, dispute, "won")

    (recovery,) = _recoveries()
    assert recovery.status is RecoveryStatus.RETURN_REFUSED and recovery.return_attempt == 1
    emulator_post(webhooks, f"/_emulator/accounts/{account}/complete_onboarding")  # fixed
    retried = api.post(f"/admin/dispute-recoveries/{recovery.id}/retry", admin.token)

    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["status"] == "returned"
    (returned,) = [
        t for t in stripe_objects(webhooks, "transfers") if t["transfer_group"].startswith("d")
    ]
    assert returned["amount"] == reversal["amount"]
    (recovery,) = _recoveries()
    assert recovery.return_attempt == 2
    assert recovery.stripe_reversal_id == reversal["id"]  # from its reversal row
    report = assert_books_match_stripe()
    assert report["failed_steps"] == []
