"""The one consumer transaction shape: inbox claim -> pure step -> outbox rows -> commit -> ack."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import DEAD_LETTER_TOPIC, MessageHeaders
from contracts.codec import Decoded, InvalidMessageError, decode
from services.platform import inbox, outbox
from services.platform.outbox import OutboxMessage
from services.platform.settings import ConsumerSettings

log = logging.getLogger("checkout_saga.consumer")

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


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: lost connections, deadlocks, serialization and version conflicts."""
    if isinstance(exc, ConflictError | OperationalError | InterfaceError | OSError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        # 40001 serialization failure, 40P01 deadlock, 08xxx connection, 57P0x shutdown.
        return bool(sqlstate) and str(sqlstate).startswith(("40001", "40P01", "08", "57P"))
    return False


class Consumer:
    """Applies deliveries for one service with the exactly-once-effect transaction shape."""

    def __init__(
        self, engine: AsyncEngine, mailbox: Mailbox, service: str, settings: ConsumerSettings
    ) -> None:
        self.engine = engine
        self.mailbox = mailbox
        self.service = service
        self.settings = settings
        self.outcomes: Counter[str] = Counter()

    async def process(self, delivery: Delivery, expected_type: str, handler: Handler) -> Outcome:
        """Handle one delivery; raises only transient errors that outlived the retries."""
        try:
            decoded = decode(delivery.value, expected_type)
        except InvalidMessageError as exc:
            return await self._dead_letter(delivery, str(exc), attempts=1)
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._apply(decoded, handler)
            except RejectedMessageError as exc:
                return await self._dead_letter(delivery, exc.reason, attempts=attempt)
            except Exception as exc:
                if not is_transient(exc) or attempt >= self.settings.retry_attempts:
                    self.outcomes["failed"] += 1
                    raise
                self.outcomes["retried"] += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            self.outcomes[outcome] += 1
            return outcome

    async def _apply(self, decoded: Decoded, handler: Handler) -> Outcome:
        envelope = decoded.envelope
        async with self.engine.begin() as conn:
            if not await inbox.claim(
                conn, self.mailbox.inbox, envelope.message_id, envelope.message_type
            ):
                return Outcome.DUPLICATE
            messages = await handler(conn, decoded)
            await outbox.write(conn, self.mailbox.outbox, messages, self.mailbox.lanes)
        return Outcome.APPLIED

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self.settings.retry_max_delay_s, self.settings.retry_base_delay_s * 2 ** (attempt - 1)
        )
        return random.uniform(0, ceiling)  # full jitter: retries of many consumers spread out

    async def _dead_letter(self, delivery: Delivery, reason: str, attempts: int) -> Outcome:
        log.warning(
            "rejected message",
            extra={
                "service": self.service,
                "topic": delivery.topic,
                "partition": delivery.partition,
                "offset": delivery.offset,
                "reason": reason,
            },
        )
        letter = dead_letter(delivery, reason, attempts, self.service)
        async with self.engine.begin() as conn:
            await outbox.write(conn, self.mailbox.outbox, [letter], self.mailbox.lanes)
        self.outcomes[Outcome.DEAD_LETTERED] += 1
        return Outcome.DEAD_LETTERED


def dead_letter(delivery: Delivery, reason: str, attempts: int, service: str) -> OutboxMessage:
    """The dead letter of a delivery: original bytes and headers plus why, where and how often.

    Its id derives from the record's position, so a redelivered poison message is
    dead-lettered once, not once per delivery.
    """
    position = f"{service}:{delivery.topic}:{delivery.partition}:{delivery.offset}"
    headers = {
        **delivery.headers,
        MessageHeaders.ERROR: reason[:1000],
        MessageHeaders.ORIGINAL_TOPIC: delivery.topic,
        MessageHeaders.ORIGINAL_PARTITION: str(delivery.partition),
        MessageHeaders.ORIGINAL_OFFSET: str(delivery.offset),
        MessageHeaders.ATTEMPTS: str(attempts),
        MessageHeaders.REJECTED_BY: service,
    }
    return OutboxMessage(
        message_id=uuid.uuid5(_DEAD_LETTER_NAMESPACE, position),
        topic=DEAD_LETTER_TOPIC,
        key=delivery.key or "unknown",
        payload=delivery.value,
        headers=headers,
    )
