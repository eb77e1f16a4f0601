"""The flow page's figures: sagas per state, throughput and latency, backlog, lag, dead letters.

Counts come from the database (the saga table and the journals, each through an index); the
outbox backlog and the consumer lag are read from the admin app's gauges after one refresh of
its probes, so the page shows exactly what /metrics would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import Gauge
from sqlalchemy import ColumnElement, MetaData, and_, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from saga.instance import FINAL_STATES, SagaState
from saga.tables import sagas
from services.platform.journal import IN, journal_table
from services.platform.telemetry import Telemetry

WINDOW_MIN = 10
"""Minutes of history the flow page shows."""
DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Minute:
    """Sagas that finished in one minute of the window."""

    start: datetime
    finished: int


@dataclass(frozen=True)
class Backlog:
    """What one service's outbox relay still owes."""

    schema: str
    rows: int
    oldest_s: float


@dataclass(frozen=True)
class Lag:
    """Records a service's consumer group has not consumed yet, on one topic."""

    service: str
    topic: str
    records: int


@dataclass(frozen=True)
class FlowStats:
    """Everything the flow page shows, read at one moment."""

    counts: dict[str, int]
    minutes: list[Minute]
    p50_s: float | None
    p95_s: float | None
    backlog: list[Backlog] = field(default_factory=list)
    lag: list[Lag] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        """Sagas finished within the window."""
        return sum(minute.finished for minute in self.minutes)

    @property
    def per_minute(self) -> float:
        """Mean sagas finished per minute over the window."""
        return self.finished / WINDOW_MIN


async def flow_stats(
    conn: AsyncConnection, telemetry: Telemetry, schemas: Sequence[str]
) -> FlowStats:
    """Read every figure; the gauges are refreshed first (their probes time out on their own)."""
    await telemetry.refresh()
    minutes, (p50, p95) = await _throughput(conn), await _latency(conn)
    return FlowStats(
        counts=await _counts(conn),
        minutes=minutes,
        p50_s=p50,
        p95_s=p95,
        backlog=_backlog(telemetry),
        lag=_lag(telemetry),
        dead_letters=await _dead_letters(conn, schemas),
    )


async def _counts(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(sagas.c.state, func.count()).group_by(sagas.c.state))
    found = {str(state): int(n) for state, n in rows}
    return {state.value: found.get(state.value, 0) for state in SagaState}


def _finished_recently() -> ColumnElement[bool]:
    """Sagas in a final state updated within the window: the partial index of migration 0008."""
    since = func.now() - literal_column(f"interval '{WINDOW_MIN} minutes'")
    return and_(sagas.c.state.in_([s.value for s in FINAL_STATES]), sagas.c.updated_at >= since)


async def _throughput(conn: AsyncConnection) -> list[Minute]:
    """Sagas finished in each minute of the window, the quiet minutes included (oldest first)."""
    minute = func.date_trunc("minute", sagas.c.updated_at).label("minute")
    rows = await conn.execute(
        select(minute, func.count()).where(_finished_recently()).group_by(minute)
    )
    finished = {start: int(n) for start, n in rows}
    now = (await conn.execute(select(func.date_trunc("minute", func.now())))).scalar_one()
    starts = [now - timedelta(minutes=back) for back in reversed(range(WINDOW_MIN))]
    return [Minute(start, finished.get(start, 0)) for start in starts]


async def _latency(conn: AsyncConnection) -> tuple[float | None, float | None]:
    """p50 and p95 seconds from creation to the last update of the sagas finished lately."""
    seconds = func.extract("epoch", sagas.c.updated_at - sagas.c.created_at)
    p50 = func.percentile_cont(0.5).within_group(seconds)
    p95 = func.percentile_cont(0.95).within_group(seconds)
    row = (await conn.execute(select(p50, p95).where(_finished_recently()))).one()
    return _float(row[0]), _float(row[1])


def _float(value: object) -> float | None:
    return None if value is None else float(str(value))


async def _dead_letters(conn: AsyncConnection, schemas: Sequence[str]) -> dict[str, int]:
    """Records dead-lettered within the window, per topic they came from (every service)."""
    metadata = MetaData()
    since = func.now() - literal_column(f"interval '{WINDOW_MIN} minutes'")
    counts: dict[str, int] = {}
    for schema in schemas:
        table = journal_table(metadata, schema)
        rows = await conn.execute(
            select(table.c.topic, func.count())
            .where(table.c.recorded_at >= since)
            .where(table.c.direction == IN, table.c.outcome == DEAD_LETTERED)
            .group_by(table.c.topic)
        )
        for topic, n in rows:
            counts[str(topic)] = counts.get(str(topic), 0) + int(n)
    return dict(sorted(counts.items()))


def _samples(gauge: Gauge) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for metric in gauge.collect() for s in metric.samples]


def _backlog(telemetry: Telemetry) -> list[Backlog]:
    metrics = telemetry.metrics
    ages = {labels["schema"]: value for labels, value in _samples(metrics.outbox_oldest_age)}
    return [
        Backlog(labels["schema"], int(rows), ages.get(labels["schema"], 0.0))
        for labels, rows in sorted(_samples(metrics.outbox_backlog), key=lambda s: s[0]["schema"])
    ]


def _lag(telemetry: Telemetry) -> list[Lag]:
    samples = _samples(telemetry.metrics.consumer_lag)
    return sorted(
        (Lag(labels["service"], labels["topic"], int(value)) for labels, value in samples),
        key=lambda lag: (lag.service, lag.topic),
    )
