"""Outbox relay: publishes unsent rows in insertion order per lane, then marks them sent.

Several relays may run at once: a lane is served by whoever holds its advisory lock,
so every key (which lives in one lane) is published by one relay at a time, in order. One
transaction serves every lane of a schema that this relay can lock, whatever the batch holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from sqlalchemy import (
    MetaData,
    Select,
    SmallInteger,
    Table,
    TextClause,
    any_,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.platform.inbox import inbox_table
from services.platform.journal import journal_table
from services.platform.outbox import NOTIFY_CHANNEL, outbox_table
from services.platform.settings import RelaySettings

log = logging.getLogger("checkout_saga.relay")

_LISTEN_CHECK_S = 1.0
"""How often the relay checks its LISTEN connection (a local flag) and, while lost, reconnects."""


class Producer(Protocol):
    """The part of aiokafka's producer the relay uses."""

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


@dataclass
class RelayStats:
    """Counts since start, for logs, tests and benchmarks."""

    published: int = 0
    batches: int = 0
    publish_failures: int = 0
    purged: int = 0
    lanes_busy: int = 0


_LOCK_LANES = text(
    "SELECT lane FROM unnest(CAST(:lanes AS int[])) AS lane "
    "WHERE pg_try_advisory_xact_lock(:key, lane)"
)


@dataclass
class _Schema:
    name: str
    outbox: Table
    inbox: Table
    journal: Table
    lock_key: int
    due: Select[Any] = field(init=False)
    mark_sent: TextClause = field(init=False)

    def __post_init__(self) -> None:
        # Built once: the relay runs these for every batch.
        table = self.outbox
        self.due = (
            select(table.c.id, table.c.topic, table.c.message_key, table.c.payload, table.c.headers)
            .where(
                table.c.lane == any_(bindparam("lanes", type_=ARRAY(SmallInteger))),
                table.c.sent_at.is_(None),
                table.c.available_at <= func.now(),
            )
            .order_by(table.c.id)
            .limit(bindparam("limit"))
        )
        self.mark_sent = text(
            f"UPDATE {self.name}.outbox SET sent_at = clock_timestamp() WHERE id = ANY(CAST(:ids AS bigint[]))"
        )


def _lock_key(schema: str) -> int:
    # Advisory locks take two int4 keys: (schema, lane). crc32 fits after the sign shift.
    return zlib.crc32(schema.encode()) - 2**31


@dataclass
class Relay:
    """Moves committed outbox rows of the given schemas to Kafka."""

    engine: AsyncEngine
    producer: Producer
    schemas: Sequence[str]
    settings: RelaySettings
    stats: RelayStats = field(default_factory=RelayStats)
    # The engine's own driver options (TLS) for the LISTEN connection, which bypasses its pool.
    connect_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        metadata = MetaData()
        self._schemas = {
            s: _Schema(
                s,
                outbox_table(metadata, s),
                inbox_table(metadata, s),
                journal_table(metadata, s),
                _lock_key(s),
            )
            for s in self.schemas
        }
        # Each schema has its own loop, dirty lanes and wake-up: a schema's pass waiting for
        # the broker's acknowledgements does not hold back another schema's rows.
        self._dirty: dict[str, set[int]] = {s: set() for s in self._schemas}
        self._wake = {s: asyncio.Event() for s in self._schemas}
        self._listening: bool | None = None  # None until the first attempt

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until stop is set: on every notification, and every poll interval regardless."""
        # Listening before the first pass: a row committed after it still wakes the relay.
        listener = await self._listen()
        helpers = [
            asyncio.create_task(self._purge_loop(stop)),
            asyncio.create_task(self._keep_listening(listener, stop)),
            # Stop must also end the wait for a wake-up, or stopping takes a poll interval.
            asyncio.create_task(self._wake_on(stop)),
        ]
        try:
            await self._relay_until(stop)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _relay_until(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._relay_schema_until(s, stop) for s in self._schemas))

    async def _relay_schema_until(self, schema: str, stop: asyncio.Event) -> None:
        every_lane = set(range(self.settings.lanes))
        # The first pass covers every lane: rows may have been committed while no relay ran.
        self._dirty[schema] = set(every_lane)
        wake = self._wake[schema]
        while not stop.is_set():
            wake.clear()
            lanes, self._dirty[schema] = self._dirty[schema] or set(every_lane), set()
            if not await self._pass(schema, lanes):
                # Keep the lanes due and retry soon: no notification will come for rows that are
                # already committed, so waiting for one would strand them until the next poll.
                self._dirty[schema] |= lanes
                await _wait(stop, min(1.0, self.settings.poll_interval_s))
                continue
            await _wait(wake, self.settings.poll_interval_s)

    async def _pass(self, schema: str, lanes: set[int]) -> bool:
        """One relay pass over some lanes; False when it failed (already logged and counted)."""
        try:
            await self._drain_schema(schema, sorted(lanes))
        except Exception:
            self.stats.publish_failures += 1
            log.exception("relay pass over %s failed; retrying shortly", schema)
            return False
        return True

    def _wake_all(self) -> None:
        for wake in self._wake.values():
            wake.set()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake_all()

    def _all_lanes(self) -> set[tuple[str, int]]:
        return {(s, lane) for s in self._schemas for lane in range(self.settings.lanes)}

    async def drain(self) -> int:
        """Publish every due row of every lane; returns how many were published."""
        return await self._drain_lanes(self._all_lanes())

    async def _drain_lanes(self, pairs: set[tuple[str, int]]) -> int:
        by_schema: dict[str, list[int]] = {}
        for schema, lane in sorted(pairs):
            by_schema.setdefault(schema, []).append(lane)
        results = await asyncio.gather(
            *(self._drain_schema(s, lanes) for s, lanes in by_schema.items()),
            return_exceptions=True,
        )
        # Fail only once every schema has finished: a retry must not overlap a pass this relay
        # is still running (it would find the lanes locked, skip them, and lose that error).
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(r for r in results if isinstance(r, int))

    async def _drain_schema(self, schema: str, lanes: list[int]) -> int:
        """Batches over the schema's lanes until a short one: one transaction per batch."""
        total = 0
        while True:
            async with self.engine.begin() as conn:
                sent = await self._publish_batch(conn, self._schemas[schema], lanes)
            total += sent
            if sent < self.settings.batch_size:
                return total

    async def _publish_batch(self, conn: AsyncConnection, schema: _Schema, lanes: list[int]) -> int:
        """One batch over the lanes this relay can lock; lanes another relay holds are skipped.

        Four round trips whatever the batch holds: lock the lanes, read their due rows in id
        order, mark them sent (after the broker acknowledged every one), commit.
        """
        held = [
            row[0]
            for row in await conn.execute(_LOCK_LANES, {"key": schema.lock_key, "lanes": lanes})
        ]
        self.stats.lanes_busy += len(lanes) - len(held)
        if not held:
            return 0
        rows = (
            await conn.execute(schema.due, {"lanes": held, "limit": self.settings.batch_size})
        ).all()
        if not rows:
            return 0
        # Queue every send before awaiting any: aiokafka batches them per partition, in order.
        futures = [
            await self.producer.send(
                row.topic,
                value=row.payload,
                key=row.message_key.encode(),
                headers=[(k, str(v).encode()) for k, v in row.headers.items()],
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute(schema.mark_sent, {"ids": [row.id for row in rows]})
        self.stats.published += len(rows)
        self.stats.batches += 1
        return len(rows)

    async def _keep_listening(self, conn: asyncpg.Connection | None, stop: asyncio.Event) -> None:
        """Reopen the LISTEN connection whenever it is lost (a database restart, a killed backend).

        Without it the relay would fall back to polling for good, silently: every hop slower
        by up to a poll interval.
        """
        try:
            while not stop.is_set():
                if conn is None or conn.is_closed():
                    conn = await self._listen()
                    if conn is not None:
                        self._wake_all()  # notifications were missed meanwhile: one full pass
                await _wait(stop, _LISTEN_CHECK_S)
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()

    async def _listen(self) -> asyncpg.Connection | None:
        """A dedicated connection on LISTEN; None (the relay polls) while it cannot listen."""
        url = make_url(self.engine.url).set(drivername="postgresql")
        try:
            dsn = url.render_as_string(hide_password=False)
            conn = await asyncpg.connect(dsn, **self.connect_args)
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if self._listening is not False:  # once per outage, not once per attempt
                log.warning("LISTEN unavailable, polling until it is back: %r", exc)
            self._listening = False
            return None
        if self._listening is False:
            log.info("LISTEN restored")
        self._listening = True
        return conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        schema, _, lane = payload.partition(":")
        if schema in self._schemas and lane.isdigit():
            self._dirty[schema].add(int(lane))
            self._wake[schema].set()

    async def purge(self) -> int:
        """Delete sent rows, inbox ids and journal rows older than their retention; rows deleted."""
        removed = 0
        async with self.engine.begin() as conn:
            for schema in self._schemas.values():
                sent = await conn.execute(
                    delete(schema.outbox).where(
                        schema.outbox.c.sent_at
                        < func.now() - _seconds(self.settings.sent_retention_s)
                    )
                )
                seen = await conn.execute(
                    delete(schema.inbox).where(
                        schema.inbox.c.received_at
                        < func.now() - _seconds(self.settings.inbox_retention_s)
                    )
                )
                # The journal tells what the inbox kept: it goes with the same retention.
                told = await conn.execute(
                    delete(schema.journal).where(
                        schema.journal.c.recorded_at
                        < func.now() - _seconds(self.settings.inbox_retention_s)
                    )
                )
                removed += sent.rowcount + seen.rowcount + told.rowcount
        self.stats.purged += removed
        return removed

    async def _purge_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.purge()
            except Exception:
                log.exception("outbox/inbox purge failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.purge_interval_s)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for the event, at most timeout_s."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)


def _seconds(value: float) -> Any:
    return text(f"interval '{float(value)} seconds'")
