"""API-tier fixtures: the handler tier's migrated database and engine, HTTP clients, a Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.cache import RedisCartCache, redis_client
from services.cart.http.app import create_http_app
from services.platform.settings import Settings
from tests.api import Shopper
from tests.api.shop_rules import Shop, shop_rules
from tests.handlers.conftest import cart, engine, handler_settings, migrated_url
from tests.support.infra import redis_server

__all__ = ["cart", "engine", "handler_settings", "migrated_url"]


@pytest.fixture
async def client(
    engine: AsyncEngine, handler_settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the cart API app (in process, no sockets), at /api/v1."""
    app = create_http_app(handler_settings, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cart.test/api/v1") as http:
        yield http


@pytest.fixture
def shopper(client: httpx.AsyncClient) -> Shopper:
    """A fresh buyer."""
    return Shopper(client)


@pytest.fixture
def two_shoppers(client: httpx.AsyncClient) -> tuple[Shopper, Shopper]:
    """Two fresh buyers of one client."""
    return Shopper(client), Shopper(client)


@pytest.fixture
async def shop(engine: AsyncEngine) -> AsyncIterator[Shop]:
    """The shop's pricing rules a test puts in place; all removed when it ends."""
    async with shop_rules(engine) as rules:
        yield rules


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis-protocol server for the cart cache: the env's, a container, or embedded Valkey."""
    with redis_server() as url:
        yield url


@pytest.fixture
async def cart_cache(redis_url: str) -> AsyncIterator[RedisCartCache]:
    """A cart cache on that server; timeouts generous enough for a busy test machine."""
    cache = RedisCartCache(redis_client(redis_url, 2.0, 20), ttl_s=60, retry_after_s=1.0)
    try:
        yield cache
    finally:
        await cache.close()


@pytest.fixture
async def cached_client(
    engine: AsyncEngine, handler_settings: Settings, cart_cache: RedisCartCache
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the cart API app serving GET /cart through the cart cache."""
    app = create_http_app(handler_settings, engine, cart_cache)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cart.test/api/v1") as http:
        yield http
