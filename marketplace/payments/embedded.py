"""The embedded mode's Stripe: the bundled emulator, started in-process when no key is set."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from flask import Flask

EMBEDDED_SECRET_KEY = "sk_test_embedded"
EMBEDDED_PUBLISHABLE_KEY = "pk_test_embedded"
EMBEDDED_WEBHOOK_SECRET = "whsec_embedded_local_only"
PREFERRED_PORT = 12111


def wanted(app: Flask) -> bool:
    """No Stripe key configured: use the offline emulator."""
    return not app.config["STRIPE_SECRET_KEY"]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def start(app: Flask, webhook_url: str | None) -> Any:
    """Start the emulator (objects kept in instance/) and point the app's Stripe settings at it."""
    from stripe_emulator import EmulatorServer

    server = EmulatorServer(
        PREFERRED_PORT if _free(PREFERRED_PORT) else 0,
        webhook_url=webhook_url,
        webhook_secret=EMBEDDED_WEBHOOK_SECRET,
        state_file=str(Path(app.instance_path) / "stripe-emulator.jsonl"),
        import_state_from=str(Path(app.instance_path) / "stripe-emulator.json"),
    ).start()
    app.config.update(
        STRIPE_SECRET_KEY=EMBEDDED_SECRET_KEY,
        STRIPE_PUBLISHABLE_KEY=EMBEDDED_PUBLISHABLE_KEY,
        STRIPE_WEBHOOK_SECRET=EMBEDDED_WEBHOOK_SECRET,
        STRIPE_API_BASE=server.url,
    )
    app.extensions.pop("stripe_client", None)
    return server
