"""The pure parts of the bench: percentiles, the open-loop schedule, outcome checks, ratios."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for the annotation: group_report uses this module's latency summary.
    from ops.bench.group_report import GroupTally


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation between closest ranks; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, max and mean of latencies given in seconds, in milliseconds."""
    figures = {f"p{p}": percentile(latencies_s, p) for p in (50, 95, 99)}
    figures["max"] = max(latencies_s, default=0.0)
    figures["mean"] = sum(latencies_s) / len(latencies_s) if latencies_s else 0.0
    return {name: round(value * 1000, 1) for name, value in figures.items()}


def poisson_schedule(rate: float, duration_s: float, seed: int) -> list[float]:
    """Send offsets (seconds from the start) of a Poisson process of `rate` per second.

    Gaps are exponential, so sends land at random times: a probe on a fixed period would keep
    missing (or always hitting) whatever the system does periodically (DESIGN §8).
    """
    if rate <= 0 or duration_s <= 0:
        return []
    rng = random.Random(seed)
    offsets: list[float] = []
    at = rng.expovariate(rate)
    while at < duration_s:
        offsets.append(at)
        at += rng.expovariate(rate)
    return offsets


def per_saga(total: float, sagas: int, digits: int = 2) -> float | None:
    """total / sagas rounded, None when no saga finished."""
    return round(total / sagas, digits) if sagas else None


@dataclass
class Outcomes:
    """What became of the driven checkouts, as seen on the wire and in the saga table."""

    driven: int
    confirmed: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    unfinished_on_wire: int = 0
    not_final_in_db: list[str] = field(default_factory=list)
    stock_before: int = 0
    stock_after: int = 0
    reserved_before: int = 0
    reserved_after: int = 0
    groups: GroupTally | None = None
    """Checkout groups (`bench --vendors N`) by outcome and policy; None for plain checkouts."""

    @property
    def finished(self) -> int:
        """Sagas whose final order event was seen on the wire."""
        return self.confirmed + sum(self.failed_by_reason.values())

    def problems(self) -> list[str]:
        """Why the run failed: lost or unfinished sagas, stock created or destroyed."""
        found = []
        if self.unfinished_on_wire:
            found.append(f"{self.unfinished_on_wire} saga(s) without a final event on the wire")
        if self.not_final_in_db:
            found.append(f"{len(self.not_final_in_db)} saga(s) not final in saga.sagas")
        if self.stock_after != self.stock_before:
            found.append(f"stock total changed: {self.stock_before} -> {self.stock_after}")
        if self.reserved_after != self.reserved_before:
            found.append(
                f"reserved stock not released: {self.reserved_before} -> {self.reserved_after}"
            )
        if self.groups is not None:
            found.extend(self.groups.problems())
        return found

    def as_dict(self) -> dict[str, object]:
        """The outcome part of the JSON report (with `groups` only when groups were driven)."""
        groups = {} if self.groups is None else {"groups": self.groups.as_dict()}
        return {
            "driven": self.driven,
            "finished": self.finished,
            "confirmed": self.confirmed,
            "failed_by_reason": dict(sorted(self.failed_by_reason.items())),
            "unfinished_on_wire": self.unfinished_on_wire,
            "not_final_in_db": len(self.not_final_in_db),
            "not_final_examples": self.not_final_in_db[:10],
            "every_saga_final": not self.unfinished_on_wire and not self.not_final_in_db,
            "stock_total": {"before": self.stock_before, "after": self.stock_after},
            "reserved": {"before": self.reserved_before, "after": self.reserved_after},
            "stock_conserved": self.stock_after == self.stock_before
            and self.reserved_after == self.reserved_before,
            **groups,
            "problems": self.problems(),
        }


def ratios(
    sagas_per_s: float, latency_ms: Mapping[str, float], raw_commits_per_s: float, connections: int
) -> dict[str, float | None]:
    """Throughput and latency against the raw commit rate of the same run (DESIGN §7).

    One raw commit takes connections / rate seconds on one connection while `connections` of
    them run at once; latencies are given in that unit.
    """
    if raw_commits_per_s <= 0:
        return {"sagas_per_raw_commit": None, "raw_commits_per_saga": None}
    commit_ms = 1000 * connections / raw_commits_per_s
    figures: dict[str, float | None] = {
        "sagas_per_raw_commit": round(sagas_per_s / raw_commits_per_s, 5),
        "raw_commits_per_saga": round(raw_commits_per_s / sagas_per_s, 1) if sagas_per_s else None,
        "raw_commit_ms": round(commit_ms, 3),
    }
    for name in ("p50", "p99"):
        figures[f"latency_{name}_in_raw_commits"] = round(latency_ms.get(name, 0.0) / commit_ms, 1)
    return figures
