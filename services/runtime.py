"""Assembles services into one process: consumers on one broker, relay, background loops.

Imports every service, so it lives outside the platform package.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import importlib
import json
import logging
from collections.abc import Callable, Sequence
from functools import partial

from aiokafka import AIOKafkaProducer
from faststream import FastStream
from faststream.specification import AsyncAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import ALL_MESSAGES
from contracts.topics import all_topics, topic_for
from services.asyncapi import WireAsyncAPI, document_dead_letters, document_topic
from services.platform.batch_loop import BatchLoop
from services.platform.broker import group_id, make_broker, producer_kwargs
from services.platform.consumer import Consumer, Route
from services.platform.db import connect_args, create_engine
from services.platform.relay import Relay
from services.platform.service import ServiceSpec
from services.platform.settings import KafkaSettings, Settings
from services.platform.telemetry import Telemetry, scope
from services.platform.telemetry.probes import ConsumerLagProbe
from services.platform.topics import ensure_topics

log = logging.getLogger("checkout_saga.runtime")

SERVICES = ("saga", "inventory", "orders", "cart", "payments")
"""Every service a process can run, in the order they are started."""


_APPS = {
    "saga": "saga.app",
    "inventory": "services.inventory.app",
    "orders": "services.orders.app",
    "cart": "services.cart.app",
    "payments": "services.payments.app",
}


def _factory(name: str) -> Callable[[Settings], ServiceSpec]:
    # Imported by name, so a process running one service loads only that service.
    factory: Callable[[Settings], ServiceSpec] = importlib.import_module(_APPS[name]).create_service
    return factory


def build_specs(settings: Settings, names: Sequence[str]) -> list[ServiceSpec]:
    """The named services' specs (unknown names raise ValueError)."""
    unknown = [n for n in names if n not in _APPS]
    if unknown:
        raise ValueError(f"unknown service(s): {', '.join(unknown)}; choose from {SERVICES}")
    return [_factory(n)(settings) for n in names]


class Runtime:
    """One process's services: subscribers, relay and background loops, started and stopped."""

    def __init__(
        self,
        settings: Settings,
        services: Sequence[str],
        *,
        relay: bool = True,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self.specs = build_specs(settings, services)
        self.engine: AsyncEngine = create_engine(settings)
        self.broker = make_broker(settings.kafka)
        self.consumers: dict[str, Consumer] = {}
        self.relay: Relay | None = None
        self._with_relay = relay
        self._producer: AIOKafkaProducer | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lag: ConsumerLagProbe | None = None
        self.routes: dict[str, dict[str, Route]] = {}
        self.loops: list[BatchLoop] = []
        self._register()
        self.telemetry.metrics.relays.add(self._relay_counts)

    def _register(self) -> None:
        for spec in self.specs:
            consumer = Consumer(
                self.engine, spec.mailbox, spec.name, self.settings.consumer, self.telemetry
            )
            self.consumers[spec.name] = consumer
            if spec.subscriptions:
                routes = {
                    topic_for(sub.message_cls): Route(
                        sub.message_cls.message_type, sub.handler, sub.hooks
                    )
                    for sub in spec.subscriptions
                }
                self.routes[spec.name] = routes
                self.loops.append(BatchLoop(self.settings.kafka, consumer, routes))
        # The wire is the public API: document every message type, whoever publishes it
        # (CheckoutStarted comes from upstream services or the cart API).
        for cls in sorted(ALL_MESSAGES, key=lambda c: c.message_type):
            document_topic(self.broker, cls)
        document_dead_letters(self.broker)

    async def start(self) -> None:
        """Create topics, start the relay and background loops, then the consumers."""
        await ensure_topics(self.settings.kafka, all_topics())
        await self.start_background()
        await self.start_consuming()

    async def start_consuming(self) -> None:
        """Join every service's consumer group and start applying batches."""
        for loop in self.loops:
            await loop.start()

    async def stop_consuming(self) -> None:
        """Finish the batches in hand, commit their offsets and leave the groups."""
        for loop in self.loops:
            await loop.stop()

    async def start_background(self) -> None:
        """The relay and every service's background loop (the broker is started by the caller)."""
        self._stop.clear()
        if self._with_relay:
            self._producer = AIOKafkaProducer(**producer_kwargs(self.settings.kafka))
            await self._producer.start()
            self.relay = Relay(
                self.engine,
                self._producer,
                [s.mailbox.schema for s in self.specs],
                self.settings.relay,
                connect_args=connect_args(self.settings.database_tls),
            )
            self._spawn(self.relay.run(self._stop), "relay")
        for spec in self.specs:
            for loop in spec.background:
                self._spawn(loop(self.engine, self._stop), f"{spec.name}-background")
        await self._watch_lag()

    def _relay_counts(self) -> dict[str, float]:
        return dataclasses.asdict(self.relay.stats) if self.relay is not None else {}

    @property
    def _lag_probe_name(self) -> str:
        return "consumer_lag:" + "+".join(spec.name for spec in self.specs)

    async def _watch_lag(self) -> None:
        """Report the lag of this process's consumer groups when metrics are scraped."""
        groups = consumer_groups(self.specs)
        if groups:
            self._lag = ConsumerLagProbe(self.settings.kafka, groups)
            replaced = self.telemetry.add_probe(self._lag_probe_name, self._lag)
            if replaced is not None:
                await replaced.close()

    def _spawn(self, coro: object, name: str) -> None:
        # Background loops (the saga's timeout poller) count into this runtime's metrics.
        context = contextvars.copy_context()
        context.run(scope.bind, self.telemetry.metrics)
        task: asyncio.Task[None] = asyncio.create_task(
            coro,  # type: ignore[arg-type]
            name=name,
            context=context,
        )
        task.add_done_callback(_log_crash)
        self._tasks.append(task)

    async def stop(self) -> None:
        """Stop consuming first, then the loops and the relay, then the engine."""
        await self.stop_consuming()
        await self.stop_background()
        await self.engine.dispose()

    async def stop_background(self) -> None:
        """Let the relay and loops finish their current pass, then close the producer."""
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        self._tasks.clear()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._lag is not None:
            await self.telemetry.remove_probe(self._lag_probe_name, self._lag)
            self._lag = None

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def consumer_groups(specs: Sequence[ServiceSpec]) -> dict[str, tuple[str, list[str]]]:
    """service -> (its consumer group, the topics it consumes), for services that consume."""
    return {
        spec.name: (group_id(spec.name), [topic_for(s.message_cls) for s in spec.subscriptions])
        for spec in specs
        if spec.subscriptions
    }


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=task.exception())


_DESCRIPTION = (
    "Checkout saga commands and events on Kafka. Every message is a UTF-8 JSON envelope "
    "(message_id, message_type, correlation_id = order id, causation_id, occurred_at, "
    "schema_version, payload) on the topic of its type, keyed by the correlation id (the "
    "Kafka message binding states each key), with headers that mirror the envelope (each "
    "message states them; header values are UTF-8 strings). message_type is fixed per topic: "
    "consumers key on it. Schema evolution: fields added after version 1 (marketplace vendors, "
    "the checkout policy, rejected lines, group ids) are optional, and producers leave them "
    "off while they hold their defaults, so schema_version stays 1; checkout_group_completed "
    "is a new topic. Rejected messages go to checkout.dead_letter with dlq_* headers saying why."
)


def specification(runtime: Runtime) -> AsyncAPI:
    """The AsyncAPI document of a runtime's broker (every topic its services publish)."""
    return WireAsyncAPI(
        runtime.broker, title="checkout-saga", version="1.0.0", description=_DESCRIPTION
    )


def asyncapi_json(settings: Settings) -> str:
    """The AsyncAPI document of the whole product, as committed in docs/asyncapi.json."""
    # Fixed server address, so the committed document does not depend on the environment.
    pinned = settings.model_copy(update={"kafka": KafkaSettings()})
    runtime = Runtime(pinned, SERVICES)
    return (
        json.dumps(
            specification(runtime).to_specification().to_jsonable(), indent=2, sort_keys=True
        )
        + "\n"
    )


def create_app(
    settings: Settings,
    services: Sequence[str] = SERVICES,
    *,
    relay: bool = True,
    telemetry: Telemetry | None = None,
) -> FastStream:
    """A FastStream application running the named services (and the relay) in this process."""
    return app_for(Runtime(settings, services, relay=relay, telemetry=telemetry))


def app_for(runtime: Runtime) -> FastStream:
    """A FastStream application that runs this runtime (topics first, the relay and loops after)."""
    settings = runtime.settings
    app = FastStream(runtime.broker, specification=specification(runtime))
    # FastStream starts the broker itself; the runtime starts everything around it.
    app.on_startup(partial(ensure_topics, settings.kafka, all_topics()))
    app.after_startup(runtime.start_background)
    app.after_startup(runtime.start_consuming)
    app.on_shutdown(runtime.stop_consuming)
    app.on_shutdown(runtime.stop_background)
    app.after_shutdown(runtime.engine.dispose)
    return app
