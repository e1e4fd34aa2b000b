"""Signed, at-least-once webhook delivery from a small pool of background threads.

Events are POSTed as JSON with `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256("<t>.<body>")>`.
Like Stripe, several deliveries are in flight at once (`concurrency` threads, 16 by default), so
a slow or failing endpoint call does not hold back the events behind it, and events are taken
in creation order but may arrive in any order. A non-2xx answer or a connection error schedules
a retry after a short backoff (0.2 s, 0.5 s, 1 s, 2 s, ...) while later events go ahead. After
`max_attempts` the event is given up (recorded in the delivery log). Each delivery thread keeps
its connection to the endpoint alive from one event to the next (a `requests.Session` each).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import requests

DEFAULT_BACKOFF: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 5.0)
# Deliveries in flight at once. Stripe sends concurrently too. 16, as many as the web tier's
# threads (2 gunicorn workers × 8): with 8, confirmations queued here behind each other under
# load (webhook → paid p50 2.5 s in bench/run.py; 185 ms with 16, no better with 32 or 64,
# docs/performance.md).
DEFAULT_CONCURRENCY = 16
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign_payload(payload: str | bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for `payload` (what `construct_event` verifies)."""
    t = int(time.time()) if timestamp is None else timestamp
    body = payload.encode() if isinstance(payload, str) else payload
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class DeliveryAttempt:
    """One POST of one event (the delivery log, for tests and debugging)."""

    event_id: str
    event_type: str
    attempt: int
    url: str
    status: int | None
    error: str | None
    delivered: bool
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WebhookDispatcher:
    """A FIFO of event ids plus a retry heap, drained by a pool of `concurrency` daemon threads."""

    def __init__(
        self,
        load_event: Callable[[str], dict[str, Any] | None],
        on_delivered: Callable[[str], None] | None = None,
        *,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        max_attempts: int = 10,
        timeout: float = 5.0,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.url: str | None = None
        self.secret: str = ""
        self.backoff = tuple(backoff)
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.concurrency = concurrency
        self._load_event = load_event
        self._on_delivered = on_delivered
        self._cond = threading.Condition()
        self._ready: deque[tuple[str, int]] = deque()
        self._retries: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self.log: deque[DeliveryAttempt] = deque(maxlen=2000)
        # Each delivery thread's own HTTP session: its connection to the endpoint is kept alive
        # from one event to the next instead of a new one per POST.
        self._local = threading.local()

    # -- queue ---------------------------------------------------------------------------------

    def enqueue(self, event_id: str) -> None:
        """Schedule delivery of an event (no-op while no URL is configured)."""
        with self._cond:
            if not self.url or self._stopped:
                return
            self._ready.append((event_id, 1))
            self._ensure_threads()
            self._cond.notify_all()

    def resize(self, concurrency: int) -> None:
        """Deliver up to `concurrency` events at once from now on (extra threads finish first)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        with self._cond:
            self.concurrency = concurrency
            if self._ready or self._retries:
                self._ensure_threads()
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Events queued, waiting for a retry, or being posted right now."""
        with self._cond:
            return len(self._ready) + len(self._retries) + self._in_flight

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending; True if the queue drained within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._ready or self._retries or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def clear(self) -> None:
        """Drop everything not yet delivered."""
        with self._cond:
            self._ready.clear()
            self._retries.clear()
            self._cond.notify_all()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the delivery threads (pending deliveries are dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    # -- worker --------------------------------------------------------------------------------

    def _ensure_threads(self) -> None:
        """Start threads up to `concurrency` (called under the lock; they live until `close`)."""
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.concurrency:
            thread = threading.Thread(
                target=self._run,
                name=f"stripe-emulator-webhooks-{len(self._threads) + 1}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _next(self) -> tuple[str, int] | None:
        with self._cond:
            while not self._stopped:
                if len(self._threads) > self.concurrency:  # the pool was made smaller
                    me = threading.current_thread()
                    if me in self._threads:
                        self._threads.remove(me)
                        return None
                now = time.monotonic()
                while self._retries and self._retries[0][0] <= now:
                    _, _, event_id, attempt = heapq.heappop(self._retries)
                    self._ready.append((event_id, attempt))
                if self._ready:
                    self._in_flight += 1
                    return self._ready.popleft()
                wait = self._retries[0][0] - now if self._retries else None
                self._cond.wait(wait)
            return None

    def _session(self) -> requests.Session:
        """This thread's session (made on first use; closed when the thread ends)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # No proxies (nor .netrc) from the environment: deliveries go straight to the
            # configured URL (usually loopback).
            session.trust_env = False
            self._local.session = session
        return session

    def _run(self) -> None:
        try:
            self._deliver_until_stopped()
        finally:
            session = getattr(self._local, "session", None)
            if session is not None:
                self._local.session = None
                session.close()

    def _deliver_until_stopped(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            event_id, attempt = item
            ok = False
            try:
                ok = self._deliver(event_id, attempt)
            except Exception as exc:  # never let the thread die
                self._record(event_id, "?", attempt, None, repr(exc), False)
            with self._cond:
                self._in_flight -= 1
                if not ok and attempt < self.max_attempts and not self._stopped:
                    delay = self.backoff[min(attempt - 1, len(self.backoff) - 1)]
                    heapq.heappush(
                        self._retries,
                        (time.monotonic() + delay, next(self._seq), event_id, attempt + 1),
                    )
                self._cond.notify_all()

    def _deliver(self, event_id: str, attempt: int) -> bool:
        """POST one event; True when delivered (2xx) or when it can never be delivered."""
        url = self.url
        event = self._load_event(event_id)
        if event is None or not url:
            return True  # deleted meanwhile, or delivery switched off: nothing to retry
        body = json.dumps(event, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign_payload(body, self.secret),
        }
        status: int | None = None
        error: str | None = None
        try:
            # The answer is read whole (not streamed): the connection goes back for the next.
            # Like Stripe, a redirect is not followed: it is a failed attempt.
            response = self._session().post(
                url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (OSError, ValueError) as exc:  # requests' errors are OSErrors
            error = repr(exc)
        delivered = status is not None and 200 <= status < 300
        self._record(event_id, str(event.get("type")), attempt, status, error, delivered, url)
        if delivered and self._on_delivered is not None:
            self._on_delivered(event_id)
        return delivered

    def _record(
        self,
        event_id: str,
        event_type: str,
        attempt: int,
        status: int | None,
        error: str | None,
        delivered: bool,
        url: str | None = None,
    ) -> None:
        with self._cond:
            self.log.append(
                DeliveryAttempt(
                    event_id=event_id,
                    event_type=event_type,
                    attempt=attempt,
                    url=url or self.url or "",
                    status=status,
                    error=error,
                    delivered=delivered,
                    at=time.time(),
                )
            )

    def attempts(self) -> list[dict[str, Any]]:
        """The delivery log, oldest first."""
        with self._cond:
            return [a.to_dict() for a in self.log]
