"""RQ jobs for payouts: they take ids and call one service."""

from __future__ import annotations

from marketplace.payouts import refunds, transfers


def transfer_vendor_order(vendor_order_id: int) -> None:
    transfers.transfer_vendor_order(vendor_order_id)


def execute_refund(refund_id: int) -> None:
    refunds.execute_refund(refund_id)
