"""Integration fixtures: the real services in-process on PostgreSQL and a Kafka-protocol broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from ops.admin.app import create_admin_app
from services.platform import migrate
from services.platform.db import create_engine
from services.platform.settings import KafkaSettings, RelaySettings, SagaSettings, Settings
from services.platform.telemetry import Telemetry
from services.runtime import Runtime
from tests.support import infra
from tests.support.payer import ScriptedPayer
from tests.support.stack import Admin, Stack

PAYMENT_TIMEOUT_S = 5.0
"""Short enough for the timeout tests, long enough that a slow CI still pays in time."""


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    """The session database with every migration applied."""
    migrate.upgrade(database_url)
    return database_url


@pytest.fixture(scope="session")
def integration_settings(migrated_database_url: str, kafka_bootstrap: str) -> Settings:
    """Settings of the in-process stack: short timeouts, few partitions."""
    return Settings(
        database_url=SecretStr(migrated_database_url),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=4),
        saga=SagaSettings(payment_timeout_s=PAYMENT_TIMEOUT_S, timeout_poll_interval_s=0.2),
        relay=RelaySettings(poll_interval_s=0.5),
    )


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span the stack's services finish, kept in memory."""
    return InMemorySpanExporter()


@pytest.fixture(scope="session")
def telemetry(spans: InMemorySpanExporter) -> Telemetry:
    """The stack's metrics and tracer (both runtimes share them, as one process would)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return Telemetry(tracer_provider=provider)


@pytest.fixture(scope="session")
async def stack(integration_settings: Settings, telemetry: Telemetry) -> AsyncIterator[Stack]:
    """saga + orders + cart in one runtime, inventory in another (so a test can stop it)."""
    main = Runtime(integration_settings, ["saga", "orders", "cart"], telemetry=telemetry)
    inventory = Runtime(integration_settings, ["inventory"], telemetry=telemetry)
    await main.start()
    await inventory.start()
    engine = create_engine(integration_settings, pool_size=5)
    stack = Stack(integration_settings, engine, main, inventory, telemetry)
    try:
        yield stack
    finally:
        await stack.stop_inventory()
        await main.stop()
        await engine.dispose()


@pytest.fixture(scope="session")
async def payer(stack: Stack, kafka_bootstrap: str) -> AsyncIterator[ScriptedPayer]:
    """The payment provider of these tests (the simulator is not running here)."""
    async with ScriptedPayer(kafka_bootstrap) as scripted:
        yield scripted


@pytest.fixture(scope="session")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain Kafka producer, as an upstream service would use."""
    async with infra.plain_producer(kafka_bootstrap) as producer:
        yield producer


@pytest.fixture
def admin_client(stack: Stack) -> Admin:
    """Opens an admin API client on its own (no runtime), with the given settings changes."""

    @asynccontextmanager
    async def open_client(**changes: object) -> AsyncIterator[httpx.AsyncClient]:
        settings = stack.settings.model_copy(update=changes)
        engine = create_engine(settings, pool_size=1)
        app = create_admin_app(settings, engine)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
                yield client
        finally:
            await app.state.admin.cart_cache.close()
            await app.state.admin.telemetry.close()
            await engine.dispose()

    return open_client
