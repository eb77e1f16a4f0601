"""Orders use cases: a checkout's vendor orders created, confirmed or failed on the saga's commands.

The saga commands a checkout group (its id is the CheckoutStarted's order_id); each vendor order
announces itself under its own id, and the group's end is announced once under the group id.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import (
    CheckoutGroupCompleted,
    CheckoutStarted,
    ConfirmOrder,
    Envelope,
    Message,
    OrderFailed,
)
from contracts.codec import Decoded, encode, headers_for
from contracts.topics import TOPICS, message_class_for_type
from services.orders import repository as repo
from services.orders.domain import (
    Rejected,
    Step,
    command_of,
    created_event,
    new_orders,
    outcome_event,
    step,
)
from services.orders.tables import SCHEMA
from services.platform.consumer import Delivery, RejectedMessageError, dead_letter
from services.platform.outbox import OutboxMessage

log = logging.getLogger("checkout_saga.orders")

# Ids of the events this service derives, so that a replayed cause re-creates the same rows.
_EVENT_NAMESPACE = uuid.UUID("988ea162-e745-4eea-9e7a-f40a74059ec9")


async def create_order(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Create the checkout's vendor orders, announce each, then apply the commands parked early."""
    event = decoded.message
    assert isinstance(event, CheckoutStarted)
    await repo.lock_order_id(conn, event.order_id)
    group = new_orders(event)
    if not await repo.insert_group(conn, group):
        log.info("checkout group %s already exists; CheckoutStarted ignored", event.order_id)
        return []
    discounts = () if event.pricing is None else tuple(event.pricing.discounts)
    created = [_per_order(created_event(order, discounts), decoded.envelope) for order in group]
    return [*created, *await _apply_parked(conn, event.order_id)]


async def confirm_order(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Confirm the group's vendor orders on their accepted lines; one left with none fails."""
    return await _on_command(conn, decoded)


async def mark_order_failed(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Mark every vendor order of the group failed with the saga's reason."""
    return await _on_command(conn, decoded)


async def _on_command(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    message = decoded.message
    assert isinstance(message, ConfirmOrder | OrderFailed)
    group = await repo.lock_group(conn, message.order_id)
    if not group:
        # Look again under the creation lock: a CheckoutStarted may be committing right now.
        await repo.lock_order_id(conn, message.order_id)
        group = await repo.lock_group(conn, message.order_id)
    if not group:
        # It overtook its CheckoutStarted (another topic). Parking it keeps the partition
        # moving; the group's creation applies it in the same transaction.
        await repo.park(
            conn,
            message.order_id,
            decoded.envelope.message_id,
            message.message_type,
            decoded.envelope.payload,
        )
        log.info("%s parked until group %s exists", message.message_type, message.order_id)
        return []
    outcome = step(group, command_of(message))
    if isinstance(outcome, Rejected):
        raise RejectedMessageError(outcome.reason)
    return await _record(conn, outcome, decoded.envelope)


async def _record(conn: AsyncConnection, done: Step, cause: Envelope) -> list[OutboxMessage]:
    await repo.save_changes(conn, done.changed)
    messages = [_per_order(outcome_event(order), cause) for order in done.changed]
    if done.completed is not None:
        messages.append(_group_completed(done.completed, cause))
    return messages


def _per_order(event: Message, cause: Envelope) -> OutboxMessage:
    # outbox.reply() derives an id from (cause, type) alone: one cause announces several
    # vendor orders of one type, so the order's id is part of each event's id.
    key = f"{cause.message_id}:{event.message_type}:{event.order_id}"
    return OutboxMessage.of(
        event,
        message_id=uuid.uuid5(_EVENT_NAMESPACE, key),
        causation_id=cause.message_id,
    )


def _group_completed(event: CheckoutGroupCompleted, cause: Envelope) -> OutboxMessage:
    # From the group id alone, whatever the cause: the outbox keeps one row per group.
    key = f"{event.order_id}:{event.message_type}"
    return OutboxMessage.of(
        event,
        message_id=uuid.uuid5(_EVENT_NAMESPACE, key),
        causation_id=cause.message_id,
    )


async def _apply_parked(conn: AsyncConnection, group_id: uuid.UUID) -> list[OutboxMessage]:
    """Apply the group's parked commands in arrival order, each against the state before it."""
    messages: list[OutboxMessage] = []
    for parked in await repo.take_parked(conn, group_id):
        cls = message_class_for_type(parked.message_type)
        assert cls is ConfirmOrder or cls is OrderFailed
        command = cls.model_validate(parked.payload)
        # The original message id is the cause, so the event ids match the unparked path.
        cause = command.to_envelope(message_id=parked.message_id)
        outcome = step(await repo.lock_group(conn, group_id), command_of(command))
        if isinstance(outcome, Rejected):
            # Failing here would dead-letter the CheckoutStarted; the command goes instead.
            log.warning("parked %s rejected: %s", parked.message_type, outcome.reason)
            messages.append(_parked_dead_letter(cause, parked.id, outcome.reason))
            continue
        messages += await _record(conn, outcome, cause)
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
