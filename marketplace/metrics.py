"""Prometheus metrics (prometheus_client): what the marketplace counts, in one place.

Domains record events through the helpers here; `GET /metrics` (marketplace.health) exposes
them together with gauges read from the database at scrape time (outbox backlog, dead
letters). Under gunicorn with several workers set `PROMETHEUS_MULTIPROC_DIR` (an empty
directory, before the processes start): every process then writes its samples there and the
scrape adds them up (prometheus_client's multiprocess mode).

Counts that belong to a transaction are recorded once it commits, so a rolled-back checkout
never shows as held stock.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

from marketplace.db import in_transaction, on_commit
from marketplace.errors import DomainError

F = TypeVar("F", bound=Callable[..., Any])

REQUEST_LATENCY = Histogram(
    "marketplace_http_request_duration_seconds",
    "Time to answer an HTTP request, by endpoint, method and status.",
    ["endpoint", "method", "status"],
)
CHECKOUTS = Counter(
    "marketplace_checkouts_total",
    "Checkouts: started, succeeded, replayed, or failed (reason: the error code).",
    ["outcome", "reason"],
)
PAYMENT_AUTHORIZATIONS = Counter(
    "marketplace_payment_authorizations_total",
    "PaymentIntents asked of Stripe (requested, unavailable) and their answers by webhook "
    "(authorized, failed).",
    ["outcome"],
)
RESERVATIONS = Counter(
    "marketplace_reservations_total",
    "Stock reservation rows created, committed (paid), released, or expired.",
    ["event"],
)
WEBHOOKS = Counter(
    "marketplace_webhooks_total",
    "Stripe webhook events received, by type and outcome.",
    ["type", "outcome"],
)
JOB_DURATION = Histogram(
    "marketplace_job_duration_seconds",
    "Time a background job took, by job.",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180),
)
JOB_FAILURES = Counter("marketplace_job_failures_total", "Background jobs that raised.", ["job"])
RATE_LIMITED = Counter(
    "marketplace_rate_limited_total", "Requests answered 429, by endpoint.", ["endpoint"]
)


def after_commit(counter: Any, amount: float = 1) -> None:
    """`counter.inc(amount)` once the surrounding transaction commits (at once outside one)."""
    if amount <= 0:
        return
    if in_transaction():
        on_commit(counter.inc, amount)
    else:
        counter.inc(amount)


def reservations(event: str, count: int) -> None:
    after_commit(RESERVATIONS.labels(event=event), count)


def track_checkout(checkout: F) -> F:
    """Count a checkout service call: started, then succeeded / replayed / failed by reason."""

    @wraps(checkout)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        CHECKOUTS.labels(outcome="started", reason="").inc()
        try:
            result = checkout(*args, **kwargs)
        except DomainError as error:
            CHECKOUTS.labels(outcome="failed", reason=error.code).inc()
            raise
        except Exception:
            CHECKOUTS.labels(outcome="failed", reason="internal_error").inc()
            raise
        outcome = "replayed" if getattr(result, "replayed", False) else "succeeded"
        CHECKOUTS.labels(outcome=outcome, reason="").inc()
        return result

    return wrapper  # type: ignore[return-value]
