"""The emulator keeps HTTP/1.1 connections alive, idle ones hold no thread, and stop() frees all.

werkzeug's development server, which served it before, closed the connection after every
answer: each SDK call opened a new TCP connection and the emulator a new thread for it.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator

import pytest
import requests
import stripe
from flask import Response, request

from stripe_emulator import EmulatorServer
from stripe_emulator.__main__ import parse_args

from .helpers import SECRET

PEER = "X-Test-Peer"  # the client address and port the emulator saw, added by the tests' hook


def _answer_with_the_peer(server: EmulatorServer) -> list[str]:
    """Make the emulator name, in each answer and in the returned list, the peer it served."""
    peers: list[str] = []

    @server.app.after_request
    def peer(response: Response) -> Response:
        seen = f"{request.environ['REMOTE_ADDR']}:{request.environ['REMOTE_PORT']}"
        if request.path.startswith("/v1/"):
            peers.append(seen)
        response.headers[PEER] = seen
        return response

    return peers


def test_sdk_calls_through_one_client_share_one_connection(
    server: EmulatorServer, client: stripe.StripeClient
) -> None:
    peers = _answer_with_the_peer(server)
    intent = client.v1.payment_intents.create({"amount": 1_000, "currency": "usd"})
    client.v1.payment_intents.retrieve(intent.id)
    client.v1.payment_intents.update(intent.id, {"metadata": {"order_id": "7"}})
    client.v1.payment_intents.list({"limit": 3})
    client.v1.payment_intents.cancel(intent.id)
    assert len(peers) == 5
    assert len(set(peers)) == 1, peers  # one TCP connection (one client port) for all five


@pytest.fixture
def two_threads() -> Iterator[EmulatorServer]:
    emulator = EmulatorServer(port=0, webhook_secret=SECRET, threads=2).start()
    yield emulator
    emulator.stop()


def test_idle_keep_alive_connections_hold_no_thread(two_threads: EmulatorServer) -> None:
    server = two_threads
    _answer_with_the_peer(server)
    url = f"{server.url}/_emulator/health"
    sessions = [requests.Session() for _ in range(20)]  # ten times the server's threads
    try:
        first = [session.get(url, timeout=5).headers[PEER] for session in sessions]
        # 20 connections held open by their clients: a new one is still answered at once.
        started = time.monotonic()
        with requests.Session() as another:
            assert another.get(url, timeout=5).status_code == 200
        assert time.monotonic() - started < 2.0
        # ... and every idle one was kept alive (more than cheroot's default of 10).
        second = [session.get(url, timeout=5).headers[PEER] for session in sessions]
        assert second == first
        assert len(set(first)) == len(sessions)
    finally:
        for session in sessions:
            session.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_stop_frees_the_port_and_closes_a_kept_alive_connection() -> None:
    # A fixed port, as `python -m stripe_emulator --port 12111` is restarted on.
    port = _free_port()
    server = EmulatorServer(port=port, webhook_secret=SECRET).start()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/_emulator/health")
        answer = connection.getresponse()
        assert answer.status == 200 and answer.read()
        assert connection.sock is not None  # kept open for the next request
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        assert connection.sock.recv(1) == b""  # the emulator closed it
    finally:
        connection.close()
        server.stop()
    again = EmulatorServer(port=port, webhook_secret=SECRET).start()
    try:
        assert requests.get(f"{again.url}/_emulator/health", timeout=5).json() == {"ok": True}
    finally:
        again.stop()


def test_a_port_in_use_is_an_error_at_start(server: EmulatorServer) -> None:
    with pytest.raises(OSError):
        EmulatorServer(port=server.port, webhook_secret=SECRET).start()


def test_threads_are_set_on_the_command_line() -> None:
    assert parse_args([]).threads == 16
    assert parse_args(["--threads", "4"]).threads == 4
    with pytest.raises(ValueError):
        EmulatorServer(threads=0)
