"""What a consumer receives and the vocabulary of its outcomes: deliveries, errors, dead letters."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import asyncpg
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import DEAD_LETTER_TOPIC, MessageHeaders
from contracts.codec import Decoded
from services.platform.outbox import OutboxMessage
from services.platform.telemetry.tracing import trace_headers

_DEAD_LETTER_NAMESPACE = uuid.UUID("0b6a8a36-3a0e-4ad7-8f5d-54b0c2f1e0d3")


class RejectedMessageError(Exception):
    """A well-formed message this service can never apply; it is dead-lettered, not retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConflictError(Exception):
    """Someone else changed the row first; re-handle the whole message from a fresh read."""


class Outcome(StrEnum):
    """What became of one delivery."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Kafka record as a consumer sees it."""

    value: bytes
    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A service schema's outbox and inbox tables, and the lane count of its relay."""

    schema: str
    outbox: Table
    inbox: Table
    lanes: int


Handler = Callable[[AsyncConnection, Decoded], Awaitable[Sequence[OutboxMessage]]]


class BatchHooks(Protocol):
    """A handler that reads every row a batch touches at once and writes them back at once.

    The consumer calls `before_batch` with the batch's fresh records (in order) after the
    inbox claim, then the handler per record (which works on what was read, in memory), then
    `after_batch`, all in the batch's transaction.
    """

    async def before_batch(self, conn: AsyncConnection, batch: Sequence[Decoded]) -> None:
        """Read what the batch touches."""

    async def after_batch(self, conn: AsyncConnection) -> None:
        """Write back what the steps changed (a version conflict raises ConflictError)."""


_TRANSIENT_SQLSTATES = ("40001", "40P01", "08", "57P")
"""Serialization failure, deadlock, connection exceptions, operator intervention (shutdown)."""


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: lost connections, deadlocks, serialization and version conflicts."""
    if isinstance(exc, ConflictError | OperationalError | InterfaceError | OSError):
        return True
    if isinstance(exc, asyncpg.InterfaceError):  # hot-path SQL runs on asyncpg directly
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate).startswith(_TRANSIENT_SQLSTATES)
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return bool(sqlstate) and str(sqlstate).startswith(_TRANSIENT_SQLSTATES)
    if isinstance(exc.__cause__, asyncpg.PostgresError | asyncpg.InterfaceError):
        # SQLAlchemy's asyncpg adapter raises its own copy of a driver error where no
        # SQLAlchemy statement wraps it (the BEGIN that sql.driver sends): judge the original.
        return is_transient(exc.__cause__)
    return False


def worth_retrying_whole(exc: Exception) -> bool:
    # ConflictError subclasses mean "not yet" (e.g. a saga not created), which one record at a
    # time handles better: its neighbours need not wait for it.
    return is_transient(exc) and (type(exc) is ConflictError or not isinstance(exc, ConflictError))


class RetryLaterError(Exception):
    """Transient failures outlived the retries: the records go back to Kafka, uncommitted."""


@dataclass(frozen=True, slots=True)
class Route:
    """The message type a topic carries for a consumer and the use case that applies it."""

    message_type: str
    handler: Handler
    hooks: BatchHooks | None = None


def span_attributes(
    delivery: Delivery, service: str, order_id: str | None, message_id: str | None
) -> dict[str, str | int]:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": delivery.topic,
        "messaging.kafka.partition": delivery.partition,
        "messaging.kafka.offset": delivery.offset,
        "messaging.message.id": message_id or "",
        "checkout.order_id": order_id or "",
        "checkout.service": service,
    }


def traced(messages: Sequence[OutboxMessage]) -> list[OutboxMessage]:
    """The messages with the current trace context in their headers (the relay copies them)."""
    carrier = trace_headers()
    if not carrier:
        return list(messages)
    return [dataclasses.replace(m, headers={**m.headers, **carrier}) for m in messages]


def dead_letter(delivery: Delivery, reason: str, attempts: int, service: str) -> OutboxMessage:
    """The dead letter of a delivery: original bytes and headers plus why, where and how often.

    Its id derives from the record's position, so a redelivered poison message is
    dead-lettered once, not once per delivery. The original bytes are kept as they came; in the
    key and headers a NUL becomes U+FFFD, because PostgreSQL text and jsonb cannot hold one.
    """
    position = f"{service}:{delivery.topic}:{delivery.partition}:{delivery.offset}"
    headers = {
        **{_storable(k): _storable(v) for k, v in delivery.headers.items()},
        MessageHeaders.ERROR: _storable(reason[:1000]),
        MessageHeaders.ORIGINAL_TOPIC: delivery.topic,
        MessageHeaders.ORIGINAL_PARTITION: str(delivery.partition),
        MessageHeaders.ORIGINAL_OFFSET: str(delivery.offset),
        MessageHeaders.ATTEMPTS: str(attempts),
        MessageHeaders.REJECTED_BY: service,
    }
    return OutboxMessage(
        message_id=uuid.uuid5(_DEAD_LETTER_NAMESPACE, position),
        topic=DEAD_LETTER_TOPIC,
        key=_storable(delivery.key or "unknown"),
        payload=delivery.value,
        headers=headers,
    )


def _storable(text: str) -> str:
    """Text PostgreSQL can store: Kafka keys and headers may hold NUL, text and jsonb may not."""
    return text.replace("\x00", "\ufffd")
