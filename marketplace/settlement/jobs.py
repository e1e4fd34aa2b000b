"""RQ jobs behind the saga's outbox rows: they take ids and call one step."""

from __future__ import annotations

from marketplace.settlement import capture, payout, recovery, refunds


def capture_order(order_id: int) -> None:
    capture.capture_order(order_id)


def void_payment(order_id: int, reason: str) -> None:
    capture.void_payment(order_id, reason)


def settle_cancellation(vendor_order_id: int) -> None:
    capture.settle_cancellation(vendor_order_id)


def capture_expiring_authorizations() -> int:
    """Periodic: capture authorizations whose deadline at Stripe is near."""
    return capture.capture_expiring_authorizations()


def transfer_vendor_order(vendor_order_id: int) -> None:
    payout.transfer_vendor_order(vendor_order_id)


def execute_refund(refund_id: int) -> None:
    refunds.execute_refund(refund_id)


def sweep_due_transfers() -> int:
    """Periodic: pay delivered parts past their hold that Redis forgot (the database decides)."""
    return payout.sweep_due_transfers()


def recover_dispute_share(recovery_id: int) -> None:
    recovery.recover_share(recovery_id)


def return_dispute_share(recovery_id: int) -> None:
    recovery.return_share(recovery_id)


def retry_refused_voids() -> int:
    """Periodic: voids Stripe refused, asked again (the hold is still on the buyer's card)."""
    return capture.retry_refused_voids()
