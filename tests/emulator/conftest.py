"""Fixtures for the Stripe emulator tests: a server per test, SDK clients, a webhook receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import stripe

from stripe_emulator import EmulatorServer

from .helpers import SECRET, Emulator, Receiver


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    emulator = EmulatorServer(port=0, webhook_secret=SECRET).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def emu(server: EmulatorServer) -> Emulator:
    return Emulator(server)


@pytest.fixture
def make_client(server: EmulatorServer) -> Iterator[Callable[..., stripe.StripeClient]]:
    """Build SDK clients against the emulator (their HTTP sessions are closed afterwards)."""
    http_clients: list[stripe.RequestsClient] = []

    def make(
        key: str = "sk_test_x", *, retries: int = 2, timeout: float = 10.0
    ) -> stripe.StripeClient:
        http_client = stripe.RequestsClient(timeout=timeout)
        http_clients.append(http_client)
        return stripe.StripeClient(
            key,
            base_addresses={"api": server.url},
            max_network_retries=retries,
            http_client=http_client,
        )

    yield make
    for http_client in http_clients:
        http_client.close()


@pytest.fixture
def client(make_client: Callable[..., stripe.StripeClient]) -> stripe.StripeClient:
    return make_client()


@pytest.fixture
def receiver(server: EmulatorServer) -> Iterator[Receiver]:
    hook = Receiver()
    server.webhook_url = hook.url
    yield hook
    server.webhook_url = None
    hook.close()
