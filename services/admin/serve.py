"""Serving the admin API with uvicorn: next to a runtime (`dev`) or on its own (`admin`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from services.admin.app import create_admin_app
from services.cli_admin import DATABASE_ENV, DEFAULT_DATA_DIR, dev_state
from services.platform.db import create_engine
from services.platform.settings import Settings
from services.runtime import Runtime

KAFKA_ENV = "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS"

log = logging.getLogger("checkout_saga.admin")


def admin_url(settings: Settings) -> str:
    """Where the admin API listens."""
    return f"http://{settings.admin.http_host}:{settings.admin.http_port}"


def standalone_settings(
    settings: Settings, port: int | None = None, environ: Mapping[str, str] = os.environ
) -> Settings:
    """The settings, pointed at a running `checkout-saga dev` for what the environment leaves out."""
    state = dev_state(DEFAULT_DATA_DIR) or {}
    update: dict[str, object] = {}
    if not environ.get(DATABASE_ENV) and state.get("database_url"):
        update["database_url"] = SecretStr(str(state["database_url"]))
    if not environ.get(KAFKA_ENV) and state.get("bootstrap_servers"):
        kafka = {"bootstrap_servers": str(state["bootstrap_servers"])}
        update["kafka"] = settings.kafka.model_copy(update=kafka)
    if port is not None:
        update["admin"] = settings.admin.model_copy(update={"http_port": port})
    return settings.model_copy(update=update)


async def serve_admin(
    settings: Settings,
    runtime: Runtime | None = None,
    stop: asyncio.Event | None = None,
    *,
    announce: bool = False,
) -> None:
    """Serve the admin API on settings.admin.http_host:http_port until stopped (or Ctrl-C).

    With a runtime it uses the runtime's engine and metrics; without one it creates and
    disposes an engine of its own. Whoever passes `stop` keeps the process's signals.
    """
    engine = runtime.engine if runtime is not None else create_engine(settings, pool_size=2)
    app = create_admin_app(settings, engine, runtime)
    server = _server(app, settings, owned=stop is not None)
    watcher = asyncio.create_task(_exit_on(stop, server)) if stop is not None else None
    if announce:
        print(f"admin API: {admin_url(settings)}/admin/v1 (docs at /docs)", file=sys.stderr)
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits when it cannot listen; next to a runtime, the services keep running.
        if stop is None:
            raise
        log.error("admin API could not listen on %s", admin_url(settings))
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if runtime is None:  # else both belong to the runtime
            await app.state.admin.telemetry.close()
            await engine.dispose()


def _server(app: FastAPI, settings: Settings, *, owned: bool) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=settings.admin.http_host,
        port=settings.admin.http_port,
        log_level="warning",
        log_config=None,  # through the process's logging (JSON when CHECKOUT_LOG_FORMAT=json)
        access_log=False,
        lifespan="off",
    )
    return _QuietSignals(config) if owned else uvicorn.Server(config)


class _QuietSignals(uvicorn.Server):
    """A uvicorn server that installs no signal handlers: its owner stops it by an event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the process's signal handlers alone."""
        yield


async def _exit_on(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
