"""The emulator's webhook pool: deliveries run concurrently, bounded, signed, and still retried."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from stripe_emulator.server import EmulatorServer
from stripe_emulator.webhooks import WebhookDispatcher
from tests.emulator.helpers import SECRET, Emulator

WAIT = 10.0  # seconds: generous upper bounds for waits that normally end at once


class Endpoint:
    """A webhook endpoint whose answer per event is decided by `behaviour(event_id, attempt)`.

    `behaviour` returns an HTTP status; it may block (a slow endpoint). Records the order of
    arrivals and the most requests it ever held at once.
    """

    def __init__(self, behaviour: Callable[[str, int], int], *, keep_alive: bool = False) -> None:
        self.behaviour = behaviour
        self.arrivals: list[tuple[str, bytes, str]] = []  # (event id, body, signature)
        self.peers: list[int] = []  # the client port of each arrival
        self.in_flight = 0
        self.max_in_flight = 0
        self.cond = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 keeps the connection open after each answer; HTTP/1.0 closes it.
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = stripe.Webhook.construct_event(
                    body, self.headers["Stripe-Signature"], SECRET
                )
                with endpoint.cond:
                    attempt = 1 + sum(1 for a in endpoint.arrivals if a[0] == event.id)
                    endpoint.arrivals.append((event.id, body, self.headers["Stripe-Signature"]))
                    endpoint.peers.append(self.client_address[1])
                    endpoint.in_flight += 1
                    endpoint.max_in_flight = max(endpoint.max_in_flight, endpoint.in_flight)
                    endpoint.cond.notify_all()
                try:
                    status = endpoint.behaviour(event.id, attempt)
                finally:
                    with endpoint.cond:
                        endpoint.in_flight -= 1
                        endpoint.cond.notify_all()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/stripe"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def ids(self) -> list[str]:
        with self.cond:
            return [a[0] for a in self.arrivals]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # never leave a handler blocked past the test


def _dispatcher(endpoint: Endpoint, concurrency: int) -> WebhookDispatcher:
    dispatcher = WebhookDispatcher(
        lambda event_id: {"id": event_id, "object": "event", "type": "test.event"},
        backoff=(0.05,),
        max_attempts=3,
        # Longer than any wait at the gate: a slow delivery is never cut short by a timeout.
        timeout=WAIT * 3,
        concurrency=concurrency,
    )
    dispatcher.url = endpoint.url
    dispatcher.secret = SECRET
    return dispatcher


def test_a_slow_endpoint_call_does_not_hold_back_the_events_behind_it(
    gate: threading.Event,
) -> None:
    def behaviour(event_id: str, attempt: int) -> int:
        if event_id == "evt_slow":
            assert gate.wait(WAIT)
        return 200

    endpoint = Endpoint(behaviour)
    dispatcher = _dispatcher(endpoint, concurrency=4)
    try:
        dispatcher.enqueue("evt_slow")
        later = [f"evt_{n}" for n in range(10)]
        for event_id in later:
            dispatcher.enqueue(event_id)
        # Every later event arrives while the first one is still being answered.
        assert endpoint.wait_for(lambda: set(later) <= {a[0] for a in endpoint.arrivals})
        # ... and is logged as delivered before the slow one has been answered.
        assert _eventually(
            lambda: {a["event_id"] for a in dispatcher.attempts() if a["delivered"]} == set(later)
        )
        assert not gate.is_set()
        assert dispatcher.pending >= 1  # the slow one, in flight
        gate.set()
        assert dispatcher.flush(WAIT)
        delivered = [a["event_id"] for a in dispatcher.attempts() if a["delivered"]]
        assert sorted(delivered) == sorted(["evt_slow", *later])
        assert delivered[-1] == "evt_slow"  # unordered: the first event was answered last
        slow = [a for a in dispatcher.attempts() if a["event_id"] == "evt_slow"]
        assert [(a["attempt"], a["status"]) for a in slow] == [(1, 200)]
    finally:
        dispatcher.close()
        endpoint.close()


def test_deliveries_in_flight_are_bounded_by_the_pool_size(gate: threading.Event) -> None:
    endpoint = Endpoint(lambda event_id, attempt: 200 if gate.wait(WAIT) else 500)
    dispatcher = _dispatcher(endpoint, concurrency=3)
    try:
        for n in range(9):
            dispatcher.enqueue(f"evt_{n}")
        assert endpoint.wait_for(lambda: endpoint.in_flight == 3)
        # Held at the gate, the pool cannot start a fourth delivery.
        with endpoint.cond:
            assert len(endpoint.arrivals) == 3
        gate.set()
        assert dispatcher.flush(WAIT)
        assert sorted(endpoint.ids()) == sorted(f"evt_{n}" for n in range(9))
        assert endpoint.max_in_flight == 3
    finally:
        dispatcher.close()
        endpoint.close()


def test_a_failed_delivery_is_retried_while_a_slow_one_is_in_flight(
    gate: threading.Event,
) -> None:
    def behaviour(event_id: str, attempt: int) -> int:
        if event_id == "evt_slow":
            assert gate.wait(WAIT)
            return 200
        return 500 if attempt == 1 else 200

    endpoint = Endpoint(behaviour)
    dispatcher = _dispatcher(endpoint, concurrency=2)
    try:
        dispatcher.enqueue("evt_slow")
        dispatcher.enqueue("evt_flaky")
        assert endpoint.wait_for(lambda: endpoint.ids().count("evt_flaky") == 2)
        assert not gate.is_set()
        gate.set()
        assert dispatcher.flush(WAIT)
        flaky = [
            (a["attempt"], a["status"], a["delivered"])
            for a in dispatcher.attempts()
            if a["event_id"] == "evt_flaky"
        ]
        assert flaky == [(1, 500, False), (2, 200, True)]
        # Both arrivals of the retried event carry the same body, each with a valid signature.
        bodies = [a[1] for a in endpoint.arrivals if a[0] == "evt_flaky"]
        assert bodies[0] == bodies[1]
    finally:
        dispatcher.close()
        endpoint.close()


def test_events_of_real_api_calls_are_delivered_concurrently_and_signed(
    server: EmulatorServer, client: stripe.StripeClient, emu: Emulator, gate: threading.Event
) -> None:
    first: list[str] = []

    def behaviour(event_id: str, attempt: int) -> int:
        with endpoint.cond:
            is_first = not first
            if is_first:
                first.append(event_id)
        if is_first:
            assert gate.wait(WAIT)
        return 200

    endpoint = Endpoint(behaviour)
    server.webhook_url = endpoint.url
    try:
        intents = [
            client.v1.payment_intents.create({"amount": 1_000 + n, "currency": "usd"})
            for n in range(5)
        ]
        # Five payment_intent.created events; four get through while the first is held.
        assert endpoint.wait_for(lambda: len(endpoint.arrivals) == 5)
        assert not gate.is_set()
        gate.set()
        assert emu.ok("POST", "/_emulator/webhooks/flush", {"timeout": 5})["ok"]
        events = [
            stripe.Webhook.construct_event(body, signature, SECRET)
            for _, body, signature in endpoint.arrivals
        ]
        assert sorted(e.data.object.id for e in events) == sorted(i.id for i in intents)
        assert all(client.v1.events.retrieve(e.id).pending_webhooks == 0 for e in events)
        # Each delivered at its first attempt: none got through only because the held one timed out.
        attempts = emu.ok("GET", "/_emulator/webhooks")["attempts"]
        assert [(a["attempt"], a["delivered"]) for a in attempts] == [(1, True)] * 5
    finally:
        server.webhook_url = None
        endpoint.close()


def test_a_delivery_thread_keeps_its_connection_to_the_endpoint_alive() -> None:
    endpoint = Endpoint(
        lambda event_id, attempt: 500 if event_id == "evt_flaky" and attempt == 1 else 200,
        keep_alive=True,
    )
    dispatcher = _dispatcher(endpoint, concurrency=1)
    try:
        for event_id in ["evt_0", "evt_flaky", "evt_1", "evt_2"]:
            dispatcher.enqueue(event_id)
        assert dispatcher.flush(WAIT)
        assert sorted(endpoint.ids()) == ["evt_0", "evt_1", "evt_2", "evt_flaky", "evt_flaky"]
        # Five POSTs, the failed one and its retry included, over one TCP connection.
        assert len(endpoint.peers) == 5 and len(set(endpoint.peers)) == 1, endpoint.peers
        flaky = [
            (a["attempt"], a["status"], a["error"], a["delivered"])
            for a in dispatcher.attempts()
            if a["event_id"] == "evt_flaky"
        ]
        assert flaky == [(1, 500, "HTTP 500", False), (2, 200, None, True)]
    finally:
        dispatcher.close()
        endpoint.close()


def test_a_redirect_is_a_failed_attempt_not_followed() -> None:
    """As at Stripe: an endpoint answering 3xx has not received the event; it is retried."""
    endpoint = Endpoint(lambda event_id, attempt: 307 if attempt == 1 else 200, keep_alive=True)
    dispatcher = _dispatcher(endpoint, concurrency=1)
    try:
        dispatcher.enqueue("evt_moved")
        assert dispatcher.flush(WAIT)
        attempts = [(a["attempt"], a["status"], a["delivered"]) for a in dispatcher.attempts()]
        assert attempts == [(1, 307, False), (2, 200, True)]
        assert endpoint.ids() == ["evt_moved", "evt_moved"]
    finally:
        dispatcher.close()
        endpoint.close()


def test_an_unreachable_endpoint_is_a_logged_failed_attempt() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/webhooks/stripe"
    dispatcher = WebhookDispatcher(
        lambda event_id: {"id": event_id, "object": "event", "type": "test.event"},
        backoff=(0.01,),
        max_attempts=2,
        timeout=WAIT,
    )
    dispatcher.url = closed
    dispatcher.secret = SECRET
    try:
        dispatcher.enqueue("evt_nowhere")
        assert dispatcher.flush(WAIT)
        attempts = dispatcher.attempts()
        assert [(a["attempt"], a["status"], a["delivered"]) for a in attempts] == [
            (1, None, False),
            (2, None, False),
        ]
        assert all("Connection refused" in a["error"] for a in attempts), attempts
    finally:
        dispatcher.close()


def test_pool_size_is_configurable_and_bad_sizes_change_nothing(emu: Emulator) -> None:
    assert emu.ok("GET", "/_emulator/webhooks")["concurrency"] == 16
    assert emu.ok("POST", "/_emulator/webhooks/config", {"concurrency": 2})["concurrency"] == 2
    for bad in (0, 65, "3", 1.5, True):
        status, body = emu.call("POST", "/_emulator/webhooks/config", {"concurrency": bad})
        assert status == 400 and body["error"]["param"] == "concurrency"
    assert emu.ok("GET", "/_emulator/webhooks")["concurrency"] == 2


def test_shrinking_the_pool_still_delivers_everything() -> None:
    endpoint = Endpoint(lambda event_id, attempt: 200)
    dispatcher = _dispatcher(endpoint, concurrency=4)
    try:
        for n in range(4):
            dispatcher.enqueue(f"evt_a{n}")
        assert dispatcher.flush(WAIT)
        dispatcher.resize(1)
        for n in range(6):
            dispatcher.enqueue(f"evt_b{n}")
        assert dispatcher.flush(WAIT)
        assert endpoint.max_in_flight <= 4
        assert sorted(endpoint.ids()) == sorted(
            [f"evt_a{n}" for n in range(4)] + [f"evt_b{n}" for n in range(6)]
        )
        with pytest.raises(ValueError):
            dispatcher.resize(0)
    finally:
        dispatcher.close()
        endpoint.close()


def test_only_the_endpoints_enabled_events_are_delivered(
    server: EmulatorServer, client: stripe.StripeClient, emu: Emulator
) -> None:
    endpoint = Endpoint(lambda event_id, attempt: 200)
    server.webhook_url = endpoint.url
    try:
        chosen = {"enabled_events": ["payment_intent.canceled"]}
        assert emu.ok("POST", "/_emulator/webhooks/config", chosen)["enabled_events"] == [
            "payment_intent.canceled"
        ]
        for bad in ([], "", [1], {"a": 1}):
            status, body = emu.call("POST", "/_emulator/webhooks/config", {"enabled_events": bad})
            assert status == 400 and body["error"]["param"] == "enabled_events"
        intent = client.v1.payment_intents.create({"amount": 1_500, "currency": "usd"})
        client.v1.payment_intents.cancel(intent.id)
        assert emu.ok("POST", "/_emulator/webhooks/flush", {"timeout": 5})["ok"]
        delivered = [
            stripe.Webhook.construct_event(body, signature, SECRET)
            for _, body, signature in endpoint.arrivals
        ]
        assert [e.type for e in delivered] == ["payment_intent.canceled"]
        # Every event is still recorded, as at Stripe; the one not subscribed to waits for none.
        created = [
            e
            for e in client.v1.events.list({"limit": 100}).data
            if e.type == "payment_intent.created" and e.data.object.id == intent.id
        ]
        assert [e.pending_webhooks for e in created] == [0]
        everything = {"enabled_events": ["*"]}
        assert emu.ok("POST", "/_emulator/webhooks/config", everything)["enabled_events"] == ["*"]
        client.v1.payment_intents.create({"amount": 1_600, "currency": "usd"})
        assert endpoint.wait_for(lambda: len(endpoint.arrivals) == 2)
    finally:
        server.webhook_url = None
        server.state.enabled_events = None
        endpoint.close()
