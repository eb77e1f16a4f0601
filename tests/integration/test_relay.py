"""The outbox relay against real PostgreSQL and a Kafka-protocol broker, in a schema of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from aiokafka.errors import KafkaTimeoutError  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import MetaData, Table, func, insert, select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.platform import outbox
from services.platform.embedded import create_topics
from services.platform.inbox import inbox_table
from services.platform.journal import journal_table
from services.platform.outbox import NOTIFY_CHANNEL, OutboxMessage, outbox_table
from services.platform.relay import Producer, Relay
from services.platform.settings import RelaySettings
from tests.support.payer import eventually
from tests.support.relays import running

pytestmark = pytest.mark.integration

LANES = 4
"""Fewer lanes than keys, so lanes are shared by keys and contended by relays."""

WAKE_BOUND_S = 10.0
"""'Promptly': far below the 30 s poll interval, far above any sane NOTIFY round trip."""

DELIVERY_TIMEOUT_S = 60.0


# --- the schema: outbox, inbox and the wake-up trigger, as the migration makes them --------------


@dataclass(frozen=True)
class Mailbox:
    """A test schema's tables."""

    schema: str
    outbox: Table
    inbox: Table
    journal: Table


def _trigger_sql(schema: str) -> list[str]:
    # Same semantics as migrations/versions/0001_initial.py: NOTIFY '<schema>:<lane>' per row.
    return [
        f"""
        CREATE FUNCTION {schema}.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{NOTIFY_CHANNEL}', TG_TABLE_SCHEMA || ':' || NEW.lane);
            RETURN NULL;
        END $$
        """,
        f"CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.notify_outbox()",
    ]


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The test's own engine (writers and assertions); relays get engines of their own."""
    created = _new_engine(database_url)
    try:
        yield created
    finally:
        await created.dispose()


def _new_engine(url: str | URL) -> AsyncEngine:
    return create_async_engine(url, pool_size=LANES + 2, isolation_level="READ COMMITTED")


@pytest.fixture(scope="module")
async def mailbox(engine: AsyncEngine) -> AsyncIterator[Mailbox]:
    """relaytest_<hex>: not a service schema, so the running stack's relays never touch it."""
    schema = f"relaytest_{secrets.token_hex(4)}"
    metadata = MetaData()
    box = Mailbox(
        schema,
        outbox_table(metadata, schema),
        inbox_table(metadata, schema),
        journal_table(metadata, schema),
    )
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.run_sync(metadata.create_all)
        for statement in _trigger_sql(schema):
            await conn.execute(text(statement))
    try:
        yield box
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
async def clean(engine: AsyncEngine, mailbox: Mailbox) -> Mailbox:
    """The mailbox emptied, so a test's relay sees only that test's rows."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"TRUNCATE {mailbox.schema}.outbox, {mailbox.schema}.inbox, {mailbox.schema}.journal"
            )
        )
    return mailbox


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    """A topic of this test alone."""
    name = f"test.relay.{uuid.uuid4().hex}"
    await create_topics(kafka_bootstrap, [name], partitions=4)
    return name


# --- Kafka clients -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    # Tansu rejects aiokafka's idempotent producer; ordering then rests on the relay alone.
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@dataclass
class Received:
    """One consumed record: what the relay wrote, and when it arrived."""

    key: str
    seq: int
    message_id: str
    at: float


@dataclass
class Reader:
    """Reads a topic from the beginning in the background, without a group (no join delay)."""

    bootstrap: str
    topic: str
    records: list[Received] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reader:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=25,
        )
        await consumer.start()
        partitions = consumer.partitions_for_topic(self.topic) or set()
        consumer.assign([TopicPartition(self.topic, p) for p in partitions])
        self._task = asyncio.create_task(self._read(consumer))
        return self

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            async for record in consumer:
                body = json.loads(record.value)
                headers = {k: v.decode() for k, v in record.headers}
                self.records.append(
                    Received(body["key"], body["seq"], headers["message_id"], time.monotonic())
                )
        finally:
            await consumer.stop()

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def ids(self) -> set[str]:
        return {r.message_id for r in self.records}

    async def wait_for(self, ids: set[str], timeout_s: float = DELIVERY_TIMEOUT_S) -> float:
        """Wait until every id arrived; returns the monotonic time the last of them did."""
        await _eventually(lambda: ids <= self.ids(), timeout_s, f"{len(ids)} ids")
        return max(r.at for r in self.records if r.message_id in ids)


async def _eventually(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


# --- writing rows and running relays -------------------------------------------------------------


def _message(topic: str, key: str, seq: int, available_at: datetime | None = None) -> OutboxMessage:
    message_id = uuid.uuid4()
    return OutboxMessage(
        message_id=message_id,
        topic=topic,
        key=key,
        payload=json.dumps({"key": key, "seq": seq}).encode(),
        headers={"message_id": str(message_id), "seq": str(seq)},
        available_at=available_at,
    )


async def _write(engine: AsyncEngine, box: Mailbox, messages: Sequence[OutboxMessage]) -> None:
    async with engine.begin() as conn:
        await outbox.write(conn, box.outbox, messages, LANES)


def _ids(messages: Sequence[OutboxMessage]) -> set[str]:
    return {str(m.message_id) for m in messages}


async def _unsent(engine: AsyncEngine, box: Mailbox) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(box.outbox.c.sent_at.is_(None))
        return int(await conn.scalar(query.select_from(box.outbox)) or 0)


def _settings(**overrides: Any) -> RelaySettings:
    return RelaySettings(lanes=LANES, **{"poll_interval_s": 0.2, **overrides})


@contextlib.asynccontextmanager
async def _relay(
    engine: AsyncEngine, producer: Producer, box: Mailbox, **overrides: Any
) -> AsyncIterator[Relay]:
    """A relay with an engine of its own, as a relay in another process would have."""
    # engine.url, not str(engine.url): the string form masks the password.
    own = _new_engine(engine.url)
    try:
        yield Relay(own, producer, [box.schema], _settings(**overrides))
    finally:
        await own.dispose()


# --- commit and rollback -------------------------------------------------------------------------


class _RolledBackError(Exception):
    """Raised inside a transaction to roll it back."""


async def _write_then_fail(
    engine: AsyncEngine, box: Mailbox, messages: Sequence[OutboxMessage]
) -> None:
    async with engine.begin() as conn:
        await outbox.write(conn, box.outbox, messages, LANES)
        raise _RolledBackError


async def test_committed_rows_are_published_and_marked_sent_rolled_back_never(
    engine: AsyncEngine, clean: Mailbox, topic: str, kafka_bootstrap: str
) -> None:
    committed = [_message(topic, "k-commit", seq) for seq in range(3)]
    rolled_back = [_message(topic, "k-rollback", seq) for seq in range(3)]
    async with (
        _producer(kafka_bootstrap) as producer,
        Reader(kafka_bootstrap, topic) as reader,
        _relay(engine, producer, clean) as relay,
        running(relay),
    ):
        await _write(engine, clean, committed)
        with pytest.raises(_RolledBackError):
            await _write_then_fail(engine, clean, rolled_back)
        await reader.wait_for(_ids(committed))
        # A few more relay passes: the rolled-back rows must still not show up.
        await asyncio.sleep(1.0)

    assert reader.ids() == _ids(committed)
    assert [r.seq for r in reader.records] == [0, 1, 2]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(clean.outbox.c.message_id, clean.outbox.c.sent_at))).all()
    assert {str(r.message_id) for r in rows} == _ids(committed)
    assert all(r.sent_at is not None for r in rows)


# --- order per key with three relays -------------------------------------------------------------

KEYS = 10
MESSAGES = 300


async def _write_interleaved(engine: AsyncEngine, box: Mailbox, topic: str) -> list[OutboxMessage]:
    """MESSAGES rows round-robin over KEYS keys, in small transactions of random size."""
    rng = random.Random(20261122)
    keys = [f"order-{i}-{uuid.uuid4().hex[:6]}" for i in range(KEYS)]
    messages = [_message(topic, keys[n % KEYS], n // KEYS) for n in range(MESSAGES)]
    start = 0
    while start < len(messages):
        size = rng.randint(1, 6)
        await _write(engine, box, messages[start : start + size])
        start += size
        # Let the relays interleave with the writer instead of finding one big backlog.
        await asyncio.sleep(rng.choice((0, 0, 0.005)))
    return messages


def _order_report(records: Sequence[Received]) -> tuple[dict[str, list[int]], int]:
    """Sequence numbers per key in arrival order, and how many records were duplicates."""
    per_key: dict[str, list[int]] = {}
    seen: set[str] = set()
    duplicates = 0
    for record in records:
        if record.message_id in seen:
            duplicates += 1
        seen.add(record.message_id)
        per_key.setdefault(record.key, []).append(record.seq)
    return per_key, duplicates


def _first_occurrences(seqs: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(seqs))


async def test_three_relays_keep_every_keys_order(
    engine: AsyncEngine, clean: Mailbox, topic: str, kafka_bootstrap: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        reader = await stack.enter_async_context(Reader(kafka_bootstrap, topic))
        relays: list[Relay] = []
        for _ in range(3):
            producer = await stack.enter_async_context(_producer(kafka_bootstrap))
            # Small batches: many lock hand-overs between relays within one lane.
            relay = await stack.enter_async_context(_relay(engine, producer, clean, batch_size=7))
            relays.append(relay)
        for relay in relays:
            await stack.enter_async_context(running(relay))
        messages = await _write_interleaved(engine, clean, topic)
        await reader.wait_for(_ids(messages))
        await asyncio.sleep(0.5)  # late duplicates, if any, would land now

    per_key, duplicates = _order_report(reader.records)
    assert reader.ids() == _ids(messages)
    for key, seqs in per_key.items():
        assert _first_occurrences(seqs) == list(range(MESSAGES // KEYS)), f"{key}: {seqs}"
    published = [r.stats.published for r in relays]
    assert duplicates == 0, f"{duplicates} duplicate records; published per relay {published}"
    assert sum(published) == MESSAGES
    assert await _unsent(engine, clean) == 0
    print(f"\n[relay] published per relay {published}, busy {[r.stats.lanes_busy for r in relays]}")


# --- prompt wake-up ------------------------------------------------------------------------------


async def test_a_commit_wakes_a_waiting_relay_long_before_its_poll(
    engine: AsyncEngine, clean: Mailbox, topic: str, kafka_bootstrap: str
) -> None:
    async with (
        _producer(kafka_bootstrap) as producer,
        Reader(kafka_bootstrap, topic) as reader,
        _relay(engine, producer, clean, poll_interval_s=30) as relay,
        running(relay),
    ):
        # The first row proves the relay is up and listening (it may also go by the first drain).
        warm_up = [_message(topic, "k-warm", 0)]
        await _write(engine, clean, warm_up)
        await reader.wait_for(_ids(warm_up), timeout_s=WAKE_BOUND_S)
        latencies = []
        for seq in range(1, 6):
            row = [_message(topic, f"k-wake-{seq}", seq)]
            await _write(engine, clean, row)
            committed = time.monotonic()
            arrived = await reader.wait_for(_ids(row), timeout_s=WAKE_BOUND_S)
            latencies.append(arrived - committed)

    assert max(latencies) < WAKE_BOUND_S
    print(f"\n[relay] wake-up latency s: {', '.join(f'{x:.3f}' for x in latencies)}")


async def _listening_pids(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as conn:
        query = text(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        return set((await conn.scalars(query)).all())


async def test_a_relay_listens_again_after_its_listen_connection_dies(
    engine: AsyncEngine, clean: Mailbox, topic: str, kafka_bootstrap: str
) -> None:
    others = await _listening_pids(engine)  # e.g. the running stack's relay
    async with (
        _producer(kafka_bootstrap) as producer,
        Reader(kafka_bootstrap, topic) as reader,
        _relay(engine, producer, clean, poll_interval_s=30) as relay,
        running(relay),
    ):
        [ours] = await eventually(lambda: _new_pids(engine, others), timeout=WAKE_BOUND_S)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": ours})
        # The killed backend may linger in pg_stat_activity for a moment: wait for another one.
        [again] = await eventually(lambda: _new_pids(engine, others | {ours}), timeout=WAKE_BOUND_S)
        assert again != ours
        # Listening again, a commit wakes the relay long before its 30 s poll.
        row = [_message(topic, "k-relisten", 0)]
        await _write(engine, clean, row)
        await reader.wait_for(_ids(row), timeout_s=WAKE_BOUND_S)


async def _new_pids(engine: AsyncEngine, others: set[int]) -> list[int]:
    return sorted(await _listening_pids(engine) - others)


# --- delayed rows --------------------------------------------------------------------------------

DELAY_S = 3.0


async def test_a_delayed_row_waits_until_it_is_due(
    engine: AsyncEngine, clean: Mailbox, topic: str, kafka_bootstrap: str
) -> None:
    async with (
        _producer(kafka_bootstrap) as producer,
        Reader(kafka_bootstrap, topic) as reader,
        _relay(engine, producer, clean) as relay,
        running(relay),
    ):
        due = datetime.now(UTC) + timedelta(seconds=DELAY_S)
        due_mono = time.monotonic() + DELAY_S
        now_row = _message(topic, "k-delay", 0)
        later_row = _message(topic, "k-delay", 1, available_at=due)
        await _write(engine, clean, [now_row, later_row])

        await reader.wait_for(_ids([now_row]))
        # Several passes while the delayed row is not due: it must stay unsent.
        await asyncio.sleep(max(0.0, due_mono - 1.0 - time.monotonic()))
        assert str(later_row.message_id) not in reader.ids()
        assert await _unsent(engine, clean) == 1

        arrived = await reader.wait_for(_ids([later_row]))

    assert arrived >= due_mono - 0.05  # monotonic vs the database clock: allow a little skew
    assert await _unsent(engine, clean) == 0


# --- purge ---------------------------------------------------------------------------------------


async def _age(engine: AsyncEngine, table: Table, column: str, ids: Sequence[uuid.UUID]) -> None:
    """Move a timestamp two weeks back: older than any retention of these tests."""
    async with engine.begin() as conn:
        await conn.execute(
            update(table)
            .where(table.c.message_id.in_(ids))
            .values({column: func.now() - text("interval '14 days'")})
        )


async def _remaining(engine: AsyncEngine, table: Table) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        return set(await conn.scalars(select(table.c.message_id)))


async def test_purge_removes_old_sent_rows_and_old_inbox_ids_only(
    engine: AsyncEngine, clean: Mailbox
) -> None:
    old_sent, new_sent, old_unsent, new_unsent = (_message("t", "k", n) for n in range(4))
    await _write(engine, clean, [old_sent, new_sent, old_unsent, new_unsent])
    async with engine.begin() as conn:
        await conn.execute(
            update(clean.outbox)
            .where(clean.outbox.c.message_id.in_([old_sent.message_id, new_sent.message_id]))
            .values(sent_at=func.now())
        )
        old_seen, new_seen = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            insert(clean.inbox),
            [{"message_id": i, "message_type": "T"} for i in (old_seen, new_seen)],
        )
    await _age(engine, clean.outbox, "sent_at", [old_sent.message_id])
    # An unsent row is never purged, however old: it has not been delivered yet.
    await _age(engine, clean.outbox, "created_at", [old_unsent.message_id])
    await _age(engine, clean.outbox, "available_at", [old_unsent.message_id])
    await _age(engine, clean.inbox, "received_at", [old_seen])

    settings = _settings(sent_retention_s=3600, inbox_retention_s=7 * 24 * 3600)
    relay = Relay(engine, _NeverProducer(), [clean.schema], settings)
    assert await relay.purge() == 2

    remaining = await _remaining(engine, clean.outbox)
    assert remaining == {new_sent.message_id, old_unsent.message_id, new_unsent.message_id}
    assert await _remaining(engine, clean.inbox) == {new_seen}
    assert relay.stats.purged == 2


async def test_purge_removes_journal_rows_older_than_the_inbox_retention_only(
    engine: AsyncEngine, clean: Mailbox
) -> None:
    old, new = _message("t", "k", 0), _message("t", "k", 1)
    await _write(engine, clean, [old, new])  # one 'out' row each, never sent
    await _age(engine, clean.journal, "recorded_at", [old.message_id])

    settings = _settings(sent_retention_s=3600, inbox_retention_s=7 * 24 * 3600)
    relay = Relay(engine, _NeverProducer(), [clean.schema], settings)
    assert await relay.purge() == 1

    assert await _remaining(engine, clean.journal) == {new.message_id}
    # The outbox rows are untouched: unsent, they are owed to Kafka whatever the journal says.
    assert await _remaining(engine, clean.outbox) == {old.message_id, new.message_id}


# --- broker failures -----------------------------------------------------------------------------


class _NeverProducer:
    """A producer for relays that must not publish."""

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        raise AssertionError("nothing should be published here")


@dataclass
class _FailingOnce:
    """The real producer, except that its first send raises like a broker timeout."""

    inner: Producer
    failures: int = 0

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        if self.failures == 0:
            self.failures += 1
            raise KafkaTimeoutError("injected: broker did not answer")
        return await self.inner.send(topic, value=value, key=key, headers=headers)


async def test_a_failed_pass_leaves_rows_unsent_and_the_next_pass_publishes_them(
    engine: AsyncEngine, clean: Mailbox, topic: str, kafka_bootstrap: str
) -> None:
    rows = [_message(topic, "k-fail", seq) for seq in range(3)]
    await _write(engine, clean, rows)
    async with _producer(kafka_bootstrap) as real, Reader(kafka_bootstrap, topic) as reader:
        producer = _FailingOnce(real)
        relay = Relay(engine, producer, [clean.schema], _settings())
        with pytest.raises(KafkaTimeoutError):
            await relay.drain()
        assert await _unsent(engine, clean) == 3

        assert await relay.drain() == 3
        await reader.wait_for(_ids(rows))
    assert await _unsent(engine, clean) == 0
    assert [r.seq for r in reader.records] == [0, 1, 2]


@pytest.mark.parametrize("when", ["at start", "on a wake-up"])
async def test_a_running_relay_survives_a_failed_send_and_retries_soon(
    engine: AsyncEngine, clean: Mailbox, topic: str, kafka_bootstrap: str, when: str
) -> None:
    rows = [_message(topic, "k-retry", seq) for seq in range(3)]
    if when == "at start":
        await _write(engine, clean, rows)
    async with _producer(kafka_bootstrap) as real, Reader(kafka_bootstrap, topic) as reader:
        producer = _FailingOnce(real)
        # A 30 s poll: only a prompt retry, not the next poll, can publish within the bound.
        async with (
            _relay(engine, producer, clean, poll_interval_s=30) as relay,
            running(relay) as task,
        ):
            if when == "on a wake-up":
                await asyncio.sleep(0.5)  # the first (empty) drain is over; the relay waits
                await _write(engine, clean, rows)
            await reader.wait_for(_ids(rows), timeout_s=WAKE_BOUND_S)
            assert not task.done(), "the relay stopped after a failed send"

    assert producer.failures == 1
    assert relay.stats.publish_failures == 1
    assert [r.seq for r in reader.records] == [0, 1, 2]
    assert await _unsent(engine, clean) == 0
