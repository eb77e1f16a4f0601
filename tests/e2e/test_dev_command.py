"""Smoke test of `checkout-saga dev` on a bare machine: no URLs given, embedded servers, Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest
from aiokafka import AIOKafkaProducer

from ops.cli.demo import DEMO_CATALOG
from ops.devstack import READY_LINE
from services.platform.embedded import run_blocking
from tests.e2e.test_processes import checkout_json
from tests.support.processes import REPO_ROOT, clean_environ

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 90.0
CONFIRM_TIMEOUT_S = 60.0


class DevProcess:
    """`python -m ops.cli dev` as a child: stdout lines collected by a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.stderr_path = data_dir.parent / "dev.stderr.log"
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", "dev", "--data-dir", str(data_dir)],
                cwd=REPO_ROOT,
                env={**clean_environ(), "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float) -> None:
        """Until a stdout line contains text; fail with the output if dev exits or times out."""
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from dev (exit {self.proc.poll()})\n{self}")
            time.sleep(0.1)

    def field(self, name: str) -> str:
        """The value of a `name:  value  (comment)` line of the summary."""
        line = next(line for line in self.lines if line.startswith(f"{name}:"))
        return line.split(":", 1)[1].split()[0]

    def servers(self) -> list[int]:
        """Pids of the embedded servers: dev's children and the postmaster of its data dir."""
        pids = {child.pid for child in psutil.Process(self.proc.pid).children(recursive=True)}
        postmaster = self.data_dir / "pg" / "postmaster.pid"
        pids.add(int(postmaster.read_text().splitlines()[0]))
        return sorted(pids)

    def __str__(self) -> str:
        stderr = self.stderr_path.read_bytes()[-4000:].decode("utf-8", "replace")
        return "--- stdout ---\n" + "\n".join(self.lines) + f"\n--- stderr tail ---\n{stderr}"


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevProcess]:
    """A running `dev`, killed (with its servers) if the test did not stop it."""
    running = DevProcess(tmp_path / "state")
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            # A failed test: take everything down hard, servers first (dev would orphan them).
            with contextlib.suppress(OSError, psutil.Error, IndexError):
                for pid in running.servers():
                    psutil.Process(pid).kill()
            running.proc.kill()
            running.proc.wait()


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def _publish(bootstrap: str, order_id: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        value = checkout_json(order_id, DEMO_CATALOG[0], 1, "49.90")
        await producer.send_and_wait("checkout.checkout_started", value, key=order_id.encode())
    finally:
        await producer.stop()


def _command(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Another command pointed at the dev stack by its data dir only (no URL in the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "--data-dir", str(data_dir), *args],
        cwd=REPO_ROOT,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dev_runs_a_checkout_on_a_bare_machine_and_stops_clean(dev: DevProcess) -> None:
    dev.wait_for(READY_LINE, READY_TIMEOUT_S)
    bootstrap, database_url = dev.field("kafka"), dev.field("database")
    state = json.loads((dev.data_dir / "dev.json").read_text())
    assert state["database_url"] == database_url  # no password: printed unmasked
    assert state["bootstrap_servers"] == bootstrap
    servers = dev.servers()
    console = httpx.get(dev.field("console"), timeout=30)
    assert console.status_code == 200, console.text
    assert "<h1>Flow</h1>" in console.text
    assert 'data-count="Confirmed"' in console.text

    order_id = str(uuid.uuid4())
    run_blocking(_publish(bootstrap, order_id))
    deadline = time.monotonic() + CONFIRM_TIMEOUT_S
    while "Confirmed" not in (shown := _command(dev.data_dir, "saga", "show", order_id).stdout):
        assert time.monotonic() < deadline, f"not confirmed: {shown}\n{dev}"
        time.sleep(0.5)
    # The other commands found that stack by its data dir alone, and say so.
    letters = _command(dev.data_dir, "dlq", "list")
    assert letters.returncode == 0, letters.stderr
    assert letters.stdout.strip().endswith("dead letter(s)"), letters.stdout
    assert f"the `checkout-saga dev` in {dev.data_dir}" in letters.stderr, letters.stderr
    assert f"kafka {bootstrap}" in letters.stderr, letters.stderr

    dev.proc.send_signal(signal.SIGINT)
    assert dev.proc.wait(60) == 0, str(dev)
    assert [pid for pid in servers if _alive(pid)] == []
    assert not (dev.data_dir / "dev.json").exists()
    assert "stopped" in dev.lines[-1]
