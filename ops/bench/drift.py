"""Whether each process's memory stayed flat over a run: early against late RSS (pure).

A run of at least SHORT_RUN_S compares the median of the readings of its first minute with the
median of its last minute; a shorter run has no two separate minutes worth comparing, so it
compares the first and the last EDGE_SHARE of the readings instead (the report says which).
Medians, not means or peaks, so that one burst of allocation does not decide.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence

MINUTE_S = 60.0
SHORT_RUN_S = 180.0
EDGE_SHARE = 0.2
FLAT_PCT = 10.0
"""A process is flat when its late median is within ±10 % of its early median."""
NOT_JUDGED = frozenset({"bench"})
"""The load generator keeps every driven checkout's finish: its memory grows with the run."""

Reading = tuple[float, float]
"""(seconds from the first reading, MiB)."""


def span_s(series: Mapping[str, Sequence[Reading]]) -> float:
    """From the first reading of any process to the last one."""
    times = [t for points in series.values() for t, _ in points]
    return max(times) - min(times) if times else 0.0


def window(run_span_s: float) -> str:
    """What is compared: the first and last minute, or the first and last 20 % of readings."""
    if run_span_s >= SHORT_RUN_S:
        return "first and last 60 s of the readings"
    return (
        f"first and last {EDGE_SHARE:.0%} of the readings "
        f"(run of {run_span_s:.0f} s, shorter than {SHORT_RUN_S:.0f} s)"
    )


def edges(points: Sequence[Reading], run_span_s: float) -> tuple[list[float], list[float]]:
    """The early and the late readings of one process (values only)."""
    if not points:
        return [], []
    if run_span_s >= SHORT_RUN_S:
        first_t, last_t = points[0][0], points[-1][0]
        early = [mb for t, mb in points if t <= first_t + MINUTE_S]
        late = [mb for t, mb in points if t >= last_t - MINUTE_S]
        return early, late
    n = max(1, round(len(points) * EDGE_SHARE))
    return [mb for _, mb in points[:n]], [mb for _, mb in points[-n:]]


def drift(points: Sequence[Reading], run_span_s: float) -> dict[str, float | None]:
    """Early and late medians (MiB) and the late one's change in % of the early one."""
    early, late = edges(points, run_span_s)
    if not early or not late:
        return {"first_minute_median": None, "last_minute_median": None, "drift_pct": None}
    first, last = statistics.median(early), statistics.median(late)
    pct = (last - first) / first * 100 if first > 0 else None
    return {
        "first_minute_median": round(first, 1),
        "last_minute_median": round(last, 1),
        "drift_pct": None if pct is None else round(pct, 1),
    }


def rss_drift(series: Mapping[str, Sequence[Reading]]) -> dict[str, dict[str, float | None]]:
    """drift() of every process over the run's span."""
    run_span_s = span_s(series)
    return {name: drift(points, run_span_s) for name, points in sorted(series.items())}


def not_flat(drifts: Mapping[str, Mapping[str, float | None]]) -> list[str]:
    """Judged processes whose drift is beyond ±FLAT_PCT or could not be measured."""
    return [
        name
        for name, d in sorted(drifts.items())
        if name not in NOT_JUDGED and (d["drift_pct"] is None or abs(d["drift_pct"]) > FLAT_PCT)
    ]


def judged(names: Iterable[str]) -> list[str]:
    """The processes rss_flat speaks for."""
    return sorted(set(names) - NOT_JUDGED)
