"""E2E fixtures: the product as separate OS processes, on a broker and database of this tier only.

Its own broker, because the in-process integration stack consumes the same topics with the same
consumer groups on the session broker and would take these tests' messages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.topics import all_topics
from services.platform import migrate
from services.platform.embedded import EmbeddedKafka, create_topics, run_blocking
from tests.support import infra

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0
READY_MARKERS = ("FastStream app started successfully", "relay-only process publishing")
PROCESSES = {
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
    """The product's processes: started, killed, restarted and stopped by name, logs to files."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._log_from: dict[str, int] = {}
        self.started: list[int] = []

    def log(self, name: str) -> Path:
        """The log file of a process (both streams; appended across restarts)."""
        return self.log_dir / f"{name}.log"

    def start(self, name: str) -> None:
        """Launch `python -m services.cli run ...` for one entry of PROCESSES."""
        path = self.log(name)
        self._log_from[name] = path.stat().st_size if path.exists() else 0
        with path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "run", *PROCESSES[name]],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        self.started.append(proc.pid)

    def wait_ready(self, names: list[str], timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until each process logged that it is consuming (or relaying); fail if one exits."""
        deadline = time.monotonic() + timeout_s
        waiting = set(names)
        while waiting:
            for name in list(waiting):
                code = self.procs[name].poll()
                if code is not None:
                    raise AssertionError(f"{name} exited with {code}\n{self.tails()}")
                if self._is_ready(name):
                    waiting.discard(name)
            if waiting and time.monotonic() > deadline:
                raise AssertionError(f"not ready after {timeout_s}s: {waiting}\n{self.tails()}")
            time.sleep(0.2)

    def _is_ready(self, name: str) -> bool:
        with self.log(name).open("rb") as log:
            log.seek(self._log_from[name])
            text = log.read().decode("utf-8", "replace")
        return any(marker in text for marker in READY_MARKERS)

    def kill9(self, name: str) -> int:
        """SIGKILL a process, as a crash would; returns its exit code."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        return proc.wait(STOP_TIMEOUT_S)

    def stop_all(self) -> None:
        """SIGTERM every process, SIGKILL whatever is still running after STOP_TIMEOUT_S."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def leftovers(self) -> list[int]:
        """Pids of every process this fleet ever started that still runs."""
        return [pid for pid in self.started if _alive(pid)]

    def tails(self, limit: int = 3000) -> str:
        """The end of every process's log, for failure reports."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            data = path.read_bytes()[-limit:].decode("utf-8", "replace")
            parts.append(f"----- {path.name} (last {limit} bytes) -----\n{data}")
        return "\n".join(parts)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="session")
def e2e_bootstrap() -> Iterator[str]:
    """A Tansu broker of this tier only, with every topic created up front."""
    with EmbeddedKafka() as broker:
        run_blocking(create_topics(broker.bootstrap, all_topics(), PARTITIONS))
        yield broker.bootstrap


@pytest.fixture(scope="session")
def e2e_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database of this tier on the session's PostgreSQL server."""
    with infra.fresh_database(pg_server_url) as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="module")
def fleet(
    e2e_bootstrap: str, e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Every service in its own process plus a relay process; all gone afterwards."""
    env = {
        **clean_environ(),
        "PYTHONUNBUFFERED": "1",
        "CHECKOUT_DATABASE_URL": e2e_database_url,
        "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS": e2e_bootstrap,
        "CHECKOUT_KAFKA__TOPIC_PARTITIONS": str(PARTITIONS),
        # Tansu holds each group join for about half the session timeout (see DESIGN §7).
        "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS": "2000",
        "CHECKOUT_PAYMENTS__DECLINE_ABOVE": "500",
        "CHECKOUT_SAGA__PAYMENT_TIMEOUT_S": "20",
    }
    fleet = Fleet(env, tmp_path_factory.mktemp("e2e-logs"))
    try:
        for name in PROCESSES:
            fleet.start(name)
        fleet.wait_ready(list(PROCESSES))
        yield fleet
    finally:
        fleet.stop_all()
    left = fleet.leftovers()
    assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="session")
async def e2e_db(e2e_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the tier's database, to look at what the processes did."""
    engine = create_async_engine(e2e_database_url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def e2e_producer(e2e_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain Kafka producer, as an upstream service in any language would have."""
    producer = AIOKafkaProducer(bootstrap_servers=e2e_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, object, None]:
    """On a failure, attach the tails of the processes' logs to the report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    running = getattr(item, "funcargs", {}).get("fleet")
    if report.failed and isinstance(running, Fleet):
        report.sections.append(("process logs", running.tails()))
