"""Offline emulator of the Stripe API subset the marketplace uses, in Stripe's wire format.

The real `stripe` SDK talks to it unchanged (`base_addresses={"api": server.url}` or
`stripe.api_base`). Run it with `python -m stripe_emulator`, or in-process:

    from stripe_emulator import EmulatorServer
    with EmulatorServer(webhook_url=..., webhook_secret="whsec_...") as server:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": server.url})
"""

from stripe_emulator.app import create_emulator_app, get_state
from stripe_emulator.resources import TEST_CARDS
from stripe_emulator.server import EmulatorServer
from stripe_emulator.store import API_VERSION, EmulatorState
from stripe_emulator.webhooks import sign_payload

__all__ = [
    "API_VERSION",
    "TEST_CARDS",
    "EmulatorServer",
    "EmulatorState",
    "create_emulator_app",
    "get_state",
    "sign_payload",
]
