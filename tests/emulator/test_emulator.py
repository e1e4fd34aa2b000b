"""The offline Stripe emulator, driven through the real `stripe` SDK (and raw HTTP for extras)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import stripe

from stripe_emulator import (
    EmulatorServer,
    create_emulator_app,
    get_state,
    sign_payload,
)
from stripe_emulator.params import decode_params
from stripe_emulator.store import IdempotencyEntry

from .helpers import SECRET, Emulator, Receiver, http

MakeClient = Callable[..., stripe.StripeClient]


def payable_account(client: stripe.StripeClient, emu: Emulator) -> stripe.Account:
    account = client.v1.accounts.create(
        {
            "type": "express",
            "email": "vendor@example.com",
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
            "metadata": {"vendor_id": "7"},
        }
    )
    emu.ok("POST", f"/_emulator/accounts/{account.id}/complete_onboarding")
    return client.v1.accounts.retrieve(account.id)


def authorized_intent(
    client: stripe.StripeClient, amount: int = 10_000, capture_method: str = "manual"
) -> stripe.PaymentIntent:
    intent = client.v1.payment_intents.create(
        {
            "amount": amount,
            "currency": "usd",
            "capture_method": capture_method,
            "transfer_group": "order:1",
        }
    )
    return client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})


def captured_charge(client: stripe.StripeClient, amount: int = 10_000) -> stripe.Charge:
    intent = authorized_intent(client, amount)
    client.v1.payment_intents.capture(intent.id)
    return client.v1.charges.retrieve(intent.latest_charge)


# -- the whole flow --------------------------------------------------------------------------


def test_full_flow_through_the_sdk(
    server: EmulatorServer, client: stripe.StripeClient, make_client: MakeClient, emu: Emulator
) -> None:
    account = client.v1.accounts.create(
        {
            "type": "express",
            "email": "vendor@example.com",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"vendor_id": "7"},
        }
    )
    assert account.id.startswith("acct_")
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (
        False,
        False,
        False,
    )
    assert account.capabilities.transfers == "inactive"
    assert account.requirements.currently_due and account.requirements.past_due == []
    assert account.metadata["vendor_id"] == "7"

    link = client.v1.account_links.create(
        {
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "https://shop.test/refresh",
            "return_url": "https://shop.test/return",
        }
    )
    assert link.object == "account_link" and link.expires_at > link.created
    assert link.url.startswith(server.url)
    emu.ok("POST", f"/_emulator/accounts/{account.id}/complete_onboarding")
    account = client.v1.accounts.retrieve(account.id)
    assert account.payouts_enabled and account.charges_enabled and account.details_submitted
    assert account.capabilities.transfers == "active"
    assert account.requirements.currently_due == [] and account.requirements.disabled_reason is None

    intent = client.v1.payment_intents.create(
        {
            "amount": 10_000,
            "currency": "usd",
            "capture_method": "manual",
            "transfer_group": "order:1",
            "metadata": {"order_id": "1"},
        }
    )
    assert intent.status == "requires_payment_method"
    assert intent.client_secret.startswith(f"{intent.id}_secret_")

    browser = make_client("pk_test_x")
    confirmed = browser.v1.payment_intents.confirm(
        intent.id, {"payment_method": "pm_card_visa", "client_secret": intent.client_secret}
    )
    assert confirmed.status == "requires_capture"
    assert confirmed.amount_capturable == 10_000
    charge = client.v1.charges.retrieve(confirmed.latest_charge)
    assert charge.captured is False and charge.amount_captured == 0
    assert charge.payment_method_details.card.capture_before > charge.created
    assert charge.transfer_group == "order:1"

    captured = client.v1.payment_intents.capture(
        intent.id, {"amount_to_capture": 8_000, "expand": ["latest_charge"]}
    )
    assert captured.status == "succeeded"
    assert captured.amount_received == 8_000 and captured.amount_capturable == 0
    charge = captured.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert charge.captured and charge.amount_captured == 8_000
    assert charge.balance_transaction.startswith("txn_")

    transfer = client.v1.transfers.create(
        {
            "amount": 5_000,
            "currency": "usd",
            "destination": account.id,
            "source_transaction": charge.id,
            "transfer_group": "order:1",
            "metadata": {"vendor_order_id": "3"},
        },
        {"idempotency_key": "transfer:3"},
    )
    assert transfer.id.startswith("tr_") and transfer.destination_payment.startswith("py_")
    assert (transfer.amount_reversed, transfer.reversed) == (0, False)

    reversal = client.v1.transfers.reversals.create(transfer.id, {"amount": 1_000})
    assert reversal.id.startswith("trr_") and reversal.transfer == transfer.id
    transfer = client.v1.transfers.retrieve(transfer.id)
    assert transfer.amount_reversed == 1_000 and not transfer.reversed
    assert [r.id for r in transfer.reversals.data] == [reversal.id]
    assert [r.id for r in client.v1.transfers.reversals.list(transfer.id).data] == [reversal.id]

    refund = client.v1.refunds.create(
        {"payment_intent": intent.id, "amount": 2_000, "reason": "requested_by_customer"}
    )
    assert refund.id.startswith("re_") and refund.status == "succeeded"
    assert refund.charge == charge.id
    charge = client.v1.charges.retrieve(charge.id)
    assert charge.amount_refunded == 2_000 and charge.refunded is False

    balance = client.v1.balance.retrieve()
    assert balance.available[0].amount == 8_000 - 5_000 + 1_000 - 2_000
    assert balance.available[0].currency == "usd"

    listed = client.v1.charges.list({"payment_intent": intent.id})
    assert [c.id for c in listed.data] == [charge.id]
    assert [t.id for t in client.v1.transfers.list({"transfer_group": "order:1"}).data] == [
        transfer.id
    ]

    types = [e.type for e in client.v1.events.list({"limit": 100}).auto_paging_iter()]
    for expected in (
        "account.updated",
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "transfer.created",
        "transfer.reversed",
        "charge.refunded",
    ):
        assert expected in types
    updated = client.v1.events.list({"type": "account.updated"}).data[0]
    assert updated.account == account.id
    assert updated.data.object.payouts_enabled is True
    assert client.v1.events.retrieve(updated.id).id == updated.id


def test_publishable_key_only_confirms_with_client_secret(
    client: stripe.StripeClient, make_client: MakeClient
) -> None:
    intent = client.v1.payment_intents.create({"amount": 1_000, "currency": "usd"})
    browser = make_client("pk_test_x")
    with pytest.raises(stripe.AuthenticationError):
        browser.v1.payment_intents.create({"amount": 1_000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        browser.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert missing.value.param == "client_secret"
    with pytest.raises(stripe.InvalidRequestError):
        browser.v1.payment_intents.confirm(
            intent.id, {"payment_method": "pm_card_visa", "client_secret": "pi_x_secret_y"}
        )
    fetched = browser.v1.payment_intents.retrieve(
        intent.id, {"client_secret": intent.client_secret}
    )
    assert fetched.status == "requires_payment_method"
    done = browser.v1.payment_intents.confirm(
        intent.id, {"payment_method": "pm_card_visa", "client_secret": intent.client_secret}
    )
    assert done.status == "succeeded" and done.amount_received == 1_000


# -- cards -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payment_method", "code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
    ],
)
def test_declined_cards(
    client: stripe.StripeClient, payment_method: str, code: str, decline_code: str
) -> None:
    intent = client.v1.payment_intents.create(
        {"amount": 2_500, "currency": "usd", "capture_method": "manual"}
    )
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.confirm(intent.id, {"payment_method": payment_method})
    assert declined.value.http_status == 402
    assert declined.value.code == code
    assert declined.value.error.decline_code == decline_code
    assert declined.value.error.payment_intent.id == intent.id

    intent = client.v1.payment_intents.retrieve(intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.decline_code == decline_code
    failed = client.v1.events.list({"type": "payment_intent.payment_failed"}).data
    assert [e.data.object.id for e in failed] == [intent.id]

    retried = client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert retried.status == "requires_capture" and retried.last_payment_error is None


def test_authentication_required(client: stripe.StripeClient, emu: Emulator) -> None:
    intent = client.v1.payment_intents.create(
        {"amount": 3_000, "currency": "usd", "capture_method": "manual"}
    )
    pending = client.v1.payment_intents.confirm(
        intent.id, {"payment_method": "pm_card_authenticationRequired"}
    )
    assert pending.status == "requires_action"
    assert pending.next_action.type == "use_stripe_sdk"
    done = emu.ok("POST", f"/_emulator/payment_intents/{intent.id}/authenticate")
    assert done["status"] == "requires_capture" and done["amount_capturable"] == 3_000

    other = client.v1.payment_intents.create({"amount": 3_000, "currency": "usd"})
    redirect = client.v1.payment_intents.confirm(
        other.id,
        {"payment_method": "pm_card_authenticationRequired", "return_url": "https://shop.test/r"},
    )
    assert redirect.next_action.type == "redirect_to_url"
    assert redirect.next_action.redirect_to_url.return_url == "https://shop.test/r"
    failed = emu.ok(
        "POST", f"/_emulator/payment_intents/{other.id}/authenticate", {"outcome": "fail"}
    )
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"


def test_illegal_transitions_and_cancel(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create({"amount": 1_000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as early:
        client.v1.payment_intents.capture(intent.id)
    assert early.value.code == "payment_intent_unexpected_state"

    held = authorized_intent(client, 4_000)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.payment_intents.capture(held.id, {"amount_to_capture": 4_001})
    assert too_much.value.param == "amount_to_capture"
    canceled = client.v1.payment_intents.cancel(
        held.id, {"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status == "canceled" and canceled.amount_capturable == 0
    assert canceled.cancellation_reason == "requested_by_customer"
    with pytest.raises(stripe.InvalidRequestError) as twice:
        client.v1.payment_intents.cancel(held.id)
    assert twice.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.confirm(held.id, {"payment_method": "pm_card_visa"})

    paid = authorized_intent(client, 1_000, capture_method="automatic")
    assert paid.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.cancel(paid.id)


# -- idempotency and faults ------------------------------------------------------------------


def test_idempotent_replay(client: stripe.StripeClient, emu: Emulator) -> None:
    params = {"amount": 1_500, "currency": "usd", "metadata": {"order_id": "9"}}
    first = client.v1.payment_intents.create(params, {"idempotency_key": "order:9"})
    second = client.v1.payment_intents.create(params, {"idempotency_key": "order:9"})
    assert first.id == second.id
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(emu.state()["payment_intents"]) == 1

    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(
            {**params, "amount": 1_600}, {"idempotency_key": "order:9"}
        )

    # A stored error is replayed too (the endpoint ran).
    held = authorized_intent(client, 1_000)
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.payment_intents.capture(
                held.id, {"amount_to_capture": 5_000}, {"idempotency_key": "cap"}
            )
    assert err.value.headers["Idempotent-Replayed"] == "true"


def test_key_in_flight_gets_409(server: EmulatorServer) -> None:
    server.state.idempotency[("sk_test_x", "busy")] = IdempotencyEntry(
        "POST", "/v1/payment_intents", {}, "req_1"
    )
    status, _, body = http(
        "POST",
        server.url + "/v1/payment_intents",
        form={"amount": "1000", "currency": "usd"},
        headers={"Authorization": "Bearer sk_test_x", "Idempotency-Key": "busy"},
    )
    assert status == 409
    assert json.loads(body)["error"]["code"] == "idempotency_key_in_use"


def test_fault_before_execution_then_sdk_retry_creates_one_object(
    client: stripe.StripeClient, emu: Emulator
) -> None:
    emu.ok("POST", "/_emulator/faults", {"path_prefix": "/v1/payment_intents", "status": 500})
    intent = client.v1.payment_intents.create(
        {"amount": 2_000, "currency": "usd"}, {"idempotency_key": "order:42"}
    )
    assert intent.status == "requires_payment_method"
    assert len(emu.state()["payment_intents"]) == 1
    assert emu.ok("GET", "/_emulator/faults")["faults"] == []

    emu.ok(
        "POST",
        "/_emulator/faults",
        {"path_prefix": "/v1/payment_intents", "status": 503, "count": 5},
    )
    with pytest.raises(stripe.APIError):  # 3 attempts, all fail
        client.v1.payment_intents.create({"amount": 2_000, "currency": "usd"})
    emu.ok("DELETE", "/_emulator/faults")
    assert len(emu.state()["payment_intents"]) == 1


def test_fault_after_execution_is_replayed_on_retry(
    client: stripe.StripeClient, emu: Emulator
) -> None:
    emu.ok(
        "POST",
        "/_emulator/faults",
        {"path_prefix": "/v1/payment_intents", "status": 500, "mode": "after"},
    )
    intent = client.v1.payment_intents.create({"amount": 2_000, "currency": "usd"})
    assert intent.last_response.headers["Idempotent-Replayed"] == "true"
    assert [pi["id"] for pi in emu.state()["payment_intents"]] == [intent.id]


def test_delay_fault_and_client_timeout(
    server: EmulatorServer, make_client: MakeClient, emu: Emulator
) -> None:
    emu.ok("POST", "/_emulator/faults", {"path_prefix": "/v1/balance", "delay_ms": 1_000})
    impatient = make_client(retries=0, timeout=0.3)
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.balance.retrieve()

    emu.ok("POST", "/_emulator/faults", {"path_prefix": "/v1/payment_intents", "delay_ms": 800})
    retrying = make_client(retries=3, timeout=0.3)
    intent = retrying.v1.payment_intents.create({"amount": 2_000, "currency": "usd"})
    time.sleep(0.9)  # the stalled first attempt finishes and is answered from the key
    assert [pi["id"] for pi in emu.state()["payment_intents"]] == [intent.id]


# -- limits and validation -------------------------------------------------------------------


def test_refund_limits(client: stripe.StripeClient) -> None:
    charge = captured_charge(client, 5_000)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create({"charge": charge.id, "amount": 5_001})
    assert too_much.value.param == "amount"
    client.v1.refunds.create({"charge": charge.id, "amount": 2_000})
    rest = client.v1.refunds.create({"charge": charge.id})
    assert rest.amount == 3_000
    charge = client.v1.charges.retrieve(charge.id)
    assert charge.refunded and charge.amount_refunded == 5_000
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create({"charge": charge.id, "amount": 1})
    assert again.value.code == "charge_already_refunded"
    assert len(client.v1.refunds.list({"charge": charge.id}).data) == 2

    held = authorized_intent(client, 1_000)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create({"payment_intent": held.id})


def test_transfer_and_reversal_limits(client: stripe.StripeClient, emu: Emulator) -> None:
    charge = captured_charge(client, 10_000)
    pending = client.v1.accounts.create({"type": "express"})
    with pytest.raises(stripe.InvalidRequestError) as inactive:
        client.v1.transfers.create({"amount": 100, "currency": "usd", "destination": pending.id})
    assert inactive.value.code == "insufficient_capabilities_for_transfer"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.transfers.create({"amount": 100, "currency": "usd", "destination": "acct_no"})
    assert unknown.value.param == "destination"

    account = payable_account(client, emu)
    with pytest.raises(stripe.InvalidRequestError) as over_source:
        client.v1.transfers.create(
            {
                "amount": 10_001,
                "currency": "usd",
                "destination": account.id,
                "source_transaction": charge.id,
            }
        )
    assert over_source.value.code == "balance_insufficient"
    with pytest.raises(stripe.InvalidRequestError) as over_balance:
        client.v1.transfers.create({"amount": 10_001, "currency": "usd", "destination": account.id})
    assert over_balance.value.code == "balance_insufficient"

    transfer = client.v1.transfers.create(
        {"amount": 4_000, "currency": "usd", "destination": account.id}
    )
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.transfers.reversals.create(transfer.id, {"amount": 4_001})
    assert too_much.value.param == "amount"
    client.v1.transfers.reversals.create(transfer.id, {"amount": 1_500})
    rest = client.v1.transfers.reversals.create(transfer.id)
    assert rest.amount == 2_500
    transfer = client.v1.transfers.retrieve(transfer.id)
    assert transfer.reversed and transfer.amount_reversed == 4_000
    assert transfer.reversals.total_count == 2
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(transfer.id, {"amount": 1})


def test_auth_unknown_routes_and_missing_params(
    server: EmulatorServer, client: stripe.StripeClient, make_client: MakeClient
) -> None:
    status, _, body = http("GET", server.url + "/v1/balance")
    assert status == 401 and "API key" in json.loads(body)["error"]["message"]
    with pytest.raises(stripe.AuthenticationError):
        make_client("sk_live_nope").v1.balance.retrieve()

    status, _, body = http(
        "GET", server.url + "/v1/nothing_here", headers={"Authorization": "Bearer sk_test_x"}
    )
    assert status == 404
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.create({"amount": 1_000})  # type: ignore[typeddict-item]
    assert missing.value.param == "currency" and missing.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as absent:
        client.v1.payment_intents.retrieve("pi_missing")
    assert absent.value.http_status == 404 and absent.value.code == "resource_missing"


def test_lists_page_newest_first(client: stripe.StripeClient) -> None:
    ids = [
        client.v1.payment_intents.create({"amount": 1_000 + i, "currency": "usd"}).id
        for i in range(3)
    ]
    page = client.v1.payment_intents.list({"limit": 2})
    assert [pi.id for pi in page.data] == ids[::-1][:2] and page.has_more
    assert [pi.id for pi in page.auto_paging_iter()] == ids[::-1]
    expanded = client.v1.payment_intents.list({"expand": ["data.latest_charge"]})
    assert len(expanded.data) == 3


# -- webhooks --------------------------------------------------------------------------------


def test_webhooks_are_signed_and_verifiable(
    server: EmulatorServer, client: stripe.StripeClient, receiver: Receiver, emu: Emulator
) -> None:
    account = payable_account(client, emu)
    intent = authorized_intent(client, 6_000)
    client.v1.payment_intents.capture(intent.id)
    client.v1.transfers.create(
        {
            "amount": 1_000,
            "currency": "usd",
            "destination": account.id,
            "source_transaction": intent.latest_charge,
        }
    )
    assert emu.ok("POST", "/_emulator/webhooks/flush", {"timeout": 5}) == {
        "ok": True,
        "pending": 0,
    }
    events = receiver.events()  # construct_event raised if a signature were wrong
    types = [e.type for e in events]
    # Delivered by a pool, so unordered (as with Stripe): every event is there, in any order.
    assert {"payment_intent.created", "payment_intent.succeeded"} <= set(types)
    assert "payment_intent.amount_capturable_updated" in types and "transfer.created" in types
    updated = next(e for e in events if e.type == "account.updated")
    assert updated.account == account.id
    assert all(e.api_version and e.livemode is False for e in events)
    assert next(e for e in events if e.type == "payment_intent.succeeded").data.object.id == (
        intent.id
    )
    stored = client.v1.events.retrieve(events[0].id)
    assert stored.pending_webhooks == 0
    body, headers = receiver.requests[0]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_other")

    emu.ok("POST", f"/_emulator/events/{events[0].id}/resend")
    assert server.flush_webhooks(5)
    assert [e.id for e in receiver.events()].count(events[0].id) == 2


def test_webhook_retried_after_receiver_error(
    server: EmulatorServer, client: stripe.StripeClient, receiver: Receiver, emu: Emulator
) -> None:
    receiver.fail_next = 1
    intent = client.v1.payment_intents.create({"amount": 1_000, "currency": "usd"})
    assert server.flush_webhooks(5)
    events = receiver.events()
    assert [e.type for e in events] == ["payment_intent.created"] * 2
    assert events[0].id == events[1].id == client.v1.events.list().data[0].id
    assert events[0].data.object.id == intent.id
    attempts = emu.ok("GET", "/_emulator/webhooks")["attempts"]
    assert [(a["attempt"], a["status"], a["delivered"]) for a in attempts] == [
        (1, 500, False),
        (2, 200, True),
    ]


def test_webhook_unreachable_is_given_up(server: EmulatorServer) -> None:
    server.state.dispatcher.backoff = (0.01,)
    server.state.dispatcher.max_attempts = 3
    server.webhook_url = "http://127.0.0.1:9/nothing"
    server.state.emit("account.updated", {"id": "acct_x", "object": "account"})
    assert server.flush_webhooks(5)
    attempts = server.state.dispatcher.attempts()
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert not any(a["delivered"] for a in attempts)


def test_sign_payload_matches_sdk() -> None:
    header = sign_payload('{"object": "event", "id": "evt_1"}', SECRET)
    event = stripe.Webhook.construct_event('{"object": "event", "id": "evt_1"}', header, SECRET)
    assert event.id == "evt_1"


# -- hosted pages ----------------------------------------------------------------------------


def test_onboarding_page(server: EmulatorServer, client: stripe.StripeClient) -> None:
    account = client.v1.accounts.create({"type": "express"})
    link = client.v1.account_links.create(
        {
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "https://shop.test/refresh",
            "return_url": "https://shop.test/return",
        }
    )
    status, _, page = http("GET", link.url)
    assert status == 200 and "<form" in page and account.id in page
    status, headers, _ = http("POST", link.url, form={})
    assert status == 303 and headers["Location"] == "https://shop.test/return"
    assert client.v1.accounts.retrieve(account.id).payouts_enabled is True
    status, headers, _ = http("GET", link.url)  # single use
    assert status == 302 and headers["Location"] == "https://shop.test/refresh"


@pytest.mark.parametrize(
    ("payment_method", "redirect_status", "final_status"),
    [
        ("pm_card_visa", "succeeded", "requires_capture"),
        ("pm_card_chargeDeclined", "failed", "requires_payment_method"),
        ("pm_card_chargeDeclinedInsufficientFunds", "failed", "requires_payment_method"),
    ],
)
def test_pay_page(
    server: EmulatorServer,
    client: stripe.StripeClient,
    payment_method: str,
    redirect_status: str,
    final_status: str,
) -> None:
    intent = client.v1.payment_intents.create(
        {"amount": 1_999, "currency": "usd", "capture_method": "manual"}
    )
    return_url = "https://shop.test/orders/5?x=<1>"
    page_url = f"{server.url}/_emulator/pay/{intent.id}"
    query = {"client_secret": intent.client_secret, "return_url": return_url}
    status, _, page = http("GET", page_url + "?" + urlencode(query))
    assert status == 200 and "19.99 USD" in page and "x=&lt;1&gt;" in page
    assert "<1>" not in page
    status, _, _ = http("GET", page_url + "?client_secret=wrong")
    assert status == 404

    status, headers, _ = http("POST", page_url, form={**query, "payment_method": payment_method})
    assert status == 303
    location = urlsplit(headers["Location"])
    assert location.netloc == "shop.test" and location.path == "/orders/5"
    sent = parse_qs(location.query)
    assert sent["x"] == ["<1>"] and sent["payment_intent"] == [intent.id]
    assert sent["redirect_status"] == [redirect_status]
    assert client.v1.payment_intents.retrieve(intent.id).status == final_status


def test_pay_page_with_3d_secure(server: EmulatorServer, client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create({"amount": 1_000, "currency": "usd"})
    form = {
        "client_secret": intent.client_secret,
        "return_url": "https://shop.test/done",
        "payment_method": "pm_card_authenticationRequired",
    }
    status, headers, _ = http("POST", f"{server.url}/_emulator/pay/{intent.id}", form=form)
    assert status == 303 and "/_emulator/3ds/" in headers["Location"]
    status, _, page = http("GET", headers["Location"])
    assert status == 200 and "Complete authentication" in page
    status, headers, _ = http(
        "POST",
        f"{server.url}/_emulator/3ds/{intent.id}",
        form={**form, "outcome": "succeed"},
    )
    assert status == 303
    assert parse_qs(urlsplit(headers["Location"]).query)["redirect_status"] == ["succeeded"]
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


# -- test routes -----------------------------------------------------------------------------


def test_state_tamper_and_reset(client: stripe.StripeClient, emu: Emulator) -> None:
    account = payable_account(client, emu)
    charge = captured_charge(client, 3_000)
    transfer = client.v1.transfers.create(
        {
            "amount": 2_000,
            "currency": "usd",
            "destination": account.id,
            "source_transaction": charge.id,
        }
    )
    state = emu.state()
    assert [t["id"] for t in state["transfers"]] == [transfer.id]
    assert len(state["charges"]) == 1 and len(state["accounts"]) == 1

    patched = emu.ok("POST", f"/_emulator/objects/{transfer.id}", {"amount": 1_999})
    assert patched["amount"] == 1_999
    assert client.v1.transfers.retrieve(transfer.id).amount == 1_999
    emu.ok("DELETE", f"/_emulator/objects/{transfer.id}")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.retrieve(transfer.id)
    assert emu.call("DELETE", f"/_emulator/objects/{transfer.id}")[0] == 404

    emu.ok("POST", "/_emulator/reset")
    state = emu.state()
    assert state["charges"] == [] and state["accounts"] == [] and state["events"] == []


def test_expire_dispute_and_payout_events(client: stripe.StripeClient, emu: Emulator) -> None:
    held = authorized_intent(client, 2_000)
    expired = emu.ok("POST", f"/_emulator/payment_intents/{held.id}/expire")
    assert expired["status"] == "canceled" and expired["cancellation_reason"] == "automatic"

    charge = captured_charge(client, 2_000)
    dispute = emu.ok("POST", f"/_emulator/charges/{charge.id}/dispute")
    assert dispute["charge"] == charge.id
    assert client.v1.charges.retrieve(charge.id).disputed is True

    account = payable_account(client, emu)
    emu.ok("POST", f"/_emulator/accounts/{account.id}/payouts", {"amount": 500, "status": "failed"})
    failed = client.v1.events.list({"type": "payout.failed"}).data[0]
    assert failed.account == account.id
    restricted = emu.ok("POST", f"/_emulator/accounts/{account.id}/restrict")
    assert restricted["payouts_enabled"] is False
    assert restricted["capabilities"]["transfers"] == "inactive"


def test_decode_params() -> None:
    pairs = [
        ("amount", "100"),
        ("metadata[order_id]", "5"),
        ("metadata[0]", "zero"),
        ("capabilities[transfers][requested]", "true"),
        ("expand[0]", "latest_charge"),
        ("expand[1]", "customer"),
        ("types[]", "a"),
        ("types[]", "b"),
    ]
    assert decode_params(pairs) == {
        "amount": "100",
        "metadata": {"order_id": "5", "0": "zero"},
        "capabilities": {"transfers": {"requested": "true"}},
        "expand": ["latest_charge", "customer"],
        "types": ["a", "b"],
    }


def test_cli_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_emulator", "--port", "0", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        status, _, body = http("GET", url + "/_emulator/health")
        assert status == 200 and json.loads(body) == {"ok": True}
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == 0


def test_embedded_app_without_a_server() -> None:
    app = create_emulator_app()
    web = app.test_client()
    preflight = web.options("/v1/payment_intents/pi_1/confirm")
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    answer = web.post(
        "/v1/payment_intents",
        data={"amount": "1000", "currency": "usd", "metadata[order_id]": "1"},
        headers={"Authorization": "Bearer sk_test_x"},
    )
    assert answer.status_code == 200 and answer.json["metadata"] == {"order_id": "1"}
    assert get_state(app).get(answer.json["id"])["status"] == "requires_payment_method"
