"""Serving the admin API with uvicorn: next to a runtime (`dev`) or on its own (`admin`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from services.admin.app import create_admin_app
from services.platform.db import create_engine
from services.platform.settings import Settings
from services.runtime import Runtime


def admin_url(settings: Settings) -> str:
    """Where the admin API listens."""
    return f"http://{settings.admin.http_host}:{settings.admin.http_port}"


async def serve_admin(
    settings: Settings, runtime: Runtime | None = None, stop: asyncio.Event | None = None
) -> None:
    """Serve the admin API on settings.admin.http_host:http_port until stopped (or Ctrl-C).

    With a runtime it uses the runtime's engine and metrics; without one it creates and
    disposes an engine of its own. Whoever passes `stop` keeps the process's signals.
    """
    engine = runtime.engine if runtime is not None else create_engine(settings, pool_size=2)
    app = create_admin_app(settings, engine, runtime)
    config = uvicorn.Config(
        app,
        host=settings.admin.http_host,
        port=settings.admin.http_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config) if stop is None else _QuietSignals(config)
    watcher = asyncio.create_task(_exit_on(stop, server)) if stop is not None else None
    try:
        await server.serve()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if runtime is None:  # else both belong to the runtime
            await app.state.admin.telemetry.close()
            await engine.dispose()


class _QuietSignals(uvicorn.Server):
    """A uvicorn server that installs no signal handlers: its owner stops it by an event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the process's signal handlers alone."""
        yield


async def _exit_on(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
