"""A consumer group's progress as the broker sees it: partition counts, end and committed offsets.

Read with an admin client (committed offsets, partitions named explicitly: Tansu answers group
offsets only for named ones) and a group-less consumer (end offsets), as the lag probe does.
Tansu reports a partition's end as the base offset of its last record batch + 1, which is short
of the truth when that batch holds several records; `ends` therefore reads the record at
end - 1 whenever a reported end changes and takes the end of the batch it comes in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.platform.broker import security_kwargs
from services.platform.settings import KafkaSettings

_FETCH_WAIT_S = 2.0
"""How long to wait for the record at a reported end - 1 before trusting the reported end."""


class GroupProgress:
    """Offsets of one consumer group on a fixed set of topics; reconnects after a failure."""

    def __init__(self, kafka: KafkaSettings, group: str, topics: Sequence[str]) -> None:
        self.kafka = kafka
        self.group = group
        self.topics = sorted(topics)
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._counts: dict[str, int] = {}
        self._verified: dict[TopicPartition, tuple[int, int]] = {}
        """partition -> (reported end, true end) of the last check."""

    async def partition_counts(self) -> dict[str, int]:
        """Each topic's partition count from the broker's metadata (read once)."""
        if not self._counts:
            admin, _ = await self._clients()
            described = await admin.describe_topics(self.topics)
            counts = {e["topic"]: len(e["partitions"]) for e in described if e["error_code"] == 0}
            missing = set(self.topics) - set(counts)
            if missing:
                raise RuntimeError(f"topics not described by the broker: {sorted(missing)}")
            self._counts = counts
        return dict(self._counts)

    async def ends(self) -> dict[TopicPartition, int]:
        """End offset of every partition: the offset the next record will get."""
        _, reader = await self._clients()
        reported: dict[TopicPartition, int] = await reader.end_offsets(await self._partitions())
        stale = {
            tp: end
            for tp, end in reported.items()
            if end > 0 and self._verified.get(tp, (-1, 0))[0] != end
        }
        if stale:
            found = await _batch_ends(reader, stale)
            self._verified.update(
                {tp: (end, max(end, found.get(tp, 0))) for tp, end in stale.items()}
            )
        return {tp: self._verified[tp][1] if end > 0 else 0 for tp, end in reported.items()}

    async def committed(self) -> dict[TopicPartition, int | None]:
        """The group's committed offset per partition (None where it never committed)."""
        admin, _ = await self._clients()
        partitions = await self._partitions()
        answer = await admin.list_consumer_group_offsets(self.group, partitions=partitions)
        return {tp: _offset(answer.get(tp)) for tp in partitions}

    async def _partitions(self) -> list[TopicPartition]:
        counts = await self.partition_counts()
        return [TopicPartition(t, p) for t in self.topics for p in range(counts[t])]

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._reader is None:
            await self.close()
            name = f"{self.kafka.client_id}-progress"
            self._admin, self._reader = await open_offset_clients(self.kafka, name)
        return self._admin, self._reader

    async def close(self) -> None:
        """Close both clients (the next call opens new ones)."""
        admin, reader, self._admin, self._reader = self._admin, self._reader, None, None
        if reader is not None:
            await reader.stop()
        if admin is not None:
            await admin.close()


async def _batch_ends(
    reader: AIOKafkaConsumer, reported: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """1 + the last offset fetched from each reported end - 1 (a partition without any: absent).

    On Kafka that is the reported end itself; on Tansu the fetch returns the whole last batch.
    A partition whose fetch stays empty (e.g. its last offset is a transaction marker) keeps its
    reported end, which Kafka reports exactly.
    """
    reader.assign(list(reported))
    for tp, end in reported.items():
        reader.seek(tp, end - 1)
    found: dict[TopicPartition, int] = {}
    loop = asyncio.get_running_loop()
    give_up = loop.time() + _FETCH_WAIT_S
    while len(found) < len(reported) and loop.time() < give_up:
        batches = await reader.getmany(*reported, timeout_ms=200)
        for tp, records in batches.items():
            if records:
                found[tp] = max(found.get(tp, 0), records[-1].offset + 1)
    reader.assign([])
    return found


def _offset(entry: Any) -> int | None:
    return None if entry is None else int(entry.offset)


async def open_offset_clients(
    kafka: KafkaSettings, name: str
) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
    """A started admin client (group offsets) and group-less consumer (end offsets).

    Nothing is left open when either fails to start.
    """
    options = _client_options(kafka)
    admin = AIOKafkaAdminClient(client_id=name, **options)
    try:
        await admin.start()
        # Created only now: a consumer that was never started cannot be closed cleanly.
        reader = AIOKafkaConsumer(client_id=name, enable_auto_commit=False, **options)
        try:
            await reader.start()
        except BaseException:
            await reader.stop()
            raise
    except BaseException:
        await admin.close()
        raise
    return admin, reader


def _client_options(kafka: KafkaSettings) -> dict[str, Any]:
    return {
        "bootstrap_servers": kafka.bootstrap_servers,
        "request_timeout_ms": 5000,
        **security_kwargs(kafka),
    }
