"""The services as OS processes for the bench: spawned, awaited until ready, stopped, log tails.

Each service runs `python -m ops.cli run <service> --no-relay` (K instances each) and K
processes run `run relay`. Readiness is a line in the process's log: FastStream announces that
the app started (every subscriber is up), the relay-only process that it publishes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import services

SERVICE_NAMES = ("saga", "inventory", "orders", "cart", "payments")
READY_MARKERS = ("FastStream app started successfully", "relay-only process publishing")
STOP_TIMEOUT_S = 10.0


def fleet_commands(processes: int) -> dict[str, tuple[str, ...]]:
    """Process name -> `run` arguments: every service and a relay, `processes` instances each."""
    commands: dict[str, tuple[str, ...]] = {}
    for i in range(1, processes + 1):
        for name in SERVICE_NAMES:
            commands[f"{name}-{i}"] = (name, "--no-relay")
        commands[f"relay-{i}"] = ("relay",)
    return commands


def code_root() -> Path:
    """The directory holding the `services` package this process runs."""
    return Path(services.__file__).resolve().parents[1]


def child_environ(
    overrides: Mapping[str, str], base: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The environment of a spawned process: ours, the overrides, and this code first on the path.

    PYTHONPATH starts with the directory holding the `services` package that runs here, so the
    children run the same code as the bench (a worktree on PYTHONPATH included).
    """
    root = str(code_root())
    path = [root, *(p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p and p != root)]
    return {**base, **overrides, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}


class ServiceFleet:
    """Named `checkout-saga run` processes with their output in log_dir/<name>.log."""

    def __init__(
        self, env: Mapping[str, str], log_dir: Path, commands: Mapping[str, tuple[str, ...]]
    ) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.commands = dict(commands)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        """Where one process writes (both streams)."""
        return self.log_dir / f"{name}.log"

    def start_all(self, timeout_s: float) -> None:
        """Launch every process, then wait until each logged a ready marker."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name, args in self.commands.items():
            with self.log(name).open("wb") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "ops.cli", "run", *args],
                    env=self.env,
                    # `-m` puts the working directory first on sys.path: make it this code's root.
                    cwd=code_root(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        """Until every process is ready; RuntimeError (with log tails) if one exits or is late."""
        deadline = time.monotonic() + timeout_s
        waiting = set(self.procs)
        while waiting:
            for name in sorted(waiting):
                code = self.procs[name].poll()
                if code is not None:
                    raise RuntimeError(f"{name} exited with code {code}\n{self.tails()}")
                if self._ready(name):
                    waiting.discard(name)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout_s:.0f}s: {sorted(waiting)}")
            time.sleep(0.2)

    def _ready(self, name: str) -> bool:
        text = self.log(name).read_bytes().decode("utf-8", "replace")
        return any(marker in text for marker in READY_MARKERS)

    def pids(self) -> dict[str, int]:
        """Name -> pid of every process started."""
        return {name: proc.pid for name, proc in self.procs.items()}

    def exited(self) -> dict[str, int]:
        """Processes that have stopped running, with their exit codes."""
        codes = {name: proc.poll() for name, proc in self.procs.items()}
        return {name: code for name, code in codes.items() if code is not None}

    def stop_all(self) -> None:
        """SIGTERM every process, SIGKILL what still runs after STOP_TIMEOUT_S; reaps them all."""
        procs, self.procs = list(self.procs.values()), {}
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

    def tails(self, limit: int = 2000) -> str:
        """The end of every process's log, for failure reports."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            data = path.read_bytes()[-limit:].decode("utf-8", "replace")
            parts.append(f"----- {path.name} (last {limit} bytes) -----\n{data}")
        return "\n".join(parts)
