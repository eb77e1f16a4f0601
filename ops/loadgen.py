"""Drives N checkouts through a running stack and measures them (for `demo`).

Publishes CheckoutStarted as any upstream would, then watches saga rows until every checkout is
final. Latency is the saga's last write (database clock) minus the publish time. `bench` uses
the checkout generator, the failure-reason kinds and the raw commit baseline from here.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from statistics import quantiles

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutStarted, LineItem
from contracts.codec import encode, headers_for
from contracts.topics import topic_for
from ops.bench import counters
from services.platform.broker import security_kwargs
from services.platform.settings import Settings

FINAL = ("Confirmed", "Failed")


@dataclass
class LoadResult:
    """What became of the driven checkouts."""

    orders: int
    elapsed_s: float
    confirmed: int = 0
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    refunded: int = 0
    latencies_s: list[float] = field(default_factory=list)
    transactions: int = 0
    stock_conserved: bool | None = None

    @property
    def throughput(self) -> float:
        """Finished sagas per second of wall time."""
        return (self.orders - self.unfinished) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, p: int) -> float:
        """Latency percentile in seconds (p in 1..99)."""
        if len(self.latencies_s) < 2:
            return self.latencies_s[0] if self.latencies_s else 0.0
        return quantiles(self.latencies_s, n=100, method="inclusive")[p - 1]


def make_checkouts(skus: Sequence[str], count: int, seed: int) -> list[CheckoutStarted]:
    """Reproducible checkouts of 1-3 catalog lines each."""
    rng = random.Random(seed)
    checkouts = []
    for i in range(count):
        lines = rng.sample(list(skus), k=min(len(skus), rng.randint(1, 3)))
        checkouts.append(
            CheckoutStarted(
                order_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                buyer_id=f"load-buyer-{i % 97}",
                currency="EUR",
                items=[
                    LineItem(
                        sku=sku,
                        quantity=rng.randint(1, 2),
                        unit_price=Decimal(rng.randint(100, 20000)) / 100,
                    )
                    for sku in lines
                ],
            )
        )
    return checkouts


async def _publish(producer: AIOKafkaProducer, checkout: CheckoutStarted) -> datetime:
    envelope = checkout.to_envelope()
    await producer.send_and_wait(
        topic_for(CheckoutStarted),
        encode(envelope),
        key=str(checkout.order_id).encode(),
        headers=[(k, v.encode()) for k, v in headers_for(envelope).items()],
    )
    return envelope.occurred_at


class _Watcher:
    """Polls saga rows of the pending orders and records each one's finish."""

    def __init__(self, engine: AsyncEngine, started: dict[uuid.UUID, datetime]) -> None:
        self.engine = engine
        self.started = started
        self.pending = set(started)
        self.finished: dict[uuid.UUID, tuple[str, str | None, float]] = {}

    async def poll(self) -> int:
        if not self.pending:
            return 0
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT id, state, data->>'failure_reason' AS reason, updated_at "
                    "FROM saga.sagas WHERE id = ANY(:ids) AND state IN ('Confirmed', 'Failed')"
                ),
                {"ids": list(self.pending)},
            )
            for row in rows:
                latency = (row.updated_at - self.started[row.id]).total_seconds()
                self.finished[row.id] = (row.state, row.reason, max(latency, 0.0))
                self.pending.discard(row.id)
        return len(self.finished)


async def drive(
    settings: Settings,
    engine: AsyncEngine,
    checkouts: Sequence[CheckoutStarted],
    *,
    concurrency: int = 50,
    timeout_s: float = 120.0,
    progress: Callable[[int], None] = lambda _done: None,
) -> LoadResult:
    """Publish the checkouts (at most `concurrency` unfinished at once) and wait for all."""
    skus = sorted({i.sku for c in checkouts for i in c.items})
    stock_before, _ = await counters.stock_totals(engine, skus)
    commits_before = (await counters.db_counters(engine)).commits
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_idempotence=settings.kafka.enable_idempotence,
        linger_ms=2,
        **security_kwargs(settings.kafka),
    )
    await producer.start()
    began = time.monotonic()
    started: dict[uuid.UUID, datetime] = {}
    watcher = _Watcher(engine, started)
    try:
        await _run(producer, checkouts, started, watcher, concurrency, timeout_s, progress)
    finally:
        await producer.stop()
    result = LoadResult(orders=len(checkouts), elapsed_s=time.monotonic() - began)
    _summarize(result, watcher)
    result.transactions = (await counters.db_counters(engine)).commits - commits_before
    result.refunded = await _refunds(engine, list(started))
    result.stock_conserved = (await counters.stock_totals(engine, skus))[0] == stock_before
    return result


async def _run(
    producer: AIOKafkaProducer,
    checkouts: Sequence[CheckoutStarted],
    started: dict[uuid.UUID, datetime],
    watcher: _Watcher,
    concurrency: int,
    timeout_s: float,
    progress: Callable[[int], None],
) -> None:
    deadline = time.monotonic() + timeout_s
    queue = list(checkouts)
    while (queue or watcher.pending) and time.monotonic() < deadline:
        room = concurrency - len(watcher.pending)
        batch, queue = queue[: max(room, 0)], queue[max(room, 0) :]
        published = await asyncio.gather(*(_publish(producer, c) for c in batch))
        for checkout, at in zip(batch, published, strict=True):
            started[checkout.order_id] = at
            watcher.pending.add(checkout.order_id)
        progress(await watcher.poll())
        await asyncio.sleep(0.02)


def _summarize(result: LoadResult, watcher: _Watcher) -> None:
    for state, reason, latency in watcher.finished.values():
        result.latencies_s.append(latency)
        if state == "Confirmed":
            result.confirmed += 1
        else:
            result.failed_by_reason[reason_kind(reason)] += 1
    result.unfinished = len(watcher.pending) + (result.orders - len(watcher.started))


def reason_kind(reason: str | None) -> str:
    """Group failure reasons into a few kinds for the summary table."""
    text_ = (reason or "unknown").lower()
    for kind in ("payment timeout", "insufficient stock", "unknown product", "declined"):
        if kind in text_:
            return kind
    return text_[:40]


async def _refunds(engine: AsyncEngine, order_ids: list[uuid.UUID]) -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(
            text(
                "SELECT count(*) FROM saga.outbox WHERE topic = :topic AND message_key = ANY(:keys)"
            ),
            {"topic": "checkout.refund_payment", "keys": [str(o) for o in order_ids]},
        )
    return int(value or 0)


async def commit_rate(engine: AsyncEngine, seconds: float = 2.0, connections: int = 4) -> float:
    """Raw PostgreSQL commits per second on this database: the baseline results are divided by."""
    async with engine.begin() as conn:
        await conn.execute(
            # A logged table, so each commit pays the WAL flush a saga transaction pays.
            text("CREATE TABLE IF NOT EXISTS public.bench_baseline (n bigint)")
        )

    async def worker(stop_at: float) -> int:
        done = 0
        async with engine.connect() as conn:
            while time.monotonic() < stop_at:
                await conn.execute(text("INSERT INTO public.bench_baseline VALUES (1)"))
                await conn.commit()
                done += 1
        return done

    stop_at = time.monotonic() + seconds
    counts = await asyncio.gather(*(worker(stop_at) for _ in range(connections)))
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS public.bench_baseline"))
    return sum(counts) / seconds
