"""The bench's Kafka side: publish CheckoutStarted, watch the orders' final events, count records.

The watcher is a group-less consumer with every partition of `order_confirmed` and
`order_marked_failed` assigned by hand and positioned at the end before the first publish; it
matches events to checkouts by record key (the order id, also the correlation id). For checkout
groups (`bench --vendors N`) it watches `checkout_group_completed` instead, keyed by the group
id, which is the order id of the CheckoutStarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import CheckoutStarted, OrderConfirmed, OrderMarkedFailed
from contracts.codec import InvalidMessageError, decode, encode, headers_for
from contracts.messages import CheckoutGroupCompleted, GroupOutcome
from contracts.topics import topic_for
from services.platform.broker import security_kwargs
from services.platform.settings import KafkaSettings

FINAL_TOPICS = (topic_for(OrderConfirmed), topic_for(OrderMarkedFailed))
GROUP_TOPICS = (topic_for(CheckoutGroupCompleted),)


@dataclass(frozen=True)
class Finish:
    """How one saga ended as the bench saw it: outcome, failure reason, latency in seconds.

    A group's saga is confirmed when any of its vendor orders is; `group` is its final event.
    """

    confirmed: bool
    reason: str | None
    latency_s: float
    group: CheckoutGroupCompleted | None = None


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Bootstrap servers and SASL/SSL options for the bench's own clients."""
    return {"bootstrap_servers": kafka.bootstrap_servers, **security_kwargs(kafka)}


async def partitions_of(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of these topics (metadata refreshed once if one is not known yet)."""
    known = {topic: consumer.partitions_for_topic(topic) for topic in topics}
    if not all(known.values()):
        await consumer._client.force_metadata_update()  # no public metadata refresh
        known = {topic: consumer.partitions_for_topic(topic) for topic in topics}
    return [TopicPartition(t, p) for t in topics for p in sorted(known[t] or ())]


class Watcher:
    """Collects the final event of each expected order; a future per order for closed loops."""

    def __init__(self, kafka: KafkaSettings, *, groups: bool = False) -> None:
        self.kafka = kafka
        self.topics = GROUP_TOPICS if groups else FINAL_TOPICS
        self._finish = group_finish if groups else order_finish
        self.consumer: AIOKafkaConsumer | None = None
        self.started_at: dict[uuid.UUID, float] = {}
        self.finished: dict[uuid.UUID, Finish] = {}
        self.last_finish_at = 0.0
        self._waiters: dict[uuid.UUID, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Assign every partition of the final topics, at their ends, and start reading."""
        self.consumer = consumer = AIOKafkaConsumer(
            enable_auto_commit=False, fetch_max_wait_ms=20, **client_options(self.kafka)
        )
        await consumer.start()
        parts = await partitions_of(consumer, self.topics)
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)  # resolves the end now, before anything is sent
        self._task = asyncio.create_task(self._read(), name="bench-watcher")

    async def stop(self) -> None:
        """Stop reading and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consumer is not None:
            await self.consumer.stop()

    def expect(self, order_id: uuid.UUID, started_at: float) -> asyncio.Future[None]:
        """Register an order whose latency counts from `started_at` (time.monotonic())."""
        self.started_at[order_id] = started_at
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[order_id] = waiter
        return waiter

    async def _read(self) -> None:
        assert self.consumer is not None
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    self._seen(record.key, record.value, now)

    def _seen(self, key: bytes | None, value: bytes | None, now: float) -> None:
        try:
            order_id = uuid.UUID((key or b"").decode())
        except ValueError:
            return
        if order_id not in self.started_at or order_id in self.finished:
            return  # another run's order, or a re-published copy
        self.finished[order_id] = self._finish(value or b"", now - self.started_at[order_id])
        self.last_finish_at = now
        waiter = self._waiters.pop(order_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_all(self, timeout_s: float) -> None:
        """Until every expected order finished, or timeout_s passed."""
        pending = [w for w in self._waiters.values() if not w.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)


def order_finish(value: bytes, latency_s: float) -> Finish:
    """The finish an order's final event states."""
    try:
        message = decode(value).message
    except InvalidMessageError:
        return Finish(False, "undecodable final event", latency_s)
    if isinstance(message, OrderMarkedFailed):
        return Finish(False, message.reason, latency_s)
    return Finish(True, None, latency_s)


def group_finish(value: bytes, latency_s: float) -> Finish:
    """The finish a checkout_group_completed states; a failed group's reason is its first order's."""
    try:
        group = decode(value, CheckoutGroupCompleted.message_type).message
    except InvalidMessageError as exc:
        return Finish(False, f"undecodable group event: {exc}", latency_s)
    assert isinstance(group, CheckoutGroupCompleted)
    if group.outcome is not GroupOutcome.FAILED:
        return Finish(True, None, latency_s, group)
    reasons = [o.failure_reason for o in group.orders if o.failure_reason]
    return Finish(False, reasons[0] if reasons else None, latency_s, group)


def new_producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    """A plain producer, as any upstream would use (idempotence as configured, off for Tansu)."""
    return AIOKafkaProducer(
        enable_idempotence=kafka.enable_idempotence,
        acks="all" if kafka.acks == "all" else int(kafka.acks),
        linger_ms=0,
        **client_options(kafka),
    )


async def publish(producer: AIOKafkaProducer, checkout: CheckoutStarted) -> asyncio.Future[Any]:
    """Queue one CheckoutStarted keyed by its order id; returns the delivery future."""
    envelope = checkout.to_envelope()
    delivery: asyncio.Future[Any] = await producer.send(
        topic_for(CheckoutStarted),
        encode(envelope),
        key=str(checkout.order_id).encode(),
        headers=[(k, v.encode()) for k, v in headers_for(envelope).items()],
    )
    return delivery


async def true_end_offsets(kafka: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    """Records ever written per topic: end offsets, corrected by reading each partition's tail.

    Tansu reports a partition's end as its last batch's base offset + 1, so the last record of
    each non-empty partition is read to find the real end (on Kafka the two agree).
    """
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(kafka))
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topics)
        consumer.assign(parts)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(parts)
        for tp, end in ends.items():
            consumer.seek(tp, max(end - 1, 0))
        await _read_tails(consumer, ends)
    finally:
        await consumer.stop()
    totals = dict.fromkeys(topics, 0)
    for tp, end in ends.items():
        totals[tp.topic] += end
    return totals


async def _read_tails(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
    """Raise each end to one past the last record read from its tail (updates `ends`)."""
    waiting = {tp for tp, end in ends.items() if end > 0}
    for _ in range(20):
        if not waiting:
            return
        batches = await consumer.getmany(timeout_ms=250)
        for tp, records in batches.items():
            if records:
                ends[tp] = max(ends[tp], records[-1].offset + 1)
                waiting.discard(tp)
