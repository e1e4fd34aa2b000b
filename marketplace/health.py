"""Health and metrics for operators and load balancers.

- `GET /healthz` (API.md): database and Redis reachable → `{db: "ok", redis: "ok"}`, else 503
  naming the part that is down.
- `GET /readyz`: the same checks, for a load balancer's readiness probe (take the node out of
  rotation while its database or Redis is away).
- `GET /livez`: the process answers (a liveness probe; it checks nothing else, so a database
  outage does not get every node restarted).
- `GET /metrics`: Prometheus text format (marketplace.metrics plus gauges read from the database
  at scrape time). Open to requests from this machine only, unless `METRICS_TOKEN` is set: then
  only with `Authorization: Bearer <METRICS_TOKEN>`, from anywhere.
- `system_status()`: what the admin health page shows (marketplace.admin.outbox_pages).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from marketplace.db import db
from marketplace.errors import NotFound
from marketplace.jobs import get_redis

bp = Blueprint("health", __name__)


def _checks() -> dict[str, str]:
    parts: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        parts["db"] = "ok"
    except Exception:
        db.session.rollback()
        parts["db"] = "down"
    try:
        get_redis().ping()
        parts["redis"] = "ok"
    except Exception:
        parts["redis"] = "down"
    finally:
        db.session.rollback()  # end the read snapshot
    return parts


def _answer(parts: dict[str, str]) -> Any:
    healthy = all(state == "ok" for state in parts.values())
    return jsonify(parts), 200 if healthy else 503


@bp.get("/healthz")
def healthz() -> Any:
    return _answer(_checks())


@bp.get("/readyz")
def readyz() -> Any:
    return _answer(_checks())


@bp.get("/livez")
def livez() -> Any:
    return jsonify({"status": "ok"})


def _metrics_allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
def metrics_page() -> Any:
    if not _metrics_allowed():
        raise NotFound()  # say nothing about what is here
    body = generate_latest(_process_registry()) + generate_latest(_database_registry())
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _process_registry() -> Any:
    """This process's metrics, or every worker's in prometheus_client's multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _database_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_OutboxCollector())
    return registry


class _OutboxCollector:
    """Gauges read at scrape time: the same answer from every web node."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from marketplace.jobs import outbox

        backlog = outbox.backlog()
        db.session.rollback()
        pending = GaugeMetricFamily(
            "marketplace_outbox_pending", "Outbox rows not run yet (the side-effect backlog)."
        )
        pending.add_metric([], backlog.pending)
        yield pending
        oldest = GaugeMetricFamily(
            "marketplace_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row not run yet (0 when there is none).",
        )
        oldest.add_metric([], backlog.oldest_age_seconds)
        yield oldest
        dead = GaugeMetricFamily(
            "marketplace_outbox_dead_letters", "Outbox rows out of attempts, waiting for an admin."
        )
        dead.add_metric([], backlog.dead)
        yield dead

    def describe(self) -> list[Any]:
        return []


# --- the admin's health page -------------------------------------------------------------------


@dataclass(frozen=True)
class SystemStatus:
    """What the admin health page shows (GET /admin/health)."""

    db: str
    redis: str
    queues: dict[str, int]  # queued jobs by queue; -1 when Redis is away
    failed_jobs: int  # in RQ's failed registries; -1 when Redis is away
    outbox: Any  # marketplace.jobs.outbox.Backlog
    last_webhook_type: str | None
    last_webhook_at: datetime | None
    stripe_reachable: bool


def system_status() -> SystemStatus:
    """Queues, failed jobs, the outbox backlog and dead letters, the last webhook, Stripe."""
    from rq.registry import FailedJobRegistry

    from marketplace.jobs import QUEUE_NAMES, get_queue, outbox
    from marketplace.payments import services as payments

    parts = _checks()
    queues: dict[str, int] = {}
    failed = 0
    try:
        for name in QUEUE_NAMES:
            queue = get_queue(name)
            queues[name] = queue.count
            failed += FailedJobRegistry(queue=queue).count
    except Exception:
        queues, failed = dict.fromkeys(QUEUE_NAMES, -1), -1
    backlog = outbox.backlog()
    last = payments.last_webhook()
    last_type, last_at = (last.type, last.received_at) if last is not None else (None, None)
    db.session.rollback()
    return SystemStatus(
        db=parts["db"],
        redis=parts["redis"],
        queues=queues,
        failed_jobs=failed,
        outbox=backlog,
        last_webhook_type=last_type,
        last_webhook_at=last_at,
        stripe_reachable=payments.stripe_reachable(),
    )
