"""RQ jobs behind the notification outbox rows: they take ids and call one service."""

from __future__ import annotations

from marketplace.notifications import services


def order_paid(order_id: int) -> None:
    services.order_paid(order_id)


def vendor_order_shipped(vendor_order_id: int) -> None:
    services.vendor_order_shipped(vendor_order_id)


def vendor_order_delivered(vendor_order_id: int) -> None:
    services.vendor_order_delivered(vendor_order_id)


def vendor_order_cancelled(vendor_order_id: int) -> None:
    services.vendor_order_cancelled(vendor_order_id)


def refund_issued(refund_id: int) -> None:
    services.refund_issued(refund_id)


def reservation_expired(order_id: int) -> None:
    services.reservation_expired(order_id)


def payment_failed(order_id: int) -> None:
    services.payment_failed(order_id)


def payment_voided(order_id: int) -> None:
    services.payment_voided(order_id)


def low_stock(variant_id: int) -> None:
    services.low_stock(variant_id)


def return_requested(return_id: int) -> None:
    services.return_requested(return_id)


def return_decided(return_id: int) -> None:
    services.return_decided(return_id)


def payment_lapsed(order_id: int) -> None:
    services.payment_lapsed(order_id)


def capture_refused(order_id: int) -> None:
    services.capture_refused(order_id)


def void_refused(order_id: int) -> None:
    services.void_refused(order_id)


def reversal_refused(refund_id: int) -> None:
    services.reversal_refused(refund_id)


def refund_refused(refund_id: int) -> None:
    services.refund_refused(refund_id)


def dispute_opened(dispute_id: int) -> None:
    services.dispute_opened(dispute_id)


def dispute_closed(dispute_id: int) -> None:
    services.dispute_closed(dispute_id)


def refunded_outside(order_id: int, refunded_cents: int) -> None:
    services.refunded_outside(order_id, refunded_cents)


def transfer_refused(transfer_id: int) -> None:
    services.transfer_refused(transfer_id)


def dispute_return_refused(recovery_id: int) -> None:
    services.dispute_return_refused(recovery_id)


def password_reset(reset_id: int) -> None:
    services.password_reset(reset_id)


def email_verification(user_id: int, nonce: str) -> None:
    services.email_verification(user_id, nonce)


def password_changed(user_id: int, nonce: str) -> None:
    services.password_changed(user_id, nonce)
