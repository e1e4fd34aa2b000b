"""RQ jobs for payments: they take ids and call one service."""

from __future__ import annotations

from marketplace.payments import services


def capture_order(order_id: int) -> None:
    services.capture_order(order_id)


def void_payment(order_id: int, reason: str) -> None:
    services.void_payment(order_id, reason)


def settle_cancellation(vendor_order_id: int) -> None:
    services.settle_cancellation(vendor_order_id)


def capture_expiring_authorizations() -> int:
    """Periodic: capture authorizations about to lapse (Stripe voids them after 7 days)."""
    return services.capture_expiring_authorizations()
