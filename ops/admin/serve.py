"""Serving the admin API with uvicorn: next to a runtime (`dev`) or on its own (`admin`)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping

from faststream import FastStream

from ops.admin.app import create_admin_app
from ops.cli import stack
from services.platform.db import create_engine
from services.platform.http_server import Listen, serve_asgi
from services.platform.settings import Settings
from services.platform.telemetry import Telemetry
from services.runtime import Runtime


def admin_url(settings: Settings) -> str:
    """Where the admin API listens."""
    return f"http://{settings.admin.http_host}:{settings.admin.http_port}"


def standalone_settings(
    settings: Settings, port: int | None = None, environ: Mapping[str, str] = os.environ
) -> Settings:
    """The settings, pointed at a running `checkout-saga dev` for what the environment leaves out."""
    return on_port(stack.resolve(settings, environ=environ).settings, port)


def on_port(settings: Settings, port: int | None) -> Settings:
    """The settings with the admin API on this port (unchanged when None)."""
    if port is None:
        return settings
    admin = settings.admin.model_copy(update={"http_port": port})
    return settings.model_copy(update={"admin": admin})


async def serve_admin(
    settings: Settings,
    runtime: Runtime | None = None,
    stop: asyncio.Event | None = None,
    *,
    announce: bool = False,
    telemetry: Telemetry | None = None,
) -> bool:
    """Serve the admin API on settings.admin.http_host:http_port until stopped (or Ctrl-C).

    With a runtime it uses the runtime's engine and metrics; without one it creates and
    disposes an engine of its own, and exposes `telemetry`'s metrics when given. Whoever
    passes `stop` keeps the process's signals. False when it could not listen.
    """
    engine = runtime.engine if runtime is not None else create_engine(settings, pool_size=2)
    app = create_admin_app(settings, engine, runtime, telemetry=telemetry)
    if announce:
        print(f"admin API: {admin_url(settings)}/admin/v1 (docs at /docs)", file=sys.stderr)
    listen = Listen("admin API", settings.admin.http_host, settings.admin.http_port)
    try:
        return await serve_asgi(app, listen, stop)
    finally:
        await app.state.admin.cart_cache.close()  # the app's own, runtime or not
        if runtime is None:  # else both belong to the runtime
            await app.state.admin.telemetry.close()
            await engine.dispose()


def serve_alongside(app: FastStream, settings: Settings, runtime: Runtime) -> None:
    """Serve the admin API while `app` runs: health probes and this process's own /metrics.

    A process of `checkout-saga run` holds the only registry with its consumers' and relay's
    counters, so scraping it is the only way to see them. A port that is taken is logged and
    the services run on.
    """
    stop = asyncio.Event()
    served: list[asyncio.Task[bool]] = []

    async def start() -> None:
        task = asyncio.create_task(serve_admin(settings, runtime, stop), name="admin-http")
        served.append(task)

    async def finish() -> None:
        stop.set()
        await asyncio.gather(*served)

    app.after_startup(start)
    app.on_shutdown(finish)
