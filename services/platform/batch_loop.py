"""One service's Kafka consumer: fetch a batch, apply it, commit its offsets, until stopped.

A plain aiokafka loop rather than FastStream's batch subscriber, which sleeps its batch timeout
after every empty fetch: that is either a wait added to a record arriving during the sleep or,
with a short timeout, a process waking 100 times a second to find nothing. Here `getmany`
returns as soon as records are there and otherwise blocks without cost. Offsets are committed
only after the batch's transactions committed (services.platform.offsets); a batch that must
come back is rewound to its first record per partition, and the inbox recognises what did
commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from services.platform.broker import delivery_of, group_id, security_kwargs
from services.platform.consumer import Consumer, RetryLaterError, Route
from services.platform.offsets import OffsetCommitter, first_offsets, next_offsets
from services.platform.settings import KafkaSettings

log = logging.getLogger("checkout_saga.batch_loop")

_IDLE_FETCH_MS = 1000
"""How long one `getmany` blocks when nothing comes (it returns at once when records do)."""
_AFTER_FAILURE_S = 0.5
"""Pause before fetching a rewound batch again (its records failed transiently)."""


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what was applied before partitions move to another consumer."""

    def __init__(self, committer: OffsetCommitter) -> None:
        self.committer = committer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.committer.flush()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


class _FetchPace:
    """Adaptive fetch wait: the short one while records flow, the idle one after a quiet spell.

    aiokafka reads its fetcher's wait each time it builds a fetch request; there is no public
    setter, so the private attribute is set (guarded by a test of this class).
    """

    def __init__(self, kafka: KafkaSettings) -> None:
        self.busy_ms, self.idle_ms = kafka.fetch_max_wait_ms, kafka.idle_fetch_max_wait_ms
        self.idle_after_s = kafka.idle_after_s
        self.idle = False
        self._last_record = time.monotonic()

    def saw(self, client: Any, records: int) -> None:
        now = time.monotonic()
        if records:
            self._last_record = now
            if self.idle:
                self._set(client, self.busy_ms, idle=False)
        elif not self.idle and now - self._last_record >= self.idle_after_s:
            self._set(client, self.idle_ms, idle=True)

    def _set(self, client: Any, wait_ms: int, *, idle: bool) -> None:
        fetcher = getattr(client, "_fetcher", None)
        if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
            fetcher._fetch_max_wait_ms = wait_ms
        self.idle = idle


class BatchLoop:
    """Feeds a service's Consumer from Kafka in batches, in one consumer group per service."""

    def __init__(
        self, kafka: KafkaSettings, consumer: Consumer, routes: Mapping[str, Route]
    ) -> None:
        self.kafka = kafka
        self.consumer = consumer
        self.routes = dict(routes)
        self.committer = OffsetCommitter(consumer.service)
        self._client: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.pace = _FetchPace(kafka)

    async def start(self) -> None:
        """Join the group and start consuming in the background."""
        kafka = self.kafka
        client = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id}-{self.consumer.service}",
            group_id=group_id(self.consumer.service),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            rebalance_timeout_ms=kafka.rebalance_timeout_ms,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            max_poll_records=kafka.max_poll_records,
            **security_kwargs(kafka),
        )
        client.subscribe(sorted(self.routes), listener=_FlushOnRevoke(self.committer))
        await client.start()
        self._client = client
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(client), name=f"{self.consumer.service}-fetch")

    async def stop(self) -> None:
        """Finish the batch in hand, commit its offsets, leave the group."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                # getmany returns within _IDLE_FETCH_MS; a batch in hand finishes first.
                await asyncio.wait_for(self._task, timeout=30)
            self._task = None
        await self.committer.flush()
        if self._client is not None:
            await self._client.stop()
            self._client = None

    async def _run(self, client: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            try:
                fetched = await client.getmany(
                    timeout_ms=_IDLE_FETCH_MS, max_records=self.kafka.max_poll_records
                )
            except Exception:
                log.exception("%s: fetch failed; retrying", self.consumer.service)
                await asyncio.sleep(_AFTER_FAILURE_S)
                continue
            records = [record for batch in fetched.values() for record in batch]
            self.pace.saw(client, len(records))
            if records:
                await self._apply(client, records)

    async def _apply(self, client: AIOKafkaConsumer, records: list[Any]) -> None:
        try:
            await self.consumer.process_batch(
                [(delivery_of(r), self.routes[r.topic]) for r in records]
            )
        except Exception as exc:
            for tp, offset in first_offsets(records).items():
                with contextlib.suppress(Exception):  # a partition revoked meanwhile: not ours
                    client.seek(tp, offset)
            if isinstance(exc, RetryLaterError):
                log.warning("%s: batch rewound to retry later: %s", self.consumer.service, exc)
            else:
                log.exception("%s: batch failed; rewound", self.consumer.service)
            await asyncio.sleep(_AFTER_FAILURE_S)
            return
        self.committer.commit(client, next_offsets(records))
