"""A pricing rule changed through the admin API reaches a cart served from the cart cache at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from ops.admin.app import create_admin_app
from services.cart.cache import RedisCartCache
from services.cart.tables import promotion_uses, promotions
from services.platform.settings import CartApiSettings, Settings
from tests.api import Shopper, offer


@pytest.fixture
async def admin(
    engine: AsyncEngine, handler_settings: Settings, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The admin API on the test database, invalidating the cart cache on the test Redis."""
    cart = CartApiSettings(cache_url=SecretStr(redis_url), cache_timeout_s=2.0)
    app = create_admin_app(handler_settings.model_copy(update={"cart": cart}), engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            yield client
    finally:
        await app.state.admin.cart_cache.close()
        await app.state.admin.telemetry.close()


@pytest.fixture
async def promotion_id(engine: AsyncEngine) -> AsyncIterator[str]:
    """A promotion id of this test's, deleted after it (promotions are the whole shop's)."""
    made = f"promo-{uuid.uuid4().hex[:10]}"
    yield made
    async with engine.begin() as conn:
        await conn.execute(delete(promotion_uses).where(promotion_uses.c.promotion_id == made))
        await conn.execute(delete(promotions).where(promotions.c.promotion_id == made))


async def test_a_new_promotion_and_its_deactivation_show_in_the_next_cached_read(
    cached_client: httpx.AsyncClient,
    cart_cache: RedisCartCache,
    engine: AsyncEngine,
    admin: httpx.AsyncClient,
    promotion_id: str,
) -> None:
    brand = f"brand-{uuid.uuid4().hex[:8]}"
    shopper = Shopper(cached_client)
    await shopper.add(await offer(engine, price="20.00", brand=brand), 2)
    await shopper.cart()
    hits = cart_cache.counts()["hits"]
    assert (await shopper.cart()).json()["totals"]["discounts"] == []
    assert cart_cache.counts()["hits"] == hits + 1  # served from the cache

    body = {"kind": "percentage", "value": "10", "stacking": "stackable"}
    put = await admin.put(
        f"/admin/v1/promotions/{promotion_id}", json={**body, "target": {"brands": [brand]}}
    )
    assert put.status_code == 200, put.text

    totals = (await shopper.cart()).json()["totals"]
    assert totals["discounts"] == [{"promotion_id": promotion_id, "code": None, "amount": "4.00"}]
    assert Decimal(totals["grand_total"]) == Decimal("36.00")

    assert (await admin.post(f"/admin/v1/promotions/{promotion_id}/deactivate")).is_success
    assert (await shopper.cart()).json()["totals"]["discounts"] == []
