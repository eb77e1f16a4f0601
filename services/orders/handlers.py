"""Orders use cases: create an order from a checkout, confirm or fail it on the saga's commands."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import (
    CheckoutStarted,
    ConfirmOrder,
    Envelope,
    OrderConfirmed,
    OrderCreated,
    OrderFailed,
    OrderMarkedFailed,
)
from contracts.codec import Decoded, encode, headers_for
from contracts.topics import TOPICS, message_class_for_type
from services.orders import repository as repo
from services.orders.domain import (
    Change,
    OrderStatus,
    Rejected,
    Unchanged,
    command_of,
    decide,
    new_order,
)
from services.orders.tables import SCHEMA
from services.platform.consumer import Delivery, RejectedMessageError, dead_letter
from services.platform.outbox import OutboxMessage, reply

log = logging.getLogger("checkout_saga.orders")


async def create_order(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Create the order, announce it, then apply the commands that arrived before it."""
    event = decoded.message
    assert isinstance(event, CheckoutStarted)
    await repo.lock_order_id(conn, event.order_id)
    order = new_order(event)
    if not await repo.insert_order(conn, order):
        log.info("order %s already exists; CheckoutStarted ignored", event.order_id)
        return []
    created = OrderCreated(
        order_id=event.order_id,
        buyer_id=event.buyer_id,
        currency=event.currency,
        total=order.total,
        items=event.items,
    )
    return [reply(created, decoded.envelope), *await _apply_parked(conn, event.order_id)]


async def confirm_order(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Mark the order confirmed with its payment; confirming it again changes nothing."""
    return await _on_command(conn, decoded)


async def mark_order_failed(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Mark the order failed with the saga's reason; failing it again changes nothing."""
    return await _on_command(conn, decoded)


async def _on_command(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    message = decoded.message
    assert isinstance(message, ConfirmOrder | OrderFailed)
    order = await repo.lock_order(conn, message.order_id)
    if order is None:
        # Look again under the creation lock: a CheckoutStarted may be committing right now.
        await repo.lock_order_id(conn, message.order_id)
        order = await repo.lock_order(conn, message.order_id)
    if order is None:
        # It overtook its CheckoutStarted (another topic). Parking it keeps the partition
        # moving; the order's creation applies it in the same transaction.
        await repo.park(
            conn,
            message.order_id,
            decoded.envelope.message_id,
            message.message_type,
            decoded.envelope.payload,
        )
        log.info("%s parked until order %s exists", message.message_type, message.order_id)
        return []
    outcome = decide(order, command_of(message))
    if isinstance(outcome, Rejected):
        raise RejectedMessageError(outcome.reason)
    return await _record(conn, order.order_id, outcome, decoded.envelope)


async def _record(
    conn: AsyncConnection, order_id: uuid.UUID, outcome: Change | Unchanged, cause: Envelope
) -> list[OutboxMessage]:
    if isinstance(outcome, Unchanged):
        return []
    await repo.apply_change(conn, order_id, outcome)
    if outcome.status is OrderStatus.CONFIRMED:
        assert outcome.payment_id is not None
        event: OrderConfirmed | OrderMarkedFailed = OrderConfirmed(
            order_id=order_id, payment_id=outcome.payment_id
        )
    else:
        assert outcome.failure_reason is not None
        event = OrderMarkedFailed(order_id=order_id, reason=outcome.failure_reason)
    return [reply(event, cause)]


async def _apply_parked(conn: AsyncConnection, order_id: uuid.UUID) -> list[OutboxMessage]:
    """Apply the order's parked commands in arrival order, each against the state before it."""
    messages: list[OutboxMessage] = []
    for parked in await repo.take_parked(conn, order_id):
        cls = message_class_for_type(parked.message_type)
        assert cls is ConfirmOrder or cls is OrderFailed
        command = cls.model_validate(parked.payload)
        # The original message id is the cause, so the event ids match the unparked path.
        cause = command.to_envelope(message_id=parked.message_id)
        order = await repo.lock_order(conn, order_id)
        assert order is not None
        outcome = decide(order, command_of(command))
        if isinstance(outcome, Rejected):
            # Failing here would dead-letter the CheckoutStarted; the command goes instead.
            log.warning("parked %s rejected: %s", parked.message_type, outcome.reason)
            messages.append(_parked_dead_letter(cause, parked.id, outcome.reason))
            continue
        messages += await _record(conn, order_id, outcome, cause)
    return messages


def _parked_dead_letter(cause: Envelope, parked_id: int, reason: str) -> OutboxMessage:
    # Its Kafka position is gone once parked: partition -1 and the parking row id stand in.
    delivery = Delivery(
        value=encode(cause),
        topic=TOPICS[cause.message_type],
        partition=-1,
        offset=parked_id,
        key=str(cause.correlation_id),
        headers=headers_for(cause),
    )
    return dead_letter(delivery, reason, attempts=1, service=SCHEMA)
