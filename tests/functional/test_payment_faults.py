"""Stripe failing or stalling on capture, transfer, refund and reversal.

The SDK retries with our idempotency key; when Stripe stays away longer than the retries, the
step fails, stays retryable (its outbox row is run again) and succeeds once Stripe recovers —
and Stripe never captures, transfers or refunds twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import select, update

from marketplace.db import db, transaction, utcnow
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage
from marketplace.payments import gateway
from marketplace.payments.models import CaptureStatus, PaymentStatus
from marketplace.payments.services import payment_of
from marketplace.payouts import ledger, reconciliation
from marketplace.payouts.models import (
    DisputeRecovery,
    RecoveryStatus,
    Refund,
    ReversalStatus,
    Transfer,
    TransferStatus,
)
from marketplace.settlement import capture
from marketplace.settlement.recovery import RECOVER_JOB, RETURN_JOB
from tests.functional.money import (
    add_fault,
    close_dispute,
    emulator_post,
    emulator_state,
    objects,
    open_dispute,
    paid_order,
    set_dispute_mode,
)
from tests.helpers import make_admin

SHIP = {"carrier": "UPS", "tracking_number": "1Z1"}


@dataclass(frozen=True)
class Fault:
    """How Stripe misbehaves, and whether the SDK's own retries get past it."""

    mode: str = "before"
    status: int | None = 500
    count: int = 1
    delay_ms: int = 0
    retries: int = gateway.MAX_NETWORK_RETRIES
    step_fails: bool = False

    def params(self) -> dict[str, Any]:
        fault: dict[str, Any] = {"count": self.count, "mode": self.mode, "method": "POST"}
        if self.status is not None:
            fault["status"] = self.status
        if self.delay_ms:
            fault["delay_ms"] = self.delay_ms
        return fault


FAULTS = {
    # the SDK retries with the same idempotency key and gets through
    "500 before, retried": Fault(count=gateway.MAX_NETWORK_RETRIES),
    "500 after, replayed": Fault(mode="after", count=gateway.MAX_NETWORK_RETRIES),
    "stall, retried": Fault(status=None, delay_ms=1500),
    # more failures than retries: the step fails and is run again later
    "500 before, exhausted": Fault(count=gateway.MAX_NETWORK_RETRIES + 1, step_fails=True),
    "500 after, response lost": Fault(mode="after", retries=0, step_fails=True),
    "stall, exhausted": Fault(status=None, delay_ms=1500, retries=0, step_fails=True),
}


@pytest.fixture
def fast_stripe(app, monkeypatch):
    """Quick SDK backoff and a 1 s timeout; jobs queued (run by the test), not run inline."""
    monkeypatch.setattr(stripe._http_client.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(gateway, "TIMEOUT_SECONDS", 1)
    gateway.close_client(app)

    def configure(fault: Fault) -> None:
        monkeypatch.setattr(gateway, "MAX_NETWORK_RETRIES", fault.retries)
        gateway.close_client(app)
        monkeypatch.setitem(app.config, "JOBS_SYNCHRONOUS", False)

    yield configure
    gateway.close_client(app)


def _pending_message(job: str) -> int:
    db.session.rollback()
    ids = db.session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.job == job, OutboxMessage.completed_at.is_(None))
        .order_by(OutboxMessage.id)
    ).all()
    assert len(ids) == 1, (job, ids)
    return ids[0]


def _run(message_id: int, fault: Fault, started: float, acted: Any, failed: Any = None) -> None:
    """Run the outbox row; if the fault outlasts the SDK's retries it fails (then `failed()`
    checks what is left), and run again it succeeds."""
    if fault.step_fails:
        with pytest.raises(gateway.PaymentProviderError):
            outbox.run_message(message_id)
        db.session.rollback()
        message = db.session.get(OutboxMessage, message_id)
        assert (message.completed_at, message.attempts) == (None, 1)
        assert "PaymentProviderError" in message.last_error
        if failed is not None:
            failed()  # asserts what the failed step left behind
    _wait_for_stalls(fault, started, acted)
    outbox.run_message(message_id)
    db.session.rollback()
    message = db.session.get(OutboxMessage, message_id)
    assert message.completed_at is not None
    outbox.run_message(message_id)  # a completed row is never run again


def _wait_for_stalls(fault: Fault, started: float, acted: Any) -> None:
    """A request we gave up on may still run at Stripe: wait until it did, so that what the
    test asserts afterwards (exactly one capture, transfer, refund) includes it."""
    if fault.step_fails and (fault.mode == "after" or fault.delay_ms):
        deadline = time.monotonic() + 10
        while not acted():
            assert time.monotonic() < deadline, "the stalled request never ran at Stripe"
            time.sleep(0.05)
    elif fault.delay_ms:  # the SDK's retry went through; the stalled one is replayed
        time.sleep(max(0.0, started + fault.delay_ms / 1000 + 0.3 - time.monotonic()))


def _stripe(emulator: Any, kind: str) -> list[dict[str, Any]]:
    return objects(emulator_state(emulator), kind)


def _ship(api: Any, paid: dict[str, Any], index: int = 0) -> None:
    vo_id = paid["vendor_orders"][index]["id"]
    response = api.post(f"/vendor/orders/{vo_id}/ship", paid["sellers"][index].token, json=SHIP)
    assert response.status_code == 200, response.get_json()


def _deliver(api: Any, paid: dict[str, Any], index: int = 0) -> None:
    vo_id = paid["vendor_orders"][index]["id"]
    response = api.post(f"/vendor/orders/{vo_id}/deliver", paid["sellers"][index].token)
    assert response.status_code == 200, response.get_json()


def _capture(api: Any, paid: dict[str, Any]) -> None:
    _ship(api, paid)
    outbox.run_message(_pending_message("marketplace.settlement.jobs.capture_order"))


def _transfer(api: Any, paid: dict[str, Any], index: int = 0) -> None:
    _deliver(api, paid, index)
    outbox.run_message(_pending_message("marketplace.settlement.jobs.transfer_vendor_order"))


def _assert_books_balance() -> None:
    db.session.rollback()
    assert ledger.balance_all() == 0
    report = reconciliation.reconcile()
    assert report["mismatches"] == [] and report["ok"] is True


def _mismatch_kinds() -> list[str]:
    db.session.rollback()
    return sorted(m["kind"] for m in reconciliation.reconcile()["mismatches"])


# --- capture -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_capture_survives_stripe_faults(api, webhooks, fast_stripe, fault):
    paid = paid_order(api, webhooks)
    total = paid["order"]["total_cents"]
    fast_stripe(fault)
    # held back: `payment_intent.succeeded` would record the capture before the retry does
    # (test_capture_intents.py shows that path)
    webhooks.webhook_url = None
    add_fault(
        webhooks, f"/v1/payment_intents/{paid['payment_intent_id']}/capture", **fault.params()
    )
    _ship(api, paid)

    def still_capturing() -> None:  # recorded as started, its amount fixed for the retry
        payment = payment_of(paid["order"]["id"])
        (step,) = capture.captures_of(paid["order"]["id"])
        assert payment.status is PaymentStatus.CAPTURING
        assert (step.status, step.amount_cents) == (CaptureStatus.REQUESTED, total)

    started = time.monotonic()
    _run(
        _pending_message("marketplace.settlement.jobs.capture_order"),
        fault,
        started,
        lambda: _stripe(webhooks, "payment_intents")[0]["status"] == "succeeded",
        still_capturing,
    )

    payment = payment_of(paid["order"]["id"])
    assert payment.status is PaymentStatus.CAPTURED
    assert payment.amount_captured_cents == total
    state = emulator_state(webhooks)
    (intent,) = objects(state, "payment_intents")
    assert (intent["status"], intent["amount_received"]) == ("succeeded", total)
    captured = [c for c in objects(state, "charges") if c["captured"]]
    assert [c["amount_captured"] for c in captured] == [total]
    assert payment.charge_id == captured[0]["id"]
    assert ledger.total("capture", ledger.CASH, order_id=paid["order"]["id"]) == total
    assert webhooks.flush_webhooks()
    _assert_books_balance()


# --- transfer ------------------------------------------------------------------------------


TRANSFER_FAULTS = {  # the SDK's own retries are shown on the capture
    k: FAULTS[k] for k in ("500 before, exhausted", "500 after, response lost", "stall, exhausted")
}


@pytest.mark.parametrize("fault", TRANSFER_FAULTS.values(), ids=TRANSFER_FAULTS.keys())
def test_transfer_survives_stripe_faults(api, webhooks, fast_stripe, fault):
    paid = paid_order(api, webhooks)
    vo = paid["vendor_orders"][0]
    fast_stripe(fault)
    _capture(api, paid)
    add_fault(webhooks, "/v1/transfers", **fault.params())
    _deliver(api, paid)
    message_id = _pending_message("marketplace.settlement.jobs.transfer_vendor_order")

    def still_pending() -> None:  # asked of Stripe with its amount fixed, answer not recorded
        (pending,) = db.session.scalars(select(Transfer)).all()
        assert pending.status is TransferStatus.SENDING and pending.stripe_transfer_id is None

    started = time.monotonic()
    acted = lambda: bool(_stripe(webhooks, "transfers"))  # noqa: E731
    _run(message_id, fault, started, acted, still_pending)

    (transfer,) = db.session.scalars(select(Transfer)).all()
    assert transfer.status is TransferStatus.SENT
    assert transfer.amount_cents == vo["vendor_earnings_cents"]
    theirs = objects(emulator_state(webhooks), "transfers")
    assert [(t["id"], t["amount"]) for t in theirs] == [
        (transfer.stripe_transfer_id, vo["vendor_earnings_cents"])
    ]
    assert theirs[0]["metadata"]["vendor_order_id"] == str(vo["id"])
    _assert_books_balance()


def test_every_vendor_order_is_transferred_exactly_once(api, webhooks, fast_stripe):
    """Two vendors, each transfer failing once after Stripe acted, each job run twice."""
    paid = paid_order(api, webhooks, vendors=2)
    fast_stripe(Fault(retries=0))
    _capture(api, paid)
    for index in (0, 1):
        if index:
            _ship(api, paid, index)
        add_fault(webhooks, "/v1/transfers", status=500, mode="after", method="POST")
        _deliver(api, paid, index)
        message_id = _pending_message("marketplace.settlement.jobs.transfer_vendor_order")
        with pytest.raises(gateway.PaymentProviderError):
            outbox.run_message(message_id)
        outbox.run_message(message_id)
        from marketplace.settlement import jobs as settlement_jobs

        settlement_jobs.transfer_vendor_order(paid["vendor_orders"][index]["id"])  # once more
    theirs = objects(emulator_state(webhooks), "transfers")
    by_vo = sorted((int(t["metadata"]["vendor_order_id"]), t["amount"]) for t in theirs)
    assert by_vo == sorted((vo["id"], vo["vendor_earnings_cents"]) for vo in paid["vendor_orders"])
    _assert_books_balance()


# --- refund and reversal -------------------------------------------------------------------


REFUND_FAULTS = {
    k: FAULTS[k] for k in ("500 before, exhausted", "500 after, response lost", "stall, exhausted")
}


@pytest.mark.parametrize("fault", REFUND_FAULTS.values(), ids=REFUND_FAULTS.keys())
def test_refund_survives_stripe_faults(api, webhooks, fast_stripe, fault):
    paid = paid_order(api, webhooks)
    vo = paid["vendor_orders"][0]
    seller = paid["sellers"][0]
    fast_stripe(fault)
    _capture(api, paid)
    add_fault(webhooks, "/v1/refunds", **fault.params())
    response = api.post(
        f"/vendor/orders/{vo['id']}/refund",
        seller.token,
        json={"amount_cents": 1500, "reason": "scratched"},
    )
    assert response.status_code == 201, response.get_json()
    refund = response.get_json()
    assert refund["amount_cents"] == 1500
    assert refund["transfer_reversal_cents"] == 0  # not transferred yet
    message_id = _pending_message("marketplace.settlement.jobs.execute_refund")
    if fault.step_fails:
        assert refund["status"] == "pending" and refund["stripe_refund_id"] is None
        _wait_for_stalls(fault, 0, lambda: bool(_stripe(webhooks, "refunds")))
        stripe_acted = ["charge_refunded"] if fault.mode == "after" or fault.delay_ms else []
        assert _mismatch_kinds() == stripe_acted + ["refund_pending"]
        outbox.run_message(message_id)
    else:
        assert refund["status"] == "succeeded"
        outbox.run_message(message_id)  # the queued job finds nothing left to do

    db.session.rollback()
    ours = db.session.get(Refund, refund["id"])
    assert ours.status.value == "succeeded"
    state = emulator_state(webhooks)
    assert [(r["id"], r["amount"]) for r in objects(state, "refunds")] == [
        (ours.stripe_refund_id, 1500)
    ]
    (charge,) = [c for c in objects(state, "charges") if c["captured"]]
    assert charge["amount_refunded"] == 1500
    assert payment_of(paid["order"]["id"]).amount_refunded_cents == 1500
    _assert_books_balance()


@pytest.mark.parametrize("fault", REFUND_FAULTS.values(), ids=REFUND_FAULTS.keys())
def test_reversal_survives_stripe_faults(api, webhooks, fast_stripe, fault):
    paid = paid_order(api, webhooks)
    vo = paid["vendor_orders"][0]
    seller = paid["sellers"][0]
    fast_stripe(fault)
    _capture(api, paid)
    _transfer(api, paid)
    (transfer,) = db.session.scalars(select(Transfer)).all()
    add_fault(webhooks, f"/v1/transfers/{transfer.stripe_transfer_id}/reversals", **fault.params())
    response = api.post(
        f"/vendor/orders/{vo['id']}/refund",
        seller.token,
        json={"amount_cents": 2000, "reason": "one came broken"},
    )
    assert response.status_code == 201, response.get_json()
    refund = response.get_json()
    commission = 178  # the fee (400) in proportion: 2000 of the vendor's 4500 (items + shipping)
    assert (refund["amount_cents"], refund["transfer_reversal_cents"]) == (2000, 2000 - commission)
    assert refund["status"] == "succeeded"  # the buyer has the money back either way
    message_id = _pending_message("marketplace.settlement.jobs.execute_refund")
    if fault.step_fails:
        assert refund["stripe_reversal_id"] is None
        _wait_for_stalls(fault, 0, lambda: bool(_stripe(webhooks, "transfer_reversals")))
        stripe_acted = ["transfer_reversed"] if fault.mode == "after" or fault.delay_ms else []
        assert _mismatch_kinds() == ["reversal_pending"] + stripe_acted
    outbox.run_message(message_id)

    db.session.rollback()
    ours = db.session.get(Refund, refund["id"])
    assert ours.stripe_reversal_id is not None
    state = emulator_state(webhooks)
    assert len(objects(state, "refunds")) == 1
    (theirs,) = objects(state, "transfers")
    assert theirs["amount_reversed"] == 2000 - commission
    assert [r["id"] for r in objects(state, "transfer_reversals")] == [ours.stripe_reversal_id]
    assert db.session.get(Transfer, transfer.id).reversed_cents == 2000 - commission
    _assert_books_balance()


def test_a_part_cannot_be_cancelled_while_its_capture_awaits_an_answer(
    api, webhooks, fast_stripe, app
):
    paid = paid_order(api, webhooks, vendors=2)
    total = paid["order"]["total_cents"]
    fault = FAULTS["500 after, response lost"]
    fast_stripe(fault)
    add_fault(
        webhooks, f"/v1/payment_intents/{paid['payment_intent_id']}/capture", **fault.params()
    )
    # its webhook is held back too (it would record the capture: nothing awaited any more)
    webhooks.webhook_url = None
    _ship(api, paid)  # Stripe captures both parts; the answer is lost
    message_id = _pending_message("marketplace.settlement.jobs.capture_order")
    with pytest.raises(gateway.PaymentProviderError):
        outbox.run_message(message_id)
    second = paid["vendor_orders"][1]
    cancel_url = f"/vendor/orders/{second['id']}/cancel"
    refused = api.post(cancel_url, paid["sellers"][1].token, json={"reason": "late"})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "payment_being_captured"

    outbox.run_message(message_id)  # the retry repeats the same capture and records it
    payment = payment_of(paid["order"]["id"])
    assert (payment.status, payment.amount_captured_cents) == (PaymentStatus.CAPTURED, total)
    app.config["JOBS_SYNCHRONOUS"] = True
    cancelled = api.post(cancel_url, paid["sellers"][1].token, json={"reason": "late"})
    assert cancelled.status_code == 200, cancelled.get_json()
    refunds = [r["amount"] for r in _stripe(webhooks, "refunds")]
    assert refunds == [second["total_cents"]]
    _assert_books_balance()


def test_a_refund_while_the_transfer_awaits_its_answer_is_reversed_once_it_is_sent(
    api, webhooks, fast_stripe, app
):
    paid = paid_order(api, webhooks)
    vo = paid["vendor_orders"][0]
    fault = FAULTS["500 after, response lost"]
    fast_stripe(fault)
    _capture(api, paid)
    add_fault(webhooks, "/v1/transfers", **fault.params())
    _deliver(api, paid)
    message_id = _pending_message("marketplace.settlement.jobs.transfer_vendor_order")
    with pytest.raises(gateway.PaymentProviderError):
        outbox.run_message(message_id)  # Stripe paid the vendor; we did not hear back
    app.config["JOBS_SYNCHRONOUS"] = True
    response = api.post(
        f"/vendor/orders/{vo['id']}/refund",
        paid["sellers"][0].token,
        json={"amount_cents": 1000, "reason": "scratched"},
    )
    assert response.status_code == 201, response.get_json()
    refund = response.get_json()
    vendor_share = refund["amount_cents"] - refund["commission_returned_cents"]
    assert refund["transfer_reversal_cents"] == vendor_share  # the vendor gives it back
    assert refund["stripe_reversal_id"] is None  # ... once the transfer is known to be sent

    outbox.run_message(message_id)  # the retry: the same transfer, recorded; then the reversal
    (transfer,) = _stripe(webhooks, "transfers")
    assert transfer["amount"] == vo["vendor_earnings_cents"]
    assert [r["amount"] for r in _stripe(webhooks, "transfer_reversals")] == [vendor_share]
    _assert_books_balance()


# --- answers lost for longer than Stripe keeps idempotency keys -----------------------------


def _forget_keys_a_day_later(emulator: Any, model: Any, row_id: int) -> None:
    """A day passes: our row was asked of Stripe long ago, and Stripe pruned the key."""
    db.session.rollback()
    with transaction():
        db.session.execute(
            update(model).where(model.id == row_id).values(created_at=utcnow() - timedelta(days=1))
        )
    emulator_post(emulator, "/_emulator/idempotency/forget")


def test_a_transfer_whose_answer_was_lost_a_day_ago_is_found_not_sent_again(
    api, webhooks, fast_stripe
):
    paid = paid_order(api, webhooks)
    fault = FAULTS["500 after, response lost"]
    fast_stripe(fault)
    _capture(api, paid)
    add_fault(webhooks, "/v1/transfers", **fault.params())
    _deliver(api, paid)
    message_id = _pending_message("marketplace.settlement.jobs.transfer_vendor_order")
    with pytest.raises(gateway.PaymentProviderError):
        outbox.run_message(message_id)  # Stripe paid the vendor; we never heard back
    (ours,) = db.session.scalars(select(Transfer)).all()
    _forget_keys_a_day_later(webhooks, Transfer, ours.id)

    outbox.run_message(message_id)

    (theirs,) = _stripe(webhooks, "transfers")  # one transfer, not two
    db.session.rollback()
    assert db.session.get(Transfer, ours.id).stripe_transfer_id == theirs["id"]
    _assert_books_balance()


def test_a_refund_whose_answer_was_lost_a_day_ago_is_found_not_made_again(
    api, webhooks, fast_stripe
):
    paid = paid_order(api, webhooks)
    vo = paid["vendor_orders"][0]
    fault = FAULTS["500 after, response lost"]
    fast_stripe(fault)
    _capture(api, paid)
    add_fault(webhooks, "/v1/refunds", **fault.params())
    response = api.post(
        f"/vendor/orders/{vo['id']}/refund",
        paid["sellers"][0].token,
        json={"amount_cents": 1500, "reason": "scratched"},
    )
    assert response.get_json()["status"] == "pending"  # Stripe refunded; the answer was lost
    _forget_keys_a_day_later(webhooks, Refund, response.get_json()["id"])

    outbox.run_message(_pending_message("marketplace.settlement.jobs.execute_refund"))

    (theirs,) = _stripe(webhooks, "refunds")  # one refund, not two
    db.session.rollback()
    ours = db.session.get(Refund, response.get_json()["id"])
    assert (ours.status.value, ours.stripe_refund_id) == ("succeeded", theirs["id"])
    _assert_books_balance()


def test_a_reversal_whose_answer_was_lost_a_day_ago_is_found_not_made_again(
    api, webhooks, fast_stripe
):
    paid = paid_order(api, webhooks)
    vo = paid["vendor_orders"][0]
    fault = FAULTS["500 after, response lost"]
    fast_stripe(fault)
    _capture(api, paid)
    _transfer(api, paid)
    (transfer,) = _stripe(webhooks, "transfers")
    add_fault(webhooks, f"/v1/transfers/{transfer['id']}/reversals", **fault.params())
    response = api.post(
        f"/vendor/orders/{vo['id']}/refund",
        paid["sellers"][0].token,
        json={"amount_cents": 1500, "reason": "scratched"},
    )
    refund = response.get_json()
    assert (refund["status"], refund["reversal_status"]) == ("succeeded", "pending")
    assert len(_stripe(webhooks, "transfer_reversals")) == 1  # made; the answer was lost
    _forget_keys_a_day_later(webhooks, Refund, refund["id"])

    outbox.run_message(_pending_message("marketplace.settlement.jobs.execute_refund"))

    (theirs,) = _stripe(webhooks, "transfer_reversals")  # one reversal, not two
    db.session.rollback()
    ours = db.session.get(Refund, refund["id"])
    assert ours.stripe_reversal_id == theirs["id"]
    assert theirs["amount"] == ours.transfer_reversal_cents
    _assert_books_balance()


def test_a_transfer_stuck_sending_is_finished_after_the_part_was_refunded_whole(
    api, webhooks, fast_stripe, app
):
    """Found by the money walk: the retry stopped at "not payable" once a whole refund had
    moved the part to refunded, so the transfer stayed `sending` and its reversal never ran."""
    paid = paid_order(api, webhooks)
    vo = paid["vendor_orders"][0]
    fault = FAULTS["500 before, exhausted"]
    fast_stripe(fault)
    _capture(api, paid)
    add_fault(webhooks, "/v1/transfers", **fault.params())
    _deliver(api, paid)
    message_id = _pending_message("marketplace.settlement.jobs.transfer_vendor_order")
    with pytest.raises(gateway.PaymentProviderError):
        outbox.run_message(message_id)  # Stripe was away: the transfer stays `sending`
    app.config["JOBS_SYNCHRONOUS"] = True
    refunded = api.post(
        f"/vendor/orders/{vo['id']}/refund", paid["sellers"][0].token, json={"reason": "x"}
    )
    assert refunded.status_code == 201, refunded.get_json()
    assert (
        api.get(f"/vendor/orders/{vo['id']}", paid["sellers"][0].token).get_json()["status"]
        == "refunded"
    )

    outbox.run_message(message_id)  # Stripe is back

    (transfer,) = _stripe(webhooks, "transfers")
    assert transfer["amount"] == vo["vendor_earnings_cents"]
    assert transfer["amount_reversed"] == refunded.get_json()["transfer_reversal_cents"]
    _assert_books_balance()


# --- dispute recovery: the reversal of the vendor's share and the give-back transfer ------

RECOVERY_FAULTS = {
    **REFUND_FAULTS,
    "500 before, retried": FAULTS["500 before, retried"],
    "stall, retried": FAULTS["stall, retried"],
}


def _disputed_after_payout(api: Any, webhooks: Any) -> tuple[dict[str, Any], Any]:
    """A delivered and paid-out part under `reverse_vendor_share`, the charge then disputed:
    the recovery's reversal waits in the outbox."""
    set_dispute_mode(api, make_admin(), "reverse_vendor_share")
    paid = paid_order(api, webhooks)
    _capture(api, paid)
    _transfer(api, paid)
    (transfer,) = db.session.scalars(select(Transfer)).all()
    return paid, transfer


def _recovery() -> DisputeRecovery:
    db.session.rollback()
    (row,) = db.session.scalars(select(DisputeRecovery)).all()
    return row


@pytest.mark.parametrize("fault", RECOVERY_FAULTS.values(), ids=RECOVERY_FAULTS.keys())
def test_dispute_recovery_reversal_survives_stripe_faults(api, webhooks, fast_stripe, fault):
    fast_stripe(fault)
    paid, transfer = _disputed_after_payout(api, webhooks)
    add_fault(webhooks, f"/v1/transfers/{transfer.stripe_transfer_id}/reversals", **fault.params())
    open_dispute(webhooks, amount=2000)
    message_id = _pending_message(RECOVER_JOB)

    def still_asked() -> None:  # the intent row is written, no answer recorded
        recovery = _recovery()
        assert recovery.status is RecoveryStatus.PENDING
        assert recovery.reversal is not None
        assert recovery.reversal.status is ReversalStatus.ASKED

    started = time.monotonic()
    acted = lambda: bool(_stripe(webhooks, "transfer_reversals"))  # noqa: E731
    _run(message_id, fault, started, acted, still_asked)

    recovery = _recovery()
    assert recovery.status is RecoveryStatus.REVERSED
    (theirs,) = _stripe(webhooks, "transfer_reversals")  # reversed once
    assert (theirs["id"], theirs["amount"]) == (recovery.stripe_reversal_id, recovery.amount_cents)
    assert recovery.reversal.status is ReversalStatus.REVERSED
    assert db.session.get(Transfer, transfer.id).reversed_cents == recovery.amount_cents
    _assert_books_balance()


def test_dispute_recovery_reversal_refused_is_owed_not_retried(api, webhooks, fast_stripe):
    fault = Fault(status=400, count=100)
    fast_stripe(fault)
    paid, transfer = _disputed_after_payout(api, webhooks)
    add_fault(webhooks, f"/v1/transfers/{transfer.stripe_transfer_id}/reversals", **fault.params())
    open_dispute(webhooks, amount=2000)

    outbox.run_message(_pending_message(RECOVER_JOB))  # the refusal is an answer: no raise

    recovery = _recovery()
    assert recovery.status is RecoveryStatus.OWED and recovery.failure_reason
    assert recovery.reversal.status is ReversalStatus.FAILED
    assert recovery.stripe_reversal_id is None
    assert _stripe(webhooks, "transfer_reversals") == []
    assert db.session.get(Transfer, transfer.id).reversed_cents == 0
    seller = paid["sellers"][0]
    owed = api.get("/vendor/earnings", seller.token).get_json()["owed_cents"]
    assert owed == recovery.amount_cents
    db.session.rollback()
    assert ledger.balance_all() == 0
    report = reconciliation.reconcile()
    assert report["mismatches"] == [] and report["ok"] is True
    assert [(s["kind"], s["id"]) for s in report["failed_steps"]] == [
        ("dispute_recovery_refused", recovery.id)
    ]


@pytest.mark.parametrize("fault", RECOVERY_FAULTS.values(), ids=RECOVERY_FAULTS.keys())
def test_dispute_return_survives_stripe_faults(api, webhooks, client, fast_stripe, fault):
    fast_stripe(fault)
    paid, _ = _disputed_after_payout(api, webhooks)
    dispute = open_dispute(webhooks, amount=2000)
    outbox.run_message(_pending_message(RECOVER_JOB))
    assert _recovery().status is RecoveryStatus.REVERSED
    add_fault(webhooks, "/v1/transfers", **fault.params())
    close_dispute(client, dispute, "won")
    message_id = _pending_message(RETURN_JOB)

    def still_returning() -> None:
        assert _recovery().status is RecoveryStatus.RETURNING

    def returns() -> list[dict[str, Any]]:
        return [t for t in _stripe(webhooks, "transfers") if t["transfer_group"].startswith("d")]

    started = time.monotonic()
    _run(message_id, fault, started, lambda: bool(returns()), still_returning)

    recovery = _recovery()
    assert recovery.status is RecoveryStatus.RETURNED
    (returned,) = returns()  # given back once
    assert (returned["id"], returned["amount"]) == (
        recovery.stripe_return_transfer_id,
        recovery.amount_cents,
    )
    _assert_books_balance()


def test_dispute_return_refused_stays_owed_to_the_vendor(api, webhooks, client, fast_stripe):
    fault = Fault(status=400, count=100)
    fast_stripe(fault)
    paid, _ = _disputed_after_payout(api, webhooks)
    dispute = open_dispute(webhooks, amount=2000)
    outbox.run_message(_pending_message(RECOVER_JOB))
    add_fault(webhooks, "/v1/transfers", **fault.params())
    close_dispute(client, dispute, "won")

    outbox.run_message(_pending_message(RETURN_JOB))  # the refusal is an answer: no raise

    recovery = _recovery()
    assert recovery.status is RecoveryStatus.RETURN_REFUSED and recovery.failure_reason
    assert [t for t in _stripe(webhooks, "transfers") if t["transfer_group"].startswith("d")] == []
    db.session.rollback()
    assert ledger.balance_all() == 0
    report = reconciliation.reconcile()
    assert report["mismatches"] == [] and report["ok"] is True
    assert [(s["kind"], s["id"]) for s in report["failed_steps"]] == [
        ("dispute_return_refused", recovery.id)
    ]
