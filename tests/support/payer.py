"""A scripted payer for integration tests: answers PaymentRequested the way each test says."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import Message, PaymentCompleted, PaymentFailed, PaymentRequested
from contracts.codec import decode, encode, headers_for
from contracts.topics import topic_for


class Answer(StrEnum):
    """How the scripted payer answers one order."""

    COMPLETE = "complete"
    DECLINE = "decline"
    SILENT = "silent"


@dataclass
class ScriptedPayer:
    """Consumes PaymentRequested in its own group and answers per order (default: complete)."""

    bootstrap: str
    script: dict[uuid.UUID, Answer] = field(default_factory=dict)
    requests: dict[uuid.UUID, list[PaymentRequested]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Join the group and start answering."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, enable_idempotence=False
        )
        await self._producer.start()
        consumer = AIOKafkaConsumer(
            topic_for(PaymentRequested),
            bootstrap_servers=self.bootstrap,
            group_id=f"tests.scripted-payer.{uuid.uuid4().hex[:8]}",
            auto_offset_reset="latest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
            fetch_max_wait_ms=25,
        )
        await consumer.start()
        await _wait_assigned(consumer)
        self._task = asyncio.create_task(self._answer(consumer))

    async def __aenter__(self) -> ScriptedPayer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop answering and close clients."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def _answer(self, consumer: AIOKafkaConsumer) -> None:
        try:
            async for record in consumer:
                request = decode(record.value).message
                assert isinstance(request, PaymentRequested)
                self.requests.setdefault(request.order_id, []).append(request)
                answer = self.script.get(request.order_id, Answer.COMPLETE)
                # Like a provider that propagates W3C trace context, it answers in the trace.
                trace = {k: v.decode() for k, v in record.headers if k == "traceparent"}
                if answer is Answer.COMPLETE:
                    await self.send(completed(request), headers=trace)
                elif answer is Answer.DECLINE:
                    await self.send(
                        PaymentFailed(order_id=request.order_id, reason="card declined"),
                        headers=trace,
                    )
        finally:
            await consumer.stop()

    async def send(
        self,
        message: Message,
        message_id: uuid.UUID | None = None,
        headers: dict[str, str] | None = None,
    ) -> uuid.UUID:
        """Publish a message as the payment provider would."""
        assert self._producer is not None
        return await publish(self._producer, message, message_id, headers)


def completed(request: PaymentRequested, payment_id: uuid.UUID | None = None) -> PaymentCompleted:
    """A PaymentCompleted answering a request."""
    return PaymentCompleted(
        order_id=request.order_id,
        payment_id=payment_id or uuid.uuid4(),
        amount=request.amount,
        currency=request.currency,
    )


async def publish(
    producer: AIOKafkaProducer,
    message: Message,
    message_id: uuid.UUID | None = None,
    headers: dict[str, str] | None = None,
    occurred_at: datetime | None = None,
) -> uuid.UUID:
    """Publish a contract message on its topic, keyed by order id, as any upstream would."""
    envelope = message.to_envelope(message_id=message_id, occurred_at=occurred_at)
    await producer.send_and_wait(
        topic_for(message),
        encode(envelope),
        key=str(message.order_id).encode(),
        headers=[(k, v.encode()) for k, v in {**headers_for(envelope), **(headers or {})}.items()],
    )
    return envelope.message_id


async def _wait_assigned(consumer: AIOKafkaConsumer, timeout: float = 30) -> None:
    """Block until the group gave this consumer its partitions (Tansu joins take a moment)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not consumer.assignment():
        if loop.time() > deadline:
            raise TimeoutError("consumer got no partitions")
        await asyncio.sleep(0.05)
    # Position on the end now, so only requests made after start are answered.
    await consumer.seek_to_end()


async def eventually(
    probe: Callable[[], object], *, timeout: float = 30, interval: float = 0.1
) -> object:
    """Await `probe()` until it returns a truthy value; fail with its last value on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while loop.time() < deadline:
        result = probe()
        last = await result if asyncio.iscoroutine(result) else result
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
