"""Serving an ASGI app with uvicorn: on its own (Ctrl-C stops it) or next to a runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger("checkout_saga.http")


@dataclass(frozen=True, slots=True)
class Listen:
    """Where and how one HTTP API listens."""

    name: str
    host: str
    port: int
    access_log: bool = False


async def serve_asgi(app: ASGIApp, listen: Listen, stop: asyncio.Event | None = None) -> bool:
    """Serve app until Ctrl-C or, when given, until `stop` is set; False if it could not listen.

    Whoever passes `stop` keeps the process's signal handlers, and a port that is taken only
    logs an error: an HTTP API next to the services must not take the services down with it.
    Alone (no `stop`), a port that is taken ends the process, as uvicorn does.
    """
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_config=None,  # through the process's logging (JSON when CHECKOUT_LOG_FORMAT=json)
        access_log=listen.access_log,
        lifespan="off",
    )
    server = uvicorn.Server(config) if stop is None else _OwnedServer(config)
    watcher = asyncio.create_task(_stop_when(stop, server)) if stop is not None else None
    try:
        await server.serve()
    except SystemExit:  # uvicorn's answer to a port it cannot bind
        if stop is None:
            raise
        log.error("%s could not listen on %s:%s", listen.name, listen.host, listen.port)
        return False
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return True


class _OwnedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner, who stops it by an event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handlers."""
        yield


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
