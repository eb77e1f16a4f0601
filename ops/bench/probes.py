"""Which processes the bench measures, and their CPU and memory (peak, readings) over the drive.

Owned stack: the spawned service and relay processes, the embedded PostgreSQL postmaster and
Tansu. A running stack: whatever can be found on this machine (the postmaster of the bench's own
database backend, the process listening on the broker's port, `checkout-saga run|dev`
processes); the report's notes say what was not found.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from ops.bench.resources import (
    RssSampler,
    listener_pid,
    postgres_postmaster,
    product_processes,
    tree_cpu_s,
)
from ops.bench.stack import Stack


@dataclass
class ProcessGroups:
    """Root pids per group; `services` are counted without descendants (a dev process's servers)."""

    services: dict[str, int] = field(default_factory=dict)
    postgres: int | None = None
    broker: int | None = None
    notes: list[str] = field(default_factory=list)


def find_groups(stack: Stack, backend_pid: int) -> ProcessGroups:
    """The processes of the stack, from what the bench started or by looking around."""
    groups = ProcessGroups()
    if stack.fleet is not None:
        groups.services = stack.fleet.pids()
    else:
        found = product_processes(exclude=os.getpid())
        groups.services = {f"service-{pid}": pid for pid in found}
        groups.notes.append(
            f"running stack: services CPU covers {len(found)} checkout-saga process(es) found "
            "on this machine"
        )
    infra = stack.infra
    groups.postgres = (
        infra.postgres.pid if infra and infra.postgres else postgres_postmaster(backend_pid)
    )
    groups.broker = infra.kafka.pid if infra and infra.kafka else _broker_pid(stack)
    for name in ("postgres", "broker"):
        if getattr(groups, name) is None:
            groups.notes.append(f"{name} process not found on this machine: its CPU is not counted")
    return groups


def _broker_pid(stack: Stack) -> int | None:
    first = stack.settings.kafka.bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]") or not port.isdigit():
        return None
    return listener_pid(int(port))


class Probes:
    """CPU readings at the start and end of the drive, and RSS sampled in between."""

    def __init__(self, groups: ProcessGroups) -> None:
        self.groups = groups
        self.notes = list(groups.notes)
        self.bench_pid = os.getpid()
        self._start: dict[str, float] = {}
        self._end: dict[str, float] = {}
        named = {**groups.services, "bench": self.bench_pid}
        if groups.postgres is not None:
            named["postgres"] = groups.postgres
        if groups.broker is not None:
            named["broker"] = groups.broker
        self.sampler = RssSampler(named, trees=("postgres", "broker"), private=("postgres",))

    def cpu_now(self) -> dict[str, float]:
        """CPU seconds so far: services (flat), postgres and broker trees, the bench alone."""
        g = self.groups
        return {
            "services": sum(tree_cpu_s(pid, descendants=False) for pid in g.services.values()),
            "postgres": tree_cpu_s(g.postgres) if g.postgres else 0.0,
            "broker": tree_cpu_s(g.broker) if g.broker else 0.0,
            "bench": tree_cpu_s(self.bench_pid, descendants=False),
        }

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        """Memory sampled throughout; CPU read on entry and at mark_end (or on exit)."""
        self._start = self.cpu_now()
        with self.sampler:
            yield
        if not self._end:
            self.mark_end()

    def mark_end(self) -> None:
        """The end of the measured interval for CPU and memory (before processes are stopped)."""
        self._end = self.cpu_now()
        self.sampler.stop()

    def cpu_used(self) -> dict[str, float]:
        """CPU seconds per group between the start and the end."""
        used = {name: self._end[name] - self._start.get(name, 0.0) for name in self._end}
        used["total_without_bench"] = sum(v for k, v in used.items() if k != "bench")
        return {name: round(value, 3) for name, value in used.items()}

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak resident memory per process (postgres and broker: their process trees summed)."""
        return self.sampler.peaks_mb()

    def rss_series_mb(self) -> dict[str, list[tuple[float, float]]]:
        """Every memory reading per process: (seconds from the first reading, MiB)."""
        return self.sampler.series_mb()
