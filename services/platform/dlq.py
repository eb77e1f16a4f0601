"""Dead letters: list them from the `checkout.dead_letter` topic, filter, replay to their origin.

Reads the topic, not the services' outbox rows: the topic is what every consumer wrote and the
documented interface, it outlives the outbox's purge of sent rows, and an operator needs only
Kafka access. Imports no service and not the saga.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from contracts import DEAD_LETTER_TOPIC, MessageHeaders
from services.platform.broker import producer_kwargs, security_kwargs
from services.platform.consumer import Delivery, dead_letter
from services.platform.settings import KafkaSettings

log = logging.getLogger("checkout_saga.dlq")

DLQ_HEADER_PREFIX = "dlq_"
_MAX_IDLE_POLLS = 10
_SETTLE_POLLS = 4
"""Empty polls in a row that end a read whose broker under-reported its end offsets."""
NO_KEY = "unknown"
"""The key a dead letter gets when its original had none; replayed without a key."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic: the original bytes, its headers and the dlq_* ones."""

    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, str]

    def _header(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def error(self) -> str:
        """Why the consumer rejected it."""
        return self._header(MessageHeaders.ERROR)

    @property
    def original_topic(self) -> str:
        """Where it was published first (and where a replay sends it)."""
        return self._header(MessageHeaders.ORIGINAL_TOPIC)

    @property
    def rejected_by(self) -> str:
        """The service whose consumer rejected it."""
        return self._header(MessageHeaders.REJECTED_BY)

    @property
    def message_id(self) -> str | None:
        """The original message's id header, when it had one (a malformed message may not)."""
        return self.headers.get(MessageHeaders.MESSAGE_ID)

    @property
    def letter_id(self) -> uuid.UUID:
        """The dead letter's own id, derived from the original record's position."""
        origin = Delivery(
            value=self.value,
            topic=self.original_topic,
            partition=int(self._header(MessageHeaders.ORIGINAL_PARTITION) or -1),
            offset=int(self._header(MessageHeaders.ORIGINAL_OFFSET) or -1),
            key=None,
            headers={},
        )
        return dead_letter(origin, "", 0, self.rejected_by).message_id

    def original_headers(self) -> dict[str, str]:
        """The headers the original carried: everything but the dlq_* ones."""
        return {k: v for k, v in self.headers.items() if not k.startswith(DLQ_HEADER_PREFIX)}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (the value is not included: it may be large or binary)."""
        return {
            "letter_id": str(self.letter_id),
            "message_id": self.message_id,
            "message_type": self.headers.get(MessageHeaders.MESSAGE_TYPE),
            "key": self.key,
            "error": self.error,
            "original_topic": self.original_topic,
            "original_partition": self._header(MessageHeaders.ORIGINAL_PARTITION),
            "original_offset": self._header(MessageHeaders.ORIGINAL_OFFSET),
            "attempts": self._header(MessageHeaders.ATTEMPTS),
            "rejected_by": self.rejected_by,
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
            "bytes": len(self.value),
        }


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters to list or replay; every given criterion must hold."""

    topic: str | None = None
    service: str | None = None
    error: str | None = None
    message_id: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """True when the letter passes every given criterion."""
        ids = {letter.message_id, str(letter.letter_id)}
        return (
            (self.topic is None or letter.original_topic == self.topic)
            and (self.service is None or letter.rejected_by == self.service)
            and (self.error is None or self.error.lower() in letter.error.lower())
            and (self.message_id is None or self.message_id in ids)
        )


async def read_dead_letters(
    kafka: KafkaSettings, where: DeadLetterFilter | None = None
) -> list[DeadLetter]:
    """Every dead letter on the topic now, oldest first per partition, each once, filtered."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,  # no group: reads every partition, commits nothing, joins nothing
        enable_auto_commit=False,
        **security_kwargs(kafka),
    )
    try:
        # A start that fails (no broker) still leaves a client behind: stop it in any case.
        await consumer.start()
        letters = await _read_topic(consumer)
    finally:
        await consumer.stop()
    return [letter for letter in _unique(letters) if where is None or where.matches(letter)]


async def _read_topic(consumer: AIOKafkaConsumer) -> list[DeadLetter]:
    partitions = consumer.partitions_for_topic(DEAD_LETTER_TOPIC)
    if not partitions:
        await consumer._client.force_metadata_update()  # no public metadata refresh
        partitions = consumer.partitions_for_topic(DEAD_LETTER_TOPIC) or set()
    parts = [TopicPartition(DEAD_LETTER_TOPIC, p) for p in sorted(partitions)]
    return [_letter(record) for record in await read_from_beginning(consumer, parts)]


async def read_from_beginning(
    consumer: AIOKafkaConsumer, parts: Sequence[TopicPartition]
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of these partitions now, oldest first per partition (a group-less consumer).

    Reaching the end offsets ends the read only if no partition went past its end: Tansu reports
    a partition's end as the last batch's base offset + 1, and then (having read past it) this
    reads on until several polls in a row come back empty. A position that never reaches the
    ends (a gap the broker will not serve) must not hang it either.
    """
    if not parts:
        return []
    consumer.assign(list(parts))
    await consumer.seek_to_beginning(*parts)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(list(parts))
    records: list[ConsumerRecord[bytes, bytes]] = []
    idle_polls = 0
    while idle_polls < _MAX_IDLE_POLLS:
        batches = await consumer.getmany(timeout_ms=500)
        for batch in batches.values():
            records += batch
        idle_polls = 0 if batches else idle_polls + 1
        if idle_polls and await _read_to_the_end(consumer, ends, idle_polls):
            return records
    log.warning("read stopped short of the end offsets %s", ends)
    return records


async def _read_to_the_end(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], idle_polls: int
) -> bool:
    positions = {tp: await consumer.position(tp) for tp in ends}
    if any(positions[tp] < end for tp, end in ends.items()):
        return False
    overshot = any(positions[tp] > end for tp, end in ends.items())
    return not overshot or idle_polls >= _SETTLE_POLLS


def _letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key else None,
        value=record.value or b"",
        headers={k: v.decode(errors="replace") for k, v in record.headers},
    )


def _unique(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """A relay that crashed after publishing re-publishes: keep the first copy of each letter."""
    seen: set[uuid.UUID] = set()
    unique = []
    for letter in letters:
        if letter.letter_id not in seen:
            seen.add(letter.letter_id)
            unique.append(letter)
    return unique


async def replay(kafka: KafkaSettings, letters: Iterable[DeadLetter]) -> int:
    """Publish each letter's original bytes, key and headers to its original topic; the count."""
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    await producer.start()
    sent = 0
    try:
        for letter in letters:
            if not letter.original_topic:
                continue
            key = None if letter.key in (None, NO_KEY) else letter.key
            await producer.send_and_wait(
                letter.original_topic,
                letter.value,
                key=key.encode() if key is not None else None,
                headers=[(k, v.encode()) for k, v in letter.original_headers().items()],
            )
            sent += 1
    finally:
        await producer.stop()
    return sent
