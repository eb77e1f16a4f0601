"""Handler-tier tests: each service driven through the real consumer transaction on PostgreSQL.

`ServiceDriver` sends deliveries through `Consumer.process` exactly as the batch loop
does, and reads back what the service wrote to its outbox; `through_the_runtime` goes one
step further out, through the runtime's routes by topic.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, TOPICS, Message
from contracts.codec import Decoded, decode, encode, headers_for
from services.platform.consumer import Consumer, Delivery, Handler, Outcome
from services.platform.service import ServiceSpec, Subscription
from services.platform.settings import Settings
from services.runtime import Runtime
from tests.support.builders import delivery, envelope


@dataclass(frozen=True)
class OutboxRow:
    """One row of a service's outbox, as a test inspects it."""

    message_id: uuid.UUID
    topic: str
    key: str
    payload: bytes
    headers: dict[str, Any]
    available_at: datetime
    created_at: datetime

    def decoded(self) -> Decoded:
        """The row's envelope and typed payload (not for dead letters, which keep raw bytes)."""
        return decode(self.payload)


@dataclass
class ServiceDriver:
    """One service's consumer, with its subscriptions by message type."""

    engine: AsyncEngine
    spec: ServiceSpec
    consumer: Consumer

    @classmethod
    def of(cls, engine: AsyncEngine, spec: ServiceSpec, settings: Settings) -> ServiceDriver:
        """A driver of the service described by spec."""
        return cls(engine, spec, Consumer(engine, spec.mailbox, spec.name, settings.consumer))

    def subscription(self, message_type: str) -> Subscription:
        """What the service subscribed for this message type (use case and batch hooks)."""
        for sub in self.spec.subscriptions:
            if sub.message_cls.message_type == message_type:
                return sub
        raise LookupError(f"{self.spec.name} does not consume {message_type}")

    def handler(self, message_type: str) -> Handler:
        """The use case the service subscribed for this message type."""
        return self.subscription(message_type).handler

    async def send(self, message: Message, message_id: uuid.UUID | None = None) -> Outcome:
        """Deliver a message on its own topic."""
        return await self.deliver(delivery(message, message_id), message.message_type)

    async def deliver(self, record: Delivery, expected_type: str) -> Outcome:
        """Deliver a record on the topic of expected_type, as the broker binding would."""
        sub = self.subscription(expected_type)
        return await self.consumer.process(record, expected_type, sub.handler, sub.hooks)

    async def outbox(self, key: uuid.UUID | str) -> list[OutboxRow]:
        """Every outbox row under this key (order id), in insertion order."""
        table = self.spec.mailbox.outbox
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(table).where(table.c.message_key == str(key)).order_by(table.c.id)
            )
            return [
                OutboxRow(
                    r.message_id,
                    r.topic,
                    r.message_key,
                    r.payload,
                    r.headers,
                    r.available_at,
                    r.created_at,
                )
                for r in rows
            ]

    async def sent(self, key: uuid.UUID | str) -> list[Decoded]:
        """The messages (not dead letters) written under this key, decoded, in order."""
        return [r.decoded() for r in await self.outbox(key) if r.topic != DEAD_LETTER_TOPIC]

    async def dead_letters(self, key: uuid.UUID | str) -> list[OutboxRow]:
        """The dead letters written under this key, in order."""
        return [r for r in await self.outbox(key) if r.topic == DEAD_LETTER_TOPIC]


async def through_the_runtime(settings: Settings, service: str, *messages: Message) -> Counter[str]:
    """Feed messages as one fetched batch to one service's runtime, routed by topic.

    Returns the consumer's outcome counts. The runtime is never started (no topics, no relay,
    no broker): the records go through its batch loop's routes and consumer as a fetch would.
    """
    runtime = Runtime(settings, [service], relay=False)
    try:
        routes = runtime.routes[service]
        batch = []
        for offset, message in enumerate(messages):
            env = envelope(message)
            record = Delivery(
                value=encode(env),
                topic=TOPICS[env.message_type],
                partition=0,
                offset=offset,
                key=str(env.correlation_id),
                headers=headers_for(env),
            )
            batch.append((record, routes[record.topic]))
        await runtime.consumers[service].process_batch(batch)
    finally:
        await runtime.engine.dispose()
    return runtime.consumers[service].outcomes
