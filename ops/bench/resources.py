"""CPU seconds and peak memory of the processes a bench run involves, read with psutil.

A group is a set of root pids (services, postgres, broker, bench). A root's CPU counts its own
time, its reaped children's (psutil's children_user/system) and its live descendants', so a
PostgreSQL backend that exits mid-run moves from the live sum into the postmaster's reaped sum
without a jump: the difference of two readings is the group's CPU in between.
"""

from __future__ import annotations

import contextlib
import threading
import time
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


def tree_memory_bytes(pid: int, *, descendants: bool = True) -> tuple[int, int]:
    """(resident, resident minus shared pages) of a process plus its live descendants.

    The second leaves out file-backed and shared-memory pages (Linux statm's `shared`), such as
    the PostgreSQL shared buffers each backend maps: what the processes hold privately.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if descendants else [])]
    except _GONE:
        return 0, 0
    rss = private = 0
    for proc in procs:
        with contextlib.suppress(*_GONE):
            info = proc.memory_info()
            rss += int(info.rss)
            private += int(info.rss) - int(getattr(info, "shared", 0))
    return rss, private


class RssSampler:
    """Samples the resident memory of named processes every `interval_s` on a thread.

    Names in `trees` count their live descendants too (PostgreSQL's backends); others alone.
    Keeps the peak RSS and every reading (monotonic time, bytes) of a live process per name: its
    RSS, or for names in `private` its resident memory minus shared pages (a PostgreSQL
    backend's RSS grows with every shared buffer it touches, which is no memory it holds).
    """

    def __init__(
        self,
        pids: Mapping[str, int],
        trees: Iterable[str] = (),
        interval_s: float = 0.5,
        private: Iterable[str] = (),
    ) -> None:
        self.pids = dict(pids)
        self.trees = set(trees)
        self.private = set(private)
        self.interval_s = interval_s
        self.peaks: dict[str, int] = dict.fromkeys(self.pids, 0)
        self.series: dict[str, list[tuple[float, int]]] = {name: [] for name in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        """One reading of every tree; keeps the maximum seen per name and the reading itself."""
        for name, pid in self.pids.items():
            rss, private = tree_memory_bytes(pid, descendants=name in self.trees)
            self.peaks[name] = max(self.peaks[name], rss)
            if rss > 0:  # 0: the process is gone, which says nothing about its memory
                reading = private if name in self.private else rss
                self.series[name].append((time.monotonic(), reading))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """No more readings (idempotent): called before the processes are stopped."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def peaks_mb(self) -> dict[str, float]:
        """Peak RSS per name in MiB."""
        return {name: round(peak / 2**20, 1) for name, peak in sorted(self.peaks.items())}

    def series_mb(self) -> dict[str, list[tuple[float, float]]]:
        """Every reading per name: (seconds since the first reading of any name, MiB)."""
        starts = [points[0][0] for points in self.series.values() if points]
        t0 = min(starts, default=0.0)
        return {
            name: [(at - t0, rss / 2**20) for at, rss in points]
            for name, points in sorted(self.series.items())
        }


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
        is_product = "checkout-saga" in cmdline or "ops.cli" in cmdline
        if is_product and (" run" in cmdline or " dev" in cmdline) and proc.pid != exclude:
            found.append(int(proc.pid))
    return found
