"""`python -m marketplace.payments.emulator` (the documented command) still serves the emulator."""

from __future__ import annotations

import re
import subprocess
import sys

import stripe

from .helpers import http


def test_old_module_path_serves_the_moved_emulator() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "marketplace.payments.emulator", "--port", "0", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        match = re.search(r"on (http://\S+) ", banner)
        assert match, banner
        url = match.group(1)
        assert http("GET", f"{url}/_emulator/health")[0] == 200
        client = stripe.StripeClient(
            "sk_test_x",
            base_addresses={"api": url},
            http_client=stripe.RequestsClient(timeout=10),
        )
        account = client.v1.accounts.create(params={"type": "express"})
        assert account.id.startswith("acct_")
    finally:
        process.terminate()
        assert process.wait(10) == 0
        if process.stderr is not None:
            process.stderr.close()
