"""The batch consumer's pure parts: slots keep each partition whole and in order; batches flatten."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast

from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.codec import Decoded
from services.inventory import tables
from services.platform.batch_loop import _FetchPace
from services.platform.consumer import Consumer, Delivery, Mailbox, Route
from services.platform.items import Item
from services.platform.offsets import OffsetCommitter, first_offsets, next_offsets
from services.platform.outbox import OutboxMessage
from services.platform.settings import ConsumerSettings, KafkaSettings


async def _never(conn: AsyncConnection, decoded: Decoded) -> Sequence[OutboxMessage]:
    raise AssertionError("slot assignment runs no handler")


ROUTE = Route("ReserveStockForOrder", _never)


def _consumer(parallel: int) -> Consumer:
    """A consumer that is never run: slot assignment needs no database."""
    mailbox = Mailbox(tables.SCHEMA, tables.outbox, tables.inbox, lanes=1)
    return Consumer(
        cast(AsyncEngine, None),
        mailbox,
        "inventory",
        ConsumerSettings(parallel=parallel, parallel_min_records=1),
    )


def _items(partitions: Sequence[int]) -> list[Item]:
    """One record per entry, on that partition, offsets rising per partition in batch order."""
    seen: dict[int, int] = {}
    items = []
    for p in partitions:
        seen[p] = seen.get(p, -1) + 1
        record = Delivery(b"", "topic", p, seen[p], key=None, headers={})
        items.append(Item(record, ROUTE))
    return items


def _position(item: Item) -> tuple[int, int]:
    return item.delivery.partition, item.delivery.offset


def test_partitions_go_to_slots_by_partition_number() -> None:
    items = _items([0, 1, 2, 3, 0, 5, 2, 1, 4, 0])

    slots = _consumer(parallel=2)._slots(items)

    # Which slot comes first does not matter; what each holds, in which order, does.
    assert sorted([_position(i) for i in slot] for slot in slots) == [
        [(0, 0), (2, 0), (0, 1), (2, 1), (4, 0), (0, 2)],
        [(1, 0), (3, 0), (5, 0), (1, 1)],
    ]


def test_a_batch_below_the_split_size_is_one_transaction_in_order() -> None:
    mailbox = Mailbox(tables.SCHEMA, tables.outbox, tables.inbox, lanes=1)
    settings = ConsumerSettings(parallel=4, parallel_min_records=5)
    consumer = Consumer(cast(AsyncEngine, None), mailbox, "inventory", settings)
    few, many = _items([0, 1, 2, 3]), _items([0, 1, 2, 3, 0])

    assert consumer._slots(few) == [few]
    assert len(consumer._slots(many)) == 4


def test_one_slot_keeps_the_whole_batch_in_order() -> None:
    items = _items([3, 1, 3, 0, 1])

    assert _consumer(parallel=1)._slots(items) == [items]


@given(
    partitions=st.lists(st.integers(min_value=0, max_value=11), max_size=60),
    parallel=st.integers(min_value=1, max_value=8),
)
def test_each_partition_stays_whole_and_in_order_in_one_slot(
    partitions: list[int], parallel: int
) -> None:
    items = _items(partitions)

    slots = _consumer(parallel)._slots(items)

    # Every record exactly once, none invented.
    assert sorted(id(i) for slot in slots for i in slot) == sorted(id(i) for i in items)
    assert all(slots)
    assert len(slots) <= parallel
    for slot in slots:
        # A slot is one residue class, in batch order.
        assert len({i.delivery.partition % parallel for i in slot}) == 1
        assert [items.index(i) for i in slot] == sorted(items.index(i) for i in slot)
    for p in set(partitions):
        holding = [s for s in slots if any(i.delivery.partition == p for i in s)]
        assert len(holding) == 1
        assert [i.delivery.offset for i in holding[0] if i.delivery.partition == p] == list(
            range(partitions.count(p))
        )


def _record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"v",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=1,
        headers=[],
    )


def test_offsets_to_commit_are_one_past_the_last_record_per_partition() -> None:
    batch = [_record(0, 4), _record(1, 9), _record(0, 5), _record(0, 6)]

    assert next_offsets(batch) == {TopicPartition("t", 0): 7, TopicPartition("t", 1): 10}


def test_a_rewound_batch_starts_again_at_each_partitions_first_record() -> None:
    batch = [_record(0, 4), _record(1, 9), _record(0, 5), _record(1, 10)]

    assert first_offsets(batch) == {TopicPartition("t", 0): 4, TopicPartition("t", 1): 9}


class _SlowCoordinator:
    """Records every commit; the first one waits until released, as a busy broker would."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.release = asyncio.Event()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        if len(self.commits) == 1:
            await self.release.wait()


async def test_commits_made_while_one_is_in_flight_go_together_in_order() -> None:
    coordinator = _SlowCoordinator()
    committer = OffsetCommitter("unit")
    p0, p1 = TopicPartition("t", 0), TopicPartition("t", 1)

    committer.commit(coordinator, {p0: 3})
    await asyncio.sleep(0)  # the first commit is now on its way and waits
    committer.commit(coordinator, {p0: 5, p1: 2})
    committer.commit(coordinator, {p0: 4, p1: 8})
    coordinator.release.set()
    await committer.flush()

    # Never backwards: the merged commit keeps the highest offset asked for per partition.
    assert coordinator.commits == [{p0: 3}, {p0: 5, p1: 8}]


async def test_a_failed_commit_is_dropped_and_later_ones_still_go() -> None:
    class Failing:
        def __init__(self) -> None:
            self.calls = 0

        async def commit(self, offsets: dict[TopicPartition, int]) -> None:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("rebalancing")

    coordinator = Failing()
    committer = OffsetCommitter("unit")
    committer.commit(coordinator, {TopicPartition("t", 0): 1})
    await committer.flush()
    committer.commit(coordinator, {TopicPartition("t", 0): 2})
    await committer.flush()

    assert coordinator.calls == 2


class _Fetcher:
    def __init__(self) -> None:
        self._fetch_max_wait_ms = 25


class _Client:
    def __init__(self) -> None:
        self._fetcher = _Fetcher()


def test_the_fetch_wait_lengthens_after_a_quiet_spell_and_shortens_on_the_next_record() -> None:
    kafka = KafkaSettings(fetch_max_wait_ms=25, idle_fetch_max_wait_ms=400, idle_after_s=0.05)
    pace, client = _FetchPace(kafka), _Client()

    pace.saw(client, 3)
    pace.saw(client, 0)
    assert client._fetcher._fetch_max_wait_ms == 25  # not quiet for long yet

    time.sleep(0.06)
    pace.saw(client, 0)
    assert (pace.idle, client._fetcher._fetch_max_wait_ms) == (True, 400)

    pace.saw(client, 1)
    assert (pace.idle, client._fetcher._fetch_max_wait_ms) == (False, 25)
