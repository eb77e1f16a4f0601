"""Process and event-loop helpers shared by the embedded servers; imports no service."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import time
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import psutil  # type: ignore[import-untyped, unused-ignore]

T = TypeVar("T")


class EmbeddedStartError(RuntimeError):
    """An embedded server did not come up; the message carries its log tail."""


class EmbeddedServer:
    """A server started by `start` and stopped by `stop`; `with` does both."""

    def start(self) -> Self:
        """Start the server and wait until it answers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server (nothing when it is not running)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private loop in a worker thread.

    A thread, because callers may be sync code running inside an event loop (pytest fixtures,
    the CLI), where asyncio.run would refuse to start.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now; another process may still take it before we do."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def is_alive(pid: int) -> bool:
    """True while pid runs; a zombie counts as gone (it only waits for its parent to reap it)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Poll until pid is gone; False if it still runs after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kill(pid: int) -> None:
    """SIGKILL pid if it still exists."""
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).kill()


def owns_listener(pid: int, port: int) -> bool:
    """True when process pid itself holds a listening TCP socket on port."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)


def tail(path: Path, limit: int = 4000) -> str:
    """The last limit bytes of a log file, decoded leniently."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return data[-limit:].decode("utf-8", "replace")
