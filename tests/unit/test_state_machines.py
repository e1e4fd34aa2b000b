"""The Order and VendorOrder state machines: allowed moves write history, others raise 409."""

from __future__ import annotations

import pytest

from marketplace.orders.models import Order, OrderStatus, VendorOrder, VendorOrderStatus
from marketplace.orders.state import (
    ORDER_TRANSITIONS,
    VENDOR_ORDER_TRANSITIONS,
    IllegalTransition,
    transition_order,
    transition_vendor_order,
)
from marketplace.payments.models import CaptureStatus, Payment, PaymentStatus
from marketplace.payments.state import ALLOWED as PAYMENT_TRANSITIONS
from marketplace.payments.state import (
    CAPTURE_TRANSITIONS,
    IllegalCaptureMove,
    IllegalPaymentTransition,
    can_move,
    move_capture,
    move_payment,
)
from marketplace.payouts.models import RefundStatus, TransferStatus
from marketplace.payouts.state import (
    REFUND_TRANSITIONS,
    TRANSFER_TRANSITIONS,
    IllegalMove,
    move_refund,
    move_transfer,
)


@pytest.fixture
def session(app):
    from marketplace.db import db

    yield db.session
    db.session.rollback()


@pytest.mark.parametrize("start", list(OrderStatus))
def test_order_transitions_follow_the_table(session, start):
    for target in OrderStatus:
        order = Order(id=1, status=start)
        before = len(session.new)
        if target in ORDER_TRANSITIONS[start]:
            transition_order(order, target, actor="test", reason="why")
            assert order.status is target
            (row,) = list(session.new)[before:]
            assert (row.from_status, row.to_status, row.actor, row.reason) == (
                start.value,
                target.value,
                "test",
                "why",
            )
            session.expunge_all()
        else:
            with pytest.raises(IllegalTransition) as raised:
                transition_order(order, target, actor="test")
            assert raised.value.status == 409
            assert order.status is start
            assert len(session.new) == before


@pytest.mark.parametrize("start", list(VendorOrderStatus))
def test_vendor_order_transitions_follow_the_table(session, start):
    for target in VendorOrderStatus:
        vendor_order = VendorOrder(id=1, order_id=1, status=start)
        if target in VENDOR_ORDER_TRANSITIONS[start]:
            transition_vendor_order(vendor_order, target, actor="test")
            assert vendor_order.status is target
            session.expunge_all()
        else:
            with pytest.raises(IllegalTransition):
                transition_vendor_order(vendor_order, target, actor="test")
            assert vendor_order.status is start


def test_terminal_states_have_no_exit():
    assert ORDER_TRANSITIONS[OrderStatus.CANCELLED] == frozenset()
    assert ORDER_TRANSITIONS[OrderStatus.REFUNDED] == frozenset()
    assert VENDOR_ORDER_TRANSITIONS[VendorOrderStatus.CANCELLED] == frozenset()
    assert VENDOR_ORDER_TRANSITIONS[VendorOrderStatus.REFUNDED] == frozenset()


def test_every_status_has_a_row():
    assert set(ORDER_TRANSITIONS) == set(OrderStatus)
    assert set(VENDOR_ORDER_TRANSITIONS) == set(VendorOrderStatus)


# --- the payment ---------------------------------------------------------------------------


@pytest.mark.parametrize("start", list(PaymentStatus))
def test_payment_moves_follow_the_table(start):
    for target in PaymentStatus:
        payment = Payment(status=start)
        if target in PAYMENT_TRANSITIONS[start]:
            move_payment(payment, target)
            assert payment.status is target
        else:
            with pytest.raises(IllegalPaymentTransition):
                move_payment(payment, target)
            assert payment.status is start


def test_a_payment_never_moves_back_once_captured_or_canceled():
    assert PAYMENT_TRANSITIONS[PaymentStatus.CAPTURED] == frozenset()
    assert PAYMENT_TRANSITIONS[PaymentStatus.CANCELED] == frozenset()
    assert not can_move(PaymentStatus.CAPTURED, PaymentStatus.CANCELED)
    # a refused capture may go back to authorized (the hold is still there), or be canceled
    assert can_move(PaymentStatus.CAPTURING, PaymentStatus.AUTHORIZED)
    assert can_move(PaymentStatus.CAPTURING, PaymentStatus.CANCELED)


# --- the transfer and the refund -----------------------------------------------------------


def test_transfers_and_refunds_only_make_the_moves_their_tables_allow():
    for source, targets in TRANSFER_TRANSITIONS.items():
        for target in set(TransferStatus) - targets:
            with pytest.raises(IllegalMove):
                move_transfer(1, source, target)
    for source, targets in REFUND_TRANSITIONS.items():
        for target in set(RefundStatus) - targets:
            with pytest.raises(IllegalMove):
                move_refund(1, source, target)
    assert REFUND_TRANSITIONS[RefundStatus.SUCCEEDED] == frozenset()  # never undone
    assert TRANSFER_TRANSITIONS[TransferStatus.SENT] == frozenset()


# --- the capture ---------------------------------------------------------------------------


def test_a_capture_is_answered_once_and_never_moves_back():
    assert set(CAPTURE_TRANSITIONS) == set(CaptureStatus)
    assert CAPTURE_TRANSITIONS[CaptureStatus.REQUESTED] == {
        CaptureStatus.SUCCEEDED,
        CaptureStatus.FAILED,
    }
    for source, targets in CAPTURE_TRANSITIONS.items():
        for target in set(CaptureStatus) - targets:
            with pytest.raises(IllegalCaptureMove):
                move_capture(1, source, target)
    assert CAPTURE_TRANSITIONS[CaptureStatus.SUCCEEDED] == frozenset()
    assert CAPTURE_TRANSITIONS[CaptureStatus.FAILED] == frozenset()  # a new try is a new row
