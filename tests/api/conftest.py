"""API-tier fixtures: the handler tier's migrated database and engine, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.http.app import create_http_app
from services.platform.settings import Settings
from tests.api import Shopper
from tests.handlers.conftest import cart, engine, handler_settings, migrated_url

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
