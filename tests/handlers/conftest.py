"""Handler-tier fixtures: the session database migrated once, one engine, a driver per service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart import app as cart_app
from services.inventory import app as inventory_app
from services.orders import app as orders_app
from services.payments import app as payments_app
from services.platform import migrate
from services.platform.db import create_engine
from services.platform.settings import ConsumerSettings, PaymentSimulatorSettings, Settings
from tests.handlers import ServiceDriver


@pytest.fixture(scope="session")
async def migrated_url(database_url: str) -> str:
    """The session database with every migration applied (Alembic runs in its own thread)."""
    await migrate.upgrade_async(database_url)
    return database_url


@pytest.fixture(scope="session")
def handler_settings(migrated_url: str) -> Settings:
    """Settings of the handler tests: quick retries so a transient conflict costs little."""
    return Settings(
        database_url=SecretStr(migrated_url),
        database_pool_size=25,
        # Every batch split into slots, however small: the tests exercise the concurrent path.
        consumer=ConsumerSettings(
            retry_attempts=10, retry_base_delay_s=0.01, parallel_min_records=1
        ),
    )


@pytest.fixture(scope="session")
async def engine(handler_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """One engine for the session, disposed at its end."""
    engine = create_engine(handler_settings)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def inventory(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The inventory service's consumer."""
    return ServiceDriver.of(
        engine, inventory_app.create_service(handler_settings), handler_settings
    )


@pytest.fixture
def orders(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The orders service's consumer."""
    return ServiceDriver.of(engine, orders_app.create_service(handler_settings), handler_settings)


@pytest.fixture
def cart(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The cart service's consumer."""
    return ServiceDriver.of(engine, cart_app.create_service(handler_settings), handler_settings)


@pytest.fixture
def payments_with(engine: AsyncEngine, handler_settings: Settings) -> Callable[..., ServiceDriver]:
    """A payment simulator consumer with the given rules (e.g. decline_above=100)."""

    def make(**rules: Any) -> ServiceDriver:
        settings = handler_settings.model_copy(
            update={"payments": PaymentSimulatorSettings(**rules)}
        )
        return ServiceDriver.of(engine, payments_app.create_service(settings), settings)

    return make


@pytest.fixture
def payments(payments_with: Callable[..., ServiceDriver]) -> ServiceDriver:
    """The payment simulator with default rules: every charge completes, once, at once."""
    return payments_with()
