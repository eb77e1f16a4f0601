"""The command a saga in flight waits on an answer to, built as the row that first sent it did.

Pure: imports only contracts and saga.instance (no I/O library, no service). The rows that send
these commands, an operator's retry that re-sends them and the stuck-saga view that looks for
them in the outbox all build them here, so content and id (contracts.command_id of the sending
row) are the same each time: a consumer that already applied the command recognises it.
"""

from __future__ import annotations

from contracts import PaymentRequested, ReserveStockForOrder, command_id
from saga.instance import Outgoing, SagaData, SagaState

RESERVATION_ROW = "create_saga"
"""The one row that sends ReserveStockForOrder (saga/machine.py TABLE)."""


def reservation_message(data: SagaData) -> ReserveStockForOrder:
    """The reservation the saga asks inventory for."""
    return ReserveStockForOrder(order_id=data.order_id, items=data.items, policy=data.policy)


def payment_message(data: SagaData) -> PaymentRequested:
    """The payment the saga asks for: the order total (lowered by a partial reservation)."""
    return PaymentRequested(
        order_id=data.order_id, buyer_id=data.buyer_id, amount=data.amount, currency=data.currency
    )


def payment_row(data: SagaData) -> str:
    """The row that sent the saga's PaymentRequested."""
    if data.payment_requested_by is not None:
        return data.payment_requested_by
    # Sagas stored before the field: the three rows that request a payment differ in what
    # they record (lines rejected or not, a payment that came early or not).
    if not data.rejected:
        return "stock_reserved"
    if data.early_payment is not None:
        return "reserved_in_part_after_early_payment"
    return "stock_reserved_in_part"


def reservation_request(data: SagaData) -> Outgoing:
    """ReserveStockForOrder with the id its row gave it."""
    message = reservation_message(data)
    return Outgoing(message, command_id(data.order_id, RESERVATION_ROW, message.message_type))


def payment_request(data: SagaData) -> Outgoing:
    """PaymentRequested with the id its row gave it."""
    message = payment_message(data)
    return Outgoing(message, command_id(data.order_id, payment_row(data), message.message_type))


def awaited(state: SagaState, data: SagaData) -> Outgoing | None:
    """The command whose answer a saga in this state waits for; None for a final saga."""
    if state is SagaState.SUBMITTED:
        return reservation_request(data)
    if state is SagaState.STOCK_RESERVED:
        return payment_request(data)
    return None
