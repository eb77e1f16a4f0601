"""CPU seconds and peak memory of the processes a bench run involves, read with psutil.

A group is a set of root pids (services, postgres, broker, bench). A root's CPU counts its own
time, its reaped children's (psutil's children_user/system) and its live descendants', so a
PostgreSQL backend that exits mid-run moves from the live sum into the postmaster's reaped sum
without a jump: the difference of two readings is the group's CPU in between.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping

import psutil  # type: ignore[import-untyped, unused-ignore]

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


def _own_cpu(proc: psutil.Process, *, reaped: bool) -> float:
    times = proc.cpu_times()
    total = float(times.user + times.system)
    if reaped:
        total += float(times.children_user + times.children_system)
    return total


def tree_cpu_s(pid: int, *, descendants: bool = True) -> float:
    """CPU seconds of a process, its reaped children and (optionally) its live descendants."""
    try:
        root = psutil.Process(pid)
        total = _own_cpu(root, reaped=descendants)
        children = root.children(recursive=True) if descendants else []
    except _GONE:
        return 0.0
    for child in children:
        with contextlib.suppress(*_GONE):
            total += _own_cpu(child, reaped=False)
    return total


def tree_rss_bytes(pid: int, *, descendants: bool = True) -> int:
    """Resident memory of a process plus its live descendants (shared pages counted per process)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if descendants else [])]
    except _GONE:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(*_GONE):
            total += int(proc.memory_info().rss)
    return total


class RssSampler:
    """Samples the resident memory of named processes every `interval_s` on a thread.

    Names in `trees` count their live descendants too (PostgreSQL's backends); others alone.
    """

    def __init__(
        self, pids: Mapping[str, int], trees: Iterable[str] = (), interval_s: float = 0.5
    ) -> None:
        self.pids = dict(pids)
        self.trees = set(trees)
        self.interval_s = interval_s
        self.peaks: dict[str, int] = dict.fromkeys(self.pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        """One reading of every tree; keeps the maximum seen per name."""
        for name, pid in self.pids.items():
            rss = tree_rss_bytes(pid, descendants=name in self.trees)
            self.peaks[name] = max(self.peaks[name], rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peaks_mb(self) -> dict[str, float]:
        """Peak RSS per name in MiB."""
        return {name: round(peak / 2**20, 1) for name, peak in sorted(self.peaks.items())}


def postgres_postmaster(backend_pid: int) -> int | None:
    """The postmaster of a PostgreSQL backend of this machine, or None if it is not visible."""
    try:
        parent = psutil.Process(backend_pid).parent()
        if parent is not None and "postgres" in parent.name().lower():
            return int(parent.pid)
    except _GONE:
        return None
    return None


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on this TCP port of this machine, if one is visible."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return int(conn.pid) if conn.pid else None
    return None


def product_processes(exclude: int) -> list[int]:
    """Pids of `checkout-saga run|dev` processes on this machine (a stack not started here)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        is_product = "checkout-saga" in cmdline or "services.cli" in cmdline
        if is_product and (" run" in cmdline or " dev" in cmdline) and proc.pid != exclude:
            found.append(int(proc.pid))
    return found
