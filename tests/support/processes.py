"""The product as OS processes for the e2e and chaos tiers: start, kill -9, restart, stop, logs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import psutil  # type: ignore[import-untyped, unused-ignore]

from tests.support.forkserver import ForkServer

REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0
READY_MARKERS = ("FastStream app started successfully", "relay-only process publishing")


class Process(Protocol):
    """What Fleet needs of a process: subprocess.Popen, or a fork server's ForkedProcess."""

    pid: int

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


PROCESSES: dict[str, tuple[str, ...]] = {
    "saga": ("saga", "--no-relay"),
    "inventory": ("inventory", "--no-relay"),
    "orders": ("orders", "--no-relay"),
    "cart": ("cart", "--no-relay"),
    "payments": ("payments", "--no-relay"),
    "relay": ("relay",),
}
"""Each service in its own process without a relay, and one relay process for every outbox."""


def clean_environ() -> dict[str, str]:
    """This process's environment without any CHECKOUT_* variable (the test sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CHECKOUT_")}


class Fleet:
    """The product's processes: started, killed, restarted and stopped by name, logs to files.

    `commands` maps a process name to its `checkout-saga run` arguments, so one service may run
    as several named instances (e.g. "saga-1", "saga-2"). `start`, `stop` and `wait_ready` also
    take a service's name for all of its instances ("saga" for "saga-1" and "saga-2").
    With `forked`, processes are forked from a fork server that imported the product once
    (tests/support/forkserver.py): a start then costs ~0.2 s of CPU instead of ~2 s.
    """

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        commands: Mapping[str, tuple[str, ...]] = PROCESSES,
        forked: bool = False,
    ) -> None:
        self.env = env
        self.log_dir = log_dir
        self.commands = dict(commands)
        self.procs: dict[str, Process] = {}
        self._log_from: dict[str, int] = {}
        self.started: list[int] = []
        self.forked = forked
        self._server: ForkServer | None = None

    def log(self, name: str) -> Path:
        """The log file of a process (both streams; appended across restarts)."""
        return self.log_dir / f"{name}.log"

    def instances(self, name: str) -> list[str]:
        """The processes a name stands for: itself, or every "<name>-<n>" of the commands."""
        if name in self.commands:
            return [name]
        found = [n for n in self.commands if n.rpartition("-")[0] == name]
        if not found:
            raise KeyError(f"no process or service {name!r} in {sorted(self.commands)}")
        return found

    def start(self, name: str) -> None:
        """Launch `python -m ops.cli run ...` for a process, or each instance of a service."""
        for instance in self.instances(name):
            self._launch(instance)

    def _launch(self, name: str) -> None:
        path = self.log(name)
        path.touch()  # a forked child opens it itself, maybe after the first look at it
        self._log_from[name] = path.stat().st_size
        args = ["run", *self.commands[name]]
        if self.forked:
            if self._server is None:
                self._server = ForkServer(REPO_ROOT, {**clean_environ(), "PYTHONUNBUFFERED": "1"})
            proc: Process = self._server.start(args[1:], self.env, REPO_ROOT, path)
        else:
            with path.open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "ops.cli", *args],
                    cwd=REPO_ROOT,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        self.procs[name] = proc
        self.started.append(proc.pid)

    def start_all(self) -> None:
        """Start every process of the commands and wait until each is ready."""
        for name in self.commands:
            self.start(name)
        self.wait_ready(list(self.commands))

    def wait_ready(self, names: list[str], timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until each process logged that it is consuming (or relaying); fail if one exits."""
        deadline = time.monotonic() + timeout_s
        waiting = {instance for name in names for instance in self.instances(name)}
        while waiting:
            for name in list(waiting):
                code = self.procs[name].poll()
                if code is not None:
                    raise AssertionError(f"{name} exited with {code}\n{self.tails()}")
                if self.is_ready(name):
                    waiting.discard(name)
            if waiting and time.monotonic() > deadline:
                raise AssertionError(f"not ready after {timeout_s}s: {waiting}\n{self.tails()}")
            time.sleep(0.2)

    def is_ready(self, name: str) -> bool:
        """True once the process's current run logged a ready marker."""
        with self.log(name).open("rb") as log:
            log.seek(self._log_from[name])
            text = log.read().decode("utf-8", "replace")
        return any(marker in text for marker in READY_MARKERS)

    def kill9(self, name: str) -> int:
        """SIGKILL a process, as a crash would; returns its exit code."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        return proc.wait(STOP_TIMEOUT_S)

    def stop(self, name: str) -> None:
        """SIGTERM a process, or every instance of a service, and wait (SIGKILL after a while)."""
        _terminate([self.procs.pop(instance) for instance in self.instances(name)])

    def stop_all(self) -> None:
        """SIGTERM every process, SIGKILL whatever is still running after STOP_TIMEOUT_S."""
        _terminate(list(self.procs.values()))
        self.procs.clear()

    def __enter__(self) -> Fleet:
        """Every process started and ready; stopped (even when starting fails) on exit."""
        try:
            self.start_all()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process, then the fork server if there is one."""
        self.stop_all()
        if self._server is not None:
            self._server.close()
            self._server = None

    def leftovers(self) -> list[int]:
        """Pids of every process this fleet ever started that still runs."""
        return [pid for pid in self.started if alive(pid)]

    def tails(self, limit: int = 3000) -> str:
        """The end of every process's log, for failure reports."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            data = path.read_bytes()[-limit:].decode("utf-8", "replace")
            parts.append(f"----- {path.name} (last {limit} bytes) -----\n{data}")
        return "\n".join(parts)


def _terminate(procs: list[Process]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def alive(pid: int) -> bool:
    """True while the process runs (a zombie counts as gone)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
