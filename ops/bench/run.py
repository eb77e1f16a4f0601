"""One bench run: prepare, baseline, spawn, drive, settle, read the counters, report.

Order matters: the raw commit baseline runs before the services start (nothing else runs),
every counter's "before" is read just before the first send, CPU's "after" once every saga is
final and the outboxes are drained, and the database counters after the services stopped
(PostgreSQL flushes a backend's statistics when its connection closes).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutStarted
from contracts.topics import all_topics
from ops.bench import counters
from ops.bench.driver import (
    Drive,
    closed_loop,
    delivery_failures,
    open_loop,
    open_loop_offsets,
)
from ops.bench.fleet import code_root
from ops.bench.group_report import tally_groups
from ops.bench.groups import SHORT_STOCK, GroupOptions, bench_checkouts, short_skus
from ops.bench.history import final_sagas, seed_history
from ops.bench.probes import Probes, find_groups
from ops.bench.report import Measured, tally
from ops.bench.settle import wait_quiet
from ops.bench.stack import Payer, Stack
from ops.bench.stats import Outcomes
from ops.bench.wire import Watcher, new_producer, true_end_offsets
from ops.loadgen import commit_rate
from services.platform.db import create_engine
from services.platform.topics import ensure_topics

READY_TIMEOUT_S = 180.0
DRAIN_TIMEOUT_S = 60.0
STATS_SETTLE_S = 11.0
"""A running stack's idle backends publish their statistics within 10 s (PostgreSQL 15+)."""


@dataclass(frozen=True)
class BenchOptions:
    """What the user asked for; rate and duration set make it an open loop."""

    orders: int = 1000
    concurrency: int = 100
    rate: float | None = None
    duration_s: float | None = None
    seed: int = 1
    processes: int = 1
    payer: Payer = field(default_factory=Payer)
    timeout_s: float = 600.0
    skus: int = 20
    stock: int = 1_000_000
    baseline_s: float = 2.0
    history: int = 0
    """Finished checkouts seeded into the database before the services start (owned stack)."""
    groups: GroupOptions = field(default_factory=GroupOptions)
    """Vendors per checkout and their policy; one vendor (the default) is the plain bench."""

    def __post_init__(self) -> None:
        misuse = self.groups.misuse(self.skus)
        if misuse is not None:
            raise ValueError(misuse)

    @property
    def open_loop(self) -> bool:
        """True when sends follow a Poisson schedule instead of a fixed number in flight."""
        return self.rate is not None and self.duration_s is not None

    def described(self) -> dict[str, object]:
        """The options as the report states them."""
        loop: dict[str, object] = (
            {"rate": self.rate, "duration_s": self.duration_s, "arrivals": "poisson"}
            if self.open_loop
            else {"orders": self.orders, "concurrency": self.concurrency}
        )
        payer = {**vars(self.payer), "payment_timeout_s": self.payer.timeout_s()}
        catalog = {"skus": self.skus, "stock_per_sku": self.stock}
        # Stated only when asked for, so a plain run's report reads as it always did.
        groups = {"groups": self.groups.described()} if self.groups.enabled else {}
        return {
            **loop,
            "seed": self.seed,
            "processes": self.processes,
            "payer": payer,
            **catalog,
            "history": self.history,
            **groups,
        }


class BenchRun:
    """One measured run against a prepared stack (servers up; the fleet, if any, not started)."""

    def __init__(self, stack: Stack, options: BenchOptions, log: Callable[[str], None]) -> None:
        self.stack = stack
        self.options = options
        self.log = log
        self.skus = counters.bench_skus(options.skus)
        grouped = options.groups.enabled
        self.short_skus = short_skus(options.groups.vendors) if grouped else []
        self.engine: AsyncEngine = create_engine(stack.settings, pool_size=4)
        self.watcher = Watcher(stack.settings.kafka, groups=grouped)
        self.driven: dict[uuid.UUID, CheckoutStarted] = {}
        self.outcomes = Outcomes(driven=0)
        self.raw_commits_per_s = 0.0
        self.history: dict[str, object] | None = None

    async def run(self) -> Measured:
        """Prepare, drive, count; stops the fleet (if owned) and releases the engine."""
        try:
            await self._prepare()
            probes = Probes(find_groups(self.stack, await self._backend_pid()))
            self.stack.notes.extend(probes.notes)
            return await self._measure(probes)
        finally:
            if self.stack.fleet is not None:
                self.stack.fleet.stop_all()
            await self.engine.dispose()

    async def _prepare(self) -> None:
        await ensure_topics(self.stack.settings.kafka, all_topics())
        await counters.seed_bench_catalog(self.engine, self.skus, self.options.stock)
        if self.short_skus:
            await counters.seed_bench_catalog(self.engine, self.short_skus, SHORT_STOCK)
        if self.options.history:
            self.log(f"seeding {self.options.history} finished checkouts of history")
            lanes = self.stack.settings.relay.lanes
            self.history = await seed_history(self.engine, self.options.history, self.skus, lanes)
            self.log(f"history seeded in {self.history['seeding_s']} s")
        self.log(f"raw commit baseline ({self.options.baseline_s:g} s, nothing else running)")
        self.raw_commits_per_s = await commit_rate(self.engine, seconds=self.options.baseline_s)
        fleet = self.stack.fleet
        if fleet is not None:
            self.log(f"starting {len(fleet.commands)} service processes, logs in {fleet.log_dir}")
            self.log(f"services code: {code_root()} (the bench's and the processes')")
            await asyncio.to_thread(fleet.start_all, READY_TIMEOUT_S)

    async def _backend_pid(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(text("SELECT pg_backend_pid()")) or 0)

    async def _measure(self, probes: Probes) -> Measured:
        records_before = await true_end_offsets(self.stack.settings.kafka, all_topics())
        stock_before = await counters.stock_totals(self.engine, self.skus + self.short_skus)
        short_held_before = await self._short_held()
        db_before = await counters.db_counters(self.engine)
        await self.watcher.start()
        try:
            with probes.sampling():
                drive = await self._drive()
                await self._settle(probes)
        finally:
            await self.watcher.stop()
        self.outcomes.driven = drive.sent
        self.outcomes.stock_before, self.outcomes.reserved_before = stock_before
        tally(self.outcomes, list(self.watcher.finished.values()))
        await self._check_final()
        if self.options.groups.enabled:
            groups = tally_groups(self.driven, self.watcher.finished)
            groups.short_held_before = short_held_before
            groups.short_held_after = await self._short_held()
            self.outcomes.groups = groups
        if self.history is not None:
            self.history["final_sagas_after_run"] = await final_sagas(self.engine)
        db_after = await counters.db_counters(self.engine)
        records_after = await true_end_offsets(self.stack.settings.kafka, all_topics())
        return self._measured(
            drive,
            probes,
            commits=db_after.commits - db_before.commits,
            row_writes=db_after.row_writes - db_before.row_writes,
            records={t: n - records_before.get(t, 0) for t, n in records_after.items()},
        )

    async def _drive(self) -> Drive:
        producer = new_producer(self.stack.settings.kafka)
        await producer.start()
        try:
            drive = await self._loop(producer)
            failures = await delivery_failures(drive.deliveries)
        finally:
            await producer.stop()
        if failures:
            self.stack.notes.append(f"{failures} CheckoutStarted sends were not acknowledged")
        return drive

    async def _loop(self, producer: AIOKafkaProducer) -> Drive:
        o, progress = self.options, _progress(self.log)
        if o.rate is not None and o.duration_s is not None:
            offsets = open_loop_offsets(o.rate, o.duration_s, o.seed)
            checkouts = self._checkouts(len(offsets))
            self.log(f"open loop: {len(offsets)} checkouts at Poisson times, {o.rate:g}/s")
            return await open_loop(
                producer, self.watcher, checkouts, offsets, o.timeout_s, progress
            )
        checkouts = self._checkouts(o.orders)
        self.log(f"closed loop: {o.orders} checkouts, {o.concurrency} in flight")
        return await closed_loop(
            producer, self.watcher, checkouts, o.concurrency, o.timeout_s, progress
        )

    async def _short_held(self) -> int:
        return await counters.held_stock(self.engine, self.short_skus) if self.short_skus else 0

    def _checkouts(self, count: int) -> list[CheckoutStarted]:
        o = self.options
        checkouts = bench_checkouts(self.skus, count, o.seed, o.groups)
        self.driven = {checkout.order_id: checkout for checkout in checkouts}
        if o.groups.enabled:
            self.log(o.groups.summary())
        return checkouts

    async def _settle(self, probes: Probes) -> None:
        """Let the relays publish what the last sagas left, end the CPU interval, stop or wait."""
        owed = await wait_quiet(self.engine, self.stack.settings, DRAIN_TIMEOUT_S)
        if owed:
            self.stack.notes.append(
                f"not settled within {DRAIN_TIMEOUT_S:g} s: " + "; ".join(owed[:10])
            )
        probes.mark_end()
        fleet = self.stack.fleet
        if fleet is not None:
            crashed = fleet.exited()
            if crashed:
                self.stack.notes.append(f"processes exited during the run: {crashed}")
            fleet.stop_all()
        else:
            self.stack.notes.append(
                f"running stack: database counters read {STATS_SETTLE_S:g} s after the load, "
                "so they include that idle time's commits (timeout polls, relay polls)"
            )
            await asyncio.sleep(STATS_SETTLE_S)

    async def _check_final(self) -> None:
        stock_after = await counters.stock_totals(self.engine, self.skus + self.short_skus)
        self.outcomes.stock_after, self.outcomes.reserved_after = stock_after
        order_ids = list(self.watcher.started_at)
        self.outcomes.not_final_in_db = await counters.not_final(self.engine, order_ids)

    def _measured(
        self,
        drive: Drive,
        probes: Probes,
        *,
        commits: int,
        row_writes: int,
        records: dict[str, int],
    ) -> Measured:
        end = self.watcher.last_finish_at or time.monotonic()
        duration = self.options.duration_s if self.options.open_loop else None
        return Measured(
            mode="open" if self.options.open_loop else "closed",
            options=self.options.described(),
            stack="owned" if self.stack.owned else "running",
            finishes=list(self.watcher.finished.values()),
            elapsed_s=end - drive.began_at,
            offered_per_s=drive.sent / duration if duration else None,
            raw_commits_per_s=self.raw_commits_per_s,
            commits=commits,
            row_writes=row_writes,
            records_by_topic=records,
            cpu_s=probes.cpu_used(),
            peak_rss_mb=probes.peak_rss_mb(),
            outcomes=self.outcomes,
            notes=self.stack.notes,
            rss_series_mb=probes.rss_series_mb(),
            history=self.history,
        )


def _progress(log: Callable[[str], None], every_s: float = 5.0) -> Callable[[int], None]:
    """A progress callback that logs the count of final sagas at most every `every_s`."""
    last = [time.monotonic()]

    def report(finished: int) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            log(f"  {finished} sagas final")

    return report
