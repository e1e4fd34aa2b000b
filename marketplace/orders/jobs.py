"""RQ jobs for orders: they take ids and call one service."""

from __future__ import annotations

from marketplace.orders import services


def expire_order(order_id: int) -> bool:
    return services.expire_order(order_id)


def sweep_expired_orders() -> int:
    """Periodic: expire what the scheduled jobs missed (Redis down at checkout, worker dead)."""
    count = 0
    for order_id in services.expired_unpaid_order_ids():
        count += services.expire_order(order_id)
    return count


def prune_idempotency_records() -> int:
    """Periodic (daily): drop checkout Idempotency-Keys past their retention."""
    return services.prune_idempotency_records()
