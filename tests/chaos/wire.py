"""What reached Kafka: every record of every topic, checked against the committed outbox rows."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, MessageHeaders
from contracts.topics import all_topics
from services.platform.consumer import Delivery, dead_letter
from services.platform.dlq import read_from_beginning
from services.platform.journal import INTERNAL_TOPIC
from services.platform.settings import Settings
from services.runtime import SERVICES, build_specs, consumer_groups
from tests.chaos.invariants import rows, violations
from tests.chaos.load import ChaosLoad
from tests.chaos.settle import until_settled

CLAIM_STALL_S = 30.0
"""The inbox check waits for the consumers while any of them still moves, at most this still."""


@dataclass
class WireReport:
    """Records read, re-sent copies, records no committed row accounts for, sent rows not read,
    records a consumer applied without its inbox keeping their id, and inbox or outbox rows
    the journal does not tell (or journal rows of claims that did not commit)."""

    records: int = 0
    redundant: int = 0
    unaccounted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unclaimed: list[str] = field(default_factory=list)
    unjournaled: list[str] = field(default_factory=list)


async def read_all(bootstrap: str) -> list[tuple[str, dict[str, str], bytes]]:
    """(topic, headers, value) of every record on every topic, from the beginning (no group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(t, p)
            for t in all_topics()
            for p in sorted(consumer.partitions_for_topic(t) or await _partitions(consumer, t))
        ]
        return [
            (r.topic, {k: v.decode() for k, v in r.headers}, r.value or b"")
            for r in await read_from_beginning(consumer, parts)
        ]
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def committed_rows(db: AsyncEngine) -> dict[uuid.UUID, tuple[bytes, bool]]:
    """message id -> (payload, marked sent) of every outbox row of every schema (committed)."""
    found: dict[uuid.UUID, tuple[bytes, bool]] = {}
    for schema in SERVICES:
        query = f"SELECT message_id, payload, sent_at IS NOT NULL AS sent FROM {schema}.outbox"
        for r in await rows(db, query):
            found[r["message_id"]] = (bytes(r["payload"]), bool(r["sent"]))
    return found


def record_id(topic: str, headers: dict[str, str], value: bytes) -> uuid.UUID | None:
    """The outbox id a record was published under (a dead letter's derives from its position)."""
    if topic != DEAD_LETTER_TOPIC:
        raw = headers.get(MessageHeaders.MESSAGE_ID)
        return uuid.UUID(raw) if raw else None
    origin = Delivery(
        value=value,
        topic=headers[MessageHeaders.ORIGINAL_TOPIC],
        partition=int(headers[MessageHeaders.ORIGINAL_PARTITION]),
        offset=int(headers[MessageHeaders.ORIGINAL_OFFSET]),
        key=None,
        headers={},
    )
    return dead_letter(origin, "", 0, headers[MessageHeaders.REJECTED_BY]).message_id


def consumed_topics() -> dict[str, list[str]]:
    """service -> the topics its consumer group reads."""
    groups = consumer_groups(build_specs(Settings(), SERVICES))
    return {service: topics for service, (_, topics) in groups.items()}


async def inboxes(db: AsyncEngine) -> dict[str, set[uuid.UUID]]:
    """service -> every message id its inbox holds."""
    found = {}
    for service in consumed_topics():
        ids = await rows(db, f"SELECT message_id FROM {service}.inbox")
        found[service] = {r["message_id"] for r in ids}
    return found


async def check_wire(
    bootstrap: str, db: AsyncEngine, published_by_test: set[uuid.UUID]
) -> WireReport:
    """Every record is the test's own or a committed outbox row, byte for byte; every row
    marked sent is on the wire (a relay that marked before Kafka had it would lose it); and
    every record is in the inbox of each service that consumes its topic."""
    committed = await committed_rows(db)
    report, seen = WireReport(), set()
    on_topic: dict[str, set[uuid.UUID]] = defaultdict(set)
    for topic, headers, value in await read_all(bootstrap):
        report.records += 1
        message_id = record_id(topic, headers, value)
        if message_id in seen:
            report.redundant += 1
        seen.add(message_id)
        if message_id is not None:
            on_topic[topic].add(message_id)
        if message_id in published_by_test:
            continue
        row = committed.get(message_id) if message_id is not None else None
        if row is None or row[0] != value:
            report.unaccounted.append(f"{topic} {message_id}: no committed outbox row like it")
    report.missing = [
        f"{message_id}: marked sent, not on the wire"
        for message_id, (_, sent) in committed.items()
        if sent and message_id not in seen
    ]

    async def unclaimed() -> list[str]:
        return _unclaimed(on_topic, await inboxes(db))

    # A consumer may still be applying the last records (the cart's order events, say).
    report.unclaimed = await until_settled(unclaimed, db, CLAIM_STALL_S)
    report.unjournaled = await unjournaled(db)
    return report


def _journal_gaps(schema: str) -> str:
    # One statement, so one snapshot: a consumer committing meanwhile commits its inbox,
    # outbox and journal rows together, and this sees all of them or none.
    applied = f"j.direction = 'in' AND j.outcome = 'applied' AND j.topic <> '{INTERNAL_TOPIC}'"
    return (
        f"SELECT 'inbox row without its applied journal row' AS gap, i.message_id "
        f"FROM {schema}.inbox i WHERE NOT EXISTS (SELECT 1 FROM {schema}.journal j "
        f"WHERE j.message_id = i.message_id AND {applied}) "
        f"UNION ALL SELECT 'outbox row without its journal out row', o.message_id "
        f"FROM {schema}.outbox o WHERE NOT EXISTS (SELECT 1 FROM {schema}.journal j "
        f"WHERE j.message_id = o.message_id AND j.direction = 'out') "
        f"UNION ALL SELECT 'applied journal row without its inbox row', j.message_id "
        f"FROM {schema}.journal j WHERE {applied} AND NOT EXISTS "
        f"(SELECT 1 FROM {schema}.inbox i WHERE i.message_id = j.message_id)"
    )


async def unjournaled(db: AsyncEngine) -> list[str]:
    """The journal tells exactly what committed: every inbox row has its 'in' row (applied),
    every outbox row its 'out' row, and no applied 'in' row lacks its inbox row."""
    problems = []
    for schema in SERVICES:
        gaps = await rows(db, _journal_gaps(schema))
        for gap, found in Counter(r["gap"] for r in gaps).items():
            example = next(r["message_id"] for r in gaps if r["gap"] == gap)
            problems.append(f"{schema}: {found} {gap}(s), e.g. {example}")
    return problems


def _unclaimed(on_topic: dict[str, set[uuid.UUID]], kept: dict[str, set[uuid.UUID]]) -> list[str]:
    """Records a service consumed but its inbox does not hold: applied again if redelivered.

    None is refused (nothing is dead-lettered), so once consumed, each must be in the inbox of
    every service reading its topic.
    """
    problems = []
    for service, topics in consumed_topics().items():
        for topic in topics:
            lost = on_topic[topic] - kept[service]
            if lost:
                problems.append(
                    f"{service}.inbox lacks {len(lost)} of the {len(on_topic[topic])} "
                    f"records of {topic}, e.g. {sorted(lost)[:2]}"
                )
    return problems


async def settled_and_accounted(
    bootstrap: str,
    db: AsyncEngine,
    load: ChaosLoad,
    published_by_test: set[uuid.UUID],
    replay: str,
) -> WireReport:
    """Invariants still hold after a quiet spell, and the wire matches the committed rows.

    `published_by_test` grows by this load's own records (later seeds on the same broker read
    them too).
    """
    await asyncio.sleep(2.0)  # quiescent: nothing more may change once the invariants hold
    problems = await violations(db, load)
    assert not problems, f"{replay}, after quiescence:\n" + "\n".join(problems[:40])
    published_by_test |= load.published
    wire = await check_wire(bootstrap, db, published_by_test)
    assert not wire.unaccounted, f"{replay}:\n" + "\n".join(wire.unaccounted[:40])
    assert not wire.missing, f"{replay}:\n" + "\n".join(wire.missing[:40])
    assert not wire.unclaimed, f"{replay}:\n" + "\n".join(wire.unclaimed[:40])
    assert not wire.unjournaled, f"{replay}:\n" + "\n".join(wire.unjournaled[:40])
    return wire
