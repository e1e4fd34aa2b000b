"""Command line: serve the emulator until SIGINT/SIGTERM.

python -m stripe_emulator --port 12111 --webhook-url URL --webhook-secret S
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from stripe_emulator.control import parse_enabled_events
from stripe_emulator.errors import StripeError
from stripe_emulator.server import DEFAULT_THREADS, EmulatorServer
from stripe_emulator.webhooks import DEFAULT_CONCURRENCY


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_emulator",
        description="Offline Stripe API emulator (Stripe wire format, test mode only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=12111, help="port (12111; 0 = any free)")
    parser.add_argument(
        "--webhook-url",
        default=os.environ.get("STRIPE_WEBHOOK_URL") or None,
        help="where to POST signed events (default: $STRIPE_WEBHOOK_URL; none = no delivery)",
    )
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET") or None,
        help="whsec_... signing secret (default: $STRIPE_WEBHOOK_SECRET, else a random one)",
    )
    parser.add_argument(
        "--webhook-concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"deliveries in flight at once ({DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--enabled-events",
        default=os.environ.get("STRIPE_WEBHOOK_EVENTS") or "*",
        help="comma-separated event types delivered to the webhook URL, as a Stripe webhook "
        "endpoint's enabled_events (default: $STRIPE_WEBHOOK_EVENTS, else * = all)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"requests handled at once ({DEFAULT_THREADS}; idle keep-alive connections take none)",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log")
    parser.add_argument(
        "--state-file",
        default=None,
        help="journal objects to this file and reload them at the next start",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server = EmulatorServer(
        args.port,
        host=args.host,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        quiet=args.quiet,
        state_file=args.state_file,
        threads=max(1, args.threads),
    )
    server.state.dispatcher.resize(max(1, args.webhook_concurrency))
    try:
        server.state.enabled_events = parse_enabled_events(args.enabled_events)
    except StripeError as error:
        raise SystemExit(f"--enabled-events: {error}") from None
    server.start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        f"Stripe emulator on {server.url} — webhooks: {args.webhook_url or 'off'}, "
        f"secret: {server.webhook_secret}",
        file=sys.stderr,
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
