"""Gauge probes the platform can compute: outbox backlog per schema and consumer-group lag."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.outbox import backlog, outbox_table
from services.platform.progress import open_offset_clients
from services.platform.settings import KafkaSettings
from services.platform.telemetry.metrics import Metrics


class OutboxProbe:
    """Due unsent rows of each schema's outbox and the age of the oldest (what the relay owes)."""

    def __init__(self, engine: AsyncEngine, schemas: Sequence[str]) -> None:
        metadata = MetaData()
        self.engine = engine
        self.tables = {schema: outbox_table(metadata, schema) for schema in schemas}

    async def __call__(self, metrics: Metrics) -> None:
        """One query per schema, on one connection."""
        async with self.engine.connect() as conn:
            for schema, table in self.tables.items():
                due, oldest_age_s = await backlog(conn, table)
                metrics.outbox_backlog.labels(schema).set(due)
                metrics.outbox_oldest_age.labels(schema).set(oldest_age_s)

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the caller."""


class ConsumerLagProbe:
    """End offset minus committed offset of each consumer group, per topic.

    Asks the broker (as any lag exporter would), so it also works in a process that consumes
    nothing. Partitions are listed explicitly: Tansu answers group offsets only for named ones.
    """

    def __init__(
        self, kafka: KafkaSettings, groups: Mapping[str, tuple[str, Sequence[str]]]
    ) -> None:
        """groups: service name -> (consumer group id, topics it consumes)."""
        self.kafka = kafka
        self.groups = groups
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def __call__(self, metrics: Metrics) -> None:
        """Refresh the lag gauges of every group."""
        admin, offsets = await self._clients()
        partitions = await self._topic_partitions(admin)
        every = [tp for tps in partitions.values() for tp in tps]
        ends = await offsets.end_offsets(every)
        starts = await offsets.beginning_offsets(every)
        for service, (group, topics) in self.groups.items():
            mine = [tp for topic in topics for tp in partitions.get(topic, [])]
            committed = await admin.list_consumer_group_offsets(group, partitions=mine)
            for topic in topics:
                lag = 0
                for tp in partitions.get(topic, []):
                    done = _offset(committed.get(tp))
                    lag += max(0, ends[tp] - (starts[tp] if done < 0 else done))
                metrics.consumer_lag.labels(service, topic).set(lag)

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            await self.close()
            name = f"{self.kafka.client_id}-lag"
            self._admin, self._offsets = await open_offset_clients(self.kafka, name)
        return self._admin, self._offsets

    async def _topic_partitions(
        self, admin: AIOKafkaAdminClient
    ) -> dict[str, list[TopicPartition]]:
        if not self._partitions:
            topics = sorted({t for _, topics in self.groups.values() for t in topics})
            described = await admin.describe_topics(topics)
            self._partitions = {
                entry["topic"]: [
                    TopicPartition(entry["topic"], p["partition"]) for p in entry["partitions"]
                ]
                for entry in described
                if entry["error_code"] == 0
            }
        return self._partitions

    async def close(self) -> None:
        """Close the admin client and the offsets consumer."""
        admin, offsets, self._admin, self._offsets = self._admin, self._offsets, None, None
        if offsets is not None:
            await offsets.stop()
        if admin is not None:
            await admin.close()


def _offset(entry: Any) -> int:
    return -1 if entry is None else int(entry.offset)
