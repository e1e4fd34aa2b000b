"""RQ jobs for orders: they take ids and call one service."""

from __future__ import annotations

import logging
from datetime import datetime

from marketplace.db import db
from marketplace.orders import services

log = logging.getLogger(__name__)


def expire_order(order_id: int) -> bool:
    return services.expire_order_when_due(order_id)


def sweep_expired_orders(now: datetime | None = None) -> int:
    """Periodic: expire what the scheduled jobs missed (Redis down at checkout, flushed or
    restarted since, worker dead): the database says which reservations are past their time.
    One order that fails is logged and skipped, so it cannot hold back the others."""
    count = 0
    for order_id in services.expired_unpaid_order_ids(now):
        try:
            count += services.expire_order(order_id, now=now)
        except Exception:
            db.session.rollback()
            log.exception("expiry of order %s failed; the next sweep tries again", order_id)
    return count


def prune_idempotency_records() -> int:
    """Periodic (daily): drop checkout Idempotency-Keys past their retention."""
    return services.prune_idempotency_records()
