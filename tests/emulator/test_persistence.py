"""The emulator's state file (embedded mode): a journal safe under concurrency and crashes.

Issue 17: every POST rewrote the whole state through one shared temporary file outside the
store's lock; concurrent POSTs raced and the loser was answered 404 after its object existed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import stripe

from stripe_emulator import EmulatorServer

from .helpers import SECRET, Emulator, Receiver, http


class Restartable:
    """Emulator servers started one after the other on the same state file."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self.server: EmulatorServer | None = None
        self._http_clients: list[stripe.RequestsClient] = []

    def start(self) -> EmulatorServer:
        self.server = EmulatorServer(
            port=0, webhook_secret=SECRET, state_file=str(self.state_file)
        ).start()
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def restart(self) -> EmulatorServer:
        self.stop()
        return self.start()

    def client(self, retries: int = 0) -> stripe.StripeClient:
        assert self.server is not None
        http_client = stripe.RequestsClient(timeout=30)
        self._http_clients.append(http_client)
        return stripe.StripeClient(
            "sk_test_x",
            base_addresses={"api": self.server.url},
            max_network_retries=retries,
            http_client=http_client,
        )

    def close(self) -> None:
        self.stop()
        for http_client in self._http_clients:
            http_client.close()


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[Restartable]:
    restartable = Restartable(tmp_path / "stripe-emulator.jsonl")
    restartable.start()
    yield restartable
    restartable.close()


def money_flow(client: stripe.StripeClient, server: EmulatorServer) -> dict[str, str]:
    """Account, payment, capture, refund, transfer and reversal: the ids of what was made."""
    account = client.v1.accounts.create({"type": "express", "email": "v@example.com"})
    Emulator(server).ok("POST", f"/_emulator/accounts/{account.id}/complete_onboarding")
    intent = client.v1.payment_intents.create(
        {"amount": 5_000, "currency": "usd", "capture_method": "manual"}
    )
    client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    captured = client.v1.payment_intents.capture(intent.id)
    transfer = client.v1.transfers.create(
        {
            "amount": 4_000,
            "currency": "usd",
            "destination": account.id,
            "source_transaction": captured.latest_charge,
        }
    )
    refund = client.v1.refunds.create({"charge": captured.latest_charge, "amount": 1_000})
    reversal = client.v1.transfers.reversals.create(transfer.id, {"amount": 800})
    return {
        "account": account.id,
        "payment_intent": intent.id,
        "charge": captured.latest_charge,
        "transfer": transfer.id,
        "refund": refund.id,
        "transfer_reversal": reversal.id,
    }


def objects(server: EmulatorServer) -> dict[str, Any]:
    """Every stored object by id, as `/_emulator/state` renders it."""
    state = Emulator(server).state()
    return {
        o["id"]: o
        for kind, rows in state.items()
        if isinstance(rows, list) and kind != "faults"
        for o in rows
        if isinstance(o, dict) and "id" in o
    }


def test_a_restart_keeps_every_object(emulators: Restartable) -> None:
    server = emulators.server
    assert server is not None
    ids = money_flow(emulators.client(), server)
    before = objects(server)

    server = emulators.restart()

    assert objects(server) == before
    client = emulators.client()
    charge = client.v1.charges.retrieve(ids["charge"])
    assert (charge.amount_captured, charge.amount_refunded) == (5_000, 1_000)
    transfer = client.v1.transfers.retrieve(ids["transfer"])
    assert transfer.amount_reversed == 800
    assert transfer.reversals.data[0].id == ids["transfer_reversal"]
    more = client.v1.refunds.create({"charge": ids["charge"], "amount": 500})
    assert client.v1.charges.retrieve(ids["charge"]).amount_refunded == 1_500

    server = emulators.restart()
    assert emulators.client().v1.refunds.retrieve(more.id).amount == 500


def test_concurrent_posts_all_succeed_and_all_are_kept(emulators: Restartable) -> None:
    server = emulators.server
    assert server is not None
    start_together = threading.Barrier(8)

    def create_accounts(worker: int) -> list[str]:
        client = emulators.client()
        start_together.wait(timeout=30)
        return [
            client.v1.accounts.create({"type": "express", "metadata": {"n": f"{worker}-{i}"}}).id
            for i in range(15)
        ]

    with ThreadPoolExecutor(8) as pool:
        created = [i for ids in pool.map(create_accounts, range(8)) for i in ids]

    assert len(set(created)) == 8 * 15
    server = emulators.restart()
    listed = {a.id for a in emulators.client().v1.accounts.list({"limit": 100}).auto_paging_iter()}
    assert listed == set(created)


def test_each_post_appends_only_what_it_changed(emulators: Restartable) -> None:
    server = emulators.server
    assert server is not None
    client = emulators.client()
    for _ in range(60):
        client.v1.accounts.create({"type": "express"})
    account = client.v1.accounts.create({"type": "express"})
    before = emulators.state_file.read_bytes()

    client.v1.accounts.update(account.id, {"metadata": {"vendor_id": "7"}})

    after = emulators.state_file.read_bytes()
    assert after.startswith(before), "what was written before is left alone"
    appended = len(after) - len(before)
    one_account = len(json.dumps(Emulator(server).ok("GET", f"/_emulator/objects/{account.id}")))
    # the account, its account.updated event and the stored idempotent answer; not the state
    assert 0 < appended < 5 * one_account
    assert appended < len(before) / 10


def test_a_torn_last_record_is_dropped_and_the_rest_loads(emulators: Restartable) -> None:
    server = emulators.server
    assert server is not None
    ids = money_flow(emulators.client(), server)
    before = objects(server)
    emulators.stop()
    with emulators.state_file.open("ab") as journal:  # a crash in the middle of a write
        journal.write(b'{"put":[{"id":"acct_torn","object":"account","email":"x@')

    server = emulators.start()

    assert objects(server) == before
    assert "acct_torn" not in objects(server)
    later = emulators.client().v1.accounts.create({"type": "express"})
    server = emulators.restart()
    assert later.id in objects(server) and ids["refund"] in objects(server)


def test_a_cut_off_journal_loads_up_to_the_cut(emulators: Restartable) -> None:
    server = emulators.server
    assert server is not None
    client = emulators.client()
    kept = client.v1.accounts.create({"type": "express"})
    size_after_kept = emulators.state_file.stat().st_size
    lost = client.v1.accounts.create({"type": "express"})
    emulators.stop()
    with emulators.state_file.open("r+b") as journal:
        journal.truncate(emulators.state_file.stat().st_size - 7)  # the disk lost the tail

    server = emulators.start()

    stored = objects(server)
    assert kept.id in stored and lost.id not in stored
    assert emulators.state_file.stat().st_size == size_after_kept
    garbage = b"\x00\xff not json\n"
    emulators.stop()
    with emulators.state_file.open("ab") as journal:
        journal.write(garbage)
    server = emulators.start()
    assert kept.id in objects(server)


def test_a_failed_journal_write_does_not_fail_the_request(
    emulators: Restartable, caplog: pytest.LogCaptureFixture
) -> None:
    server = emulators.server
    assert server is not None
    client = emulators.client()
    client.v1.accounts.create({"type": "express"})  # opens the journal file
    journal = server.state.journal
    assert journal is not None and journal._handle is not None
    journal._handle.close()
    # the next write fails (as on a full or broken disk), then the journal is reopened
    journal._handle = emulators.state_file.open("rb")

    first = client.v1.accounts.create({"type": "express"})
    second = client.v1.accounts.create({"type": "express"})

    assert "could not journal" in caplog.text
    assert client.v1.accounts.retrieve(first.id).id == first.id
    server = emulators.restart()
    assert {first.id, second.id} <= set(objects(server))


def test_an_idempotent_post_is_replayed_after_a_restart(emulators: Restartable) -> None:
    client = emulators.client()
    account = client.v1.accounts.create(
        {"type": "express"}, options={"idempotency_key": "vendor:7"}
    )
    server = emulators.restart()

    status, headers, body = http(
        "POST",
        f"{server.url}/v1/accounts",
        form={"type": "express"},
        headers={"Authorization": "Bearer sk_test_x", "Idempotency-Key": "vendor:7"},
    )
    assert status == 200 and headers.get("Idempotent-Replayed") == "true"
    assert json.loads(body)["id"] == account.id
    assert [a.id for a in emulators.client().v1.accounts.list().data] == [account.id]


def test_the_journal_is_compacted_at_start(emulators: Restartable) -> None:
    server = emulators.server
    assert server is not None
    account = emulators.client().v1.accounts.create({"type": "express"})
    for n in range(30):  # one object changed many times: its history outweighs it
        Emulator(server).ok("POST", f"/_emulator/objects/{account.id}", {"metadata": {"n": n}})
    assert len(emulators.state_file.read_bytes().splitlines()) > 30
    before = objects(server)

    server = emulators.restart()

    assert len(emulators.state_file.read_bytes().splitlines()) == 1
    assert objects(server) == before
    assert objects(server)[account.id]["metadata"] == {"n": 29}
    server = emulators.restart()
    assert objects(server) == before


def test_a_whole_state_file_of_older_versions_is_imported(tmp_path: Path) -> None:
    legacy = tmp_path / "stripe-emulator.json"
    account = {"id": "acct_legacy1", "object": "account", "metadata": {}}
    legacy.write_text(
        json.dumps(
            {
                "tables": {"account": {"acct_legacy1": account}},
                "type_of": {"acct_legacy1": "account"},
                "account_links": {},
            }
        )
    )
    server = EmulatorServer(
        port=0,
        state_file=str(tmp_path / "stripe-emulator.jsonl"),
        import_state_from=str(legacy),
    ).start()
    try:
        assert objects(server)["acct_legacy1"]["object"] == "account"
    finally:
        server.stop()
    assert not legacy.exists() and (tmp_path / "stripe-emulator.json.imported").exists()


def test_events_not_yet_delivered_are_sent_after_a_restart(tmp_path: Path) -> None:
    state_file = str(tmp_path / "stripe-emulator.jsonl")
    unreachable = "http://127.0.0.1:9/webhooks/stripe"  # the app is down
    server = EmulatorServer(
        port=0, webhook_url=unreachable, webhook_secret=SECRET, state_file=state_file
    ).start()
    try:
        account = stripe.StripeClient(
            "sk_test_x",
            base_addresses={"api": server.url},
            http_client=stripe.RequestsClient(timeout=10),
        ).v1.accounts.create({"type": "express"})
        Emulator(server).ok("POST", f"/_emulator/accounts/{account.id}/complete_onboarding")
        events = Emulator(server).state()["events"]
        assert events and all(e["pending_webhooks"] == 1 for e in events)
    finally:
        server.stop()

    receiver = Receiver()
    server = EmulatorServer(
        port=0, webhook_url=receiver.url, webhook_secret=SECRET, state_file=state_file
    ).start()
    try:
        assert server.flush_webhooks(10)
        assert sorted(e.id for e in receiver.events()) == sorted(e["id"] for e in events)
        assert all(e["pending_webhooks"] == 0 for e in Emulator(server).state()["events"])
    finally:
        server.stop()
        receiver.close()
