"""The bench's JSON report, assembled from what one run measured (pure: no I/O)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from ops.bench.drift import not_flat, rss_drift, span_s, window
from ops.bench.stats import Outcomes, latency_summary_ms, per_saga, ratios
from ops.bench.wire import Finish
from ops.loadgen import reason_kind

RSS_MEASURE = (
    "postgres: resident minus shared pages, summed over the postmaster and its backends; "
    "every other process: its RSS"
)
"""What rss_mb compares (peak_rss_mb stays the plain RSS, summed over postgres and broker)."""
RAW_COMMIT_CONNECTIONS = 4
"""Connections the raw commit baseline runs on (ops.loadgen.commit_rate's default)."""


@dataclass
class Measured:
    """Everything a run measured, before it is turned into figures."""

    mode: str
    options: dict[str, object]
    stack: str
    finishes: list[Finish]
    elapsed_s: float
    offered_per_s: float | None
    raw_commits_per_s: float
    commits: int
    row_writes: int
    records_by_topic: dict[str, int]
    cpu_s: dict[str, float]
    peak_rss_mb: dict[str, float]
    outcomes: Outcomes
    notes: list[str] = field(default_factory=list)
    rss_series_mb: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    history: dict[str, object] | None = None


def tally(outcomes: Outcomes, finishes: list[Finish]) -> None:
    """Count confirmed sagas and failed ones by kind of reason into `outcomes`."""
    failed: Counter[str] = Counter()
    for finish in finishes:
        if finish.confirmed:
            outcomes.confirmed += 1
        else:
            failed[reason_kind(finish.reason)] += 1
    outcomes.failed_by_reason = dict(failed)
    outcomes.unfinished_on_wire = outcomes.driven - len(finishes)


def throughput(m: Measured) -> dict[str, float | None]:
    """Finished sagas per second of the drive; the open loop also states what it offered."""
    achieved = round(len(m.finishes) / m.elapsed_s, 2) if m.elapsed_s > 0 else 0.0
    if m.offered_per_s is None:
        return {"sagas_per_s": achieved}
    return {"offered_sagas_per_s": round(m.offered_per_s, 2), "achieved_sagas_per_s": achieved}


def cost_per_saga(m: Measured) -> dict[str, object]:
    """Commits, row writes, Kafka records and CPU seconds divided by the finished sagas."""
    sagas = len(m.finishes)
    records = sum(m.records_by_topic.values())
    return {
        "db_commits": m.commits,
        "db_commits_per_saga": per_saga(m.commits, sagas),
        "db_row_writes": m.row_writes,
        "db_row_writes_per_saga": per_saga(m.row_writes, sagas),
        "kafka_records": records,
        "kafka_records_per_saga": per_saga(records, sagas),
        "kafka_records_by_topic": {t: n for t, n in sorted(m.records_by_topic.items()) if n},
        "cpu_s": m.cpu_s,
        "cpu_s_per_saga": {name: per_saga(s, sagas, 4) for name, s in m.cpu_s.items()},
    }


def memory(m: Measured) -> dict[str, object]:
    """Peak RSS, and early against late RSS per process with the verdict on flatness."""
    drifts = rss_drift(m.rss_series_mb)
    breaches = not_flat(drifts)
    return {
        "peak_rss_mb": m.peak_rss_mb,
        "rss_mb": drifts,
        "rss_window": window(span_s(m.rss_series_mb)),
        "rss_measure": RSS_MEASURE,
        "rss_flat": bool(drifts) and not breaches,
        "rss_not_flat": breaches,
    }


def build_report(m: Measured) -> dict[str, object]:
    """The whole JSON report of a run."""
    latency = latency_summary_ms([f.latency_s for f in m.finishes])
    rates = throughput(m)
    achieved = rates.get("sagas_per_s", rates.get("achieved_sagas_per_s")) or 0.0
    return {
        "mode": m.mode,
        "options": m.options,
        "stack": m.stack,
        "history": m.history,
        "elapsed_s": round(m.elapsed_s, 2),
        **rates,
        "latency_ms": latency,
        **cost_per_saga(m),
        **memory(m),
        "raw_commits_per_s": round(m.raw_commits_per_s, 1),
        "ratios_to_raw_commits": ratios(
            achieved, latency, m.raw_commits_per_s, RAW_COMMIT_CONNECTIONS
        ),
        "outcomes": m.outcomes.as_dict(),
        "ok": not m.outcomes.problems(),
        "notes": m.notes,
    }


def rounded(values: Mapping[str, float], digits: int = 3) -> dict[str, float]:
    """Values rounded for the report."""
    return {name: round(value, digits) for name, value in values.items()}
