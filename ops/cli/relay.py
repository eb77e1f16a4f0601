"""`checkout-saga run relay`: a process that only relays every service's outbox, and stop signals.

Builds the service specs for their schemas only; it subscribes to nothing and runs no service loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from aiokafka import AIOKafkaProducer

from contracts.topics import all_topics
from services.platform.broker import producer_kwargs
from services.platform.db import connect_args, create_engine
from services.platform.relay import Relay
from services.platform.settings import Settings
from services.platform.telemetry import Telemetry
from services.platform.topics import ensure_topics
from services.runtime import SERVICES, build_specs

log = logging.getLogger("checkout_saga.cli")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM recorded as a stop request, in sync code and inside an event loop alike.

    A plain signal handler, not loop.add_signal_handler: the request must survive the moments
    before and after the loop runs (starting or stopping embedded servers), where the default
    handlers would interrupt a half-done start or kill the process with children left behind.
    """

    def __init__(self) -> None:
        self.requested = False
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> StopSignals:
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self.requested = True
        if self._event is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    def event(self) -> asyncio.Event:
        """An event of the running loop, set on a signal (or already set if one came earlier)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if self.requested:
            self._event.set()
        return self._event


async def _relay_until(settings: Settings, stop: asyncio.Event, admin_port: int | None) -> None:
    schemas = [spec.mailbox.schema for spec in build_specs(settings, SERVICES)]
    engine = create_engine(settings)
    producer = AIOKafkaProducer(**producer_kwargs(settings.kafka))
    tls = connect_args(settings.database_tls)
    relay = Relay(engine, producer, schemas, settings.relay, connect_args=tls)
    admin = _serve_admin(settings, relay, stop, admin_port) if admin_port is not None else None
    try:
        await ensure_topics(settings.kafka, all_topics())
        await producer.start()
        log.info("relay-only process publishing the outboxes of %s", ", ".join(schemas))
        await relay.run(stop)
    finally:
        stop.set()
        if admin is not None:
            await admin
        await producer.stop()
        await engine.dispose()


def _serve_admin(
    settings: Settings, relay: Relay, stop: asyncio.Event, port: int
) -> asyncio.Task[bool]:
    """Health probes, the relay's counters and the outbox gauges on the admin API's port."""
    from ops.admin.serve import on_port, serve_admin

    telemetry = Telemetry()
    telemetry.metrics.relays.add(lambda: dataclasses.asdict(relay.stats))
    return asyncio.create_task(serve_admin(on_port(settings, port), stop=stop, telemetry=telemetry))


def run_relay(settings: Settings, admin_port: int | None = None) -> None:
    """Relay every service's outbox until SIGINT/SIGTERM; safe next to other relays."""

    async def main(signals: StopSignals) -> None:
        await _relay_until(settings, signals.event(), admin_port)

    with StopSignals() as signals:
        asyncio.run(main(signals))
