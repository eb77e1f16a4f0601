"""The one consumer transaction shape: inbox claim -> pure step -> outbox rows -> commit -> ack."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import StrEnum

from opentelemetry.trace import Span
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import DEAD_LETTER_TOPIC, MessageHeaders
from contracts.codec import Decoded, InvalidMessageError, decode
from services.platform import inbox, outbox
from services.platform.outbox import OutboxMessage
from services.platform.settings import ConsumerSettings
from services.platform.telemetry import Telemetry, scope
from services.platform.telemetry.logs import message_context
from services.platform.telemetry.tracing import current_ids, parent_context, trace_headers

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
        self,
        engine: AsyncEngine,
        mailbox: Mailbox,
        service: str,
        settings: ConsumerSettings,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.engine = engine
        self.mailbox = mailbox
        self.service = service
        self.settings = settings
        self.outcomes: Counter[str] = Counter()
        self.telemetry = telemetry or Telemetry()

    async def process(self, delivery: Delivery, expected_type: str, handler: Handler) -> Outcome:
        """Handle one delivery; raises only transient errors that outlived the retries.

        Inside, logs carry the message's ids, a span continues the message's trace, and the
        saga's handler sees this process's metrics.
        """
        started = time.perf_counter()
        with self._observed(delivery, expected_type) as span:
            outcome = await self._process(delivery, expected_type, handler)
            span.set_attribute("checkout.outcome", outcome.value)
        self.telemetry.metrics.handling.labels(self.service, expected_type).observe(
            time.perf_counter() - started
        )
        return outcome

    @contextmanager
    def _observed(self, delivery: Delivery, message_type: str) -> Iterator[Span]:
        headers = delivery.headers
        order_id = headers.get(MessageHeaders.CORRELATION_ID) or delivery.key
        message_id = headers.get(MessageHeaders.MESSAGE_ID)
        with ExitStack() as stack:
            stack.enter_context(scope.bound(self.telemetry.metrics))
            stack.enter_context(
                message_context(
                    service=self.service,
                    message_type=message_type,
                    order_id=order_id,
                    message_id=message_id,
                    causation_id=headers.get(MessageHeaders.CAUSATION_ID),
                )
            )
            span = stack.enter_context(
                self.telemetry.tracing.consuming(
                    f"{self.service} process {message_type}",
                    parent_context(headers, order_id, message_id),
                    _span_attributes(delivery, self.service, order_id, message_id),
                )
            )
            stack.enter_context(message_context(**current_ids()))
            yield span

    async def _process(self, delivery: Delivery, expected_type: str, handler: Handler) -> Outcome:
        try:
            decoded = decode(delivery.value, expected_type)
        except InvalidMessageError as exc:
            return await self._dead_letter(delivery, str(exc), 1, expected_type)
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._apply(decoded, handler)
            except RejectedMessageError as exc:
                return await self._dead_letter(delivery, exc.reason, attempt, expected_type)
            except Exception as exc:
                if not is_transient(exc) or attempt >= self.settings.retry_attempts:
                    self._count("failed", expected_type)
                    raise
                self._count_retry(exc, expected_type)
                await asyncio.sleep(self._backoff(attempt))
                continue
            self._count(outcome, expected_type)
            return outcome

    def _count(self, outcome: str, message_type: str) -> None:
        self.outcomes[outcome] += 1
        self.telemetry.metrics.messages.labels(self.service, message_type, outcome).inc()

    def _count_retry(self, exc: Exception, message_type: str) -> None:
        self._count("retried", message_type)
        # Exactly ConflictError: a version conflict. Subclasses mean other things (e.g. the
        # saga's "not created yet", retried while the message may be overtaking its saga).
        if type(exc) is ConflictError:
            self.telemetry.metrics.conflicts.labels(self.service, message_type).inc()

    async def _apply(self, decoded: Decoded, handler: Handler) -> Outcome:
        envelope = decoded.envelope
        # Observations the handler makes count only if this transaction commits.
        with scope.transaction():
            async with self.engine.begin() as conn:
                if not await inbox.claim(
                    conn, self.mailbox.inbox, envelope.message_id, envelope.message_type
                ):
                    return Outcome.DUPLICATE
                messages = await handler(conn, decoded)
                await outbox.write(conn, self.mailbox.outbox, traced(messages), self.mailbox.lanes)
        return Outcome.APPLIED

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self.settings.retry_max_delay_s, self.settings.retry_base_delay_s * 2 ** (attempt - 1)
        )
        return random.uniform(0, ceiling)  # full jitter: retries of many consumers spread out

    async def _dead_letter(
        self, delivery: Delivery, reason: str, attempts: int, message_type: str
    ) -> Outcome:
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
        self._count(Outcome.DEAD_LETTERED, message_type)
        return Outcome.DEAD_LETTERED


def _span_attributes(
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
