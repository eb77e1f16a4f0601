"""The abandon job: idle active carts become abandoned and `cart.abandoned` is sent, once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import timedelta

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CartAbandoned
from services.cart.abandon import abandon_idle_carts, abandon_loop, run_pass
from services.cart.cache import RedisCartCache
from services.cart.tables import carts, idempotency_keys
from services.platform.settings import CartApiSettings
from tests.api import Shopper, offer, sent, types

HOUR = timedelta(hours=1)
LANES = 8


async def _idle(engine: AsyncEngine, cart_id: str, for_: str = "2 hours") -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(carts)
            .where(carts.c.cart_id == uuid.UUID(cart_id))
            .values(last_activity_at=text(f"now() - interval '{for_}'"))
        )


async def _status(engine: AsyncEngine, cart_id: str) -> str:
    async with engine.connect() as conn:
        status = await conn.scalar(
            select(carts.c.status).where(carts.c.cart_id == uuid.UUID(cart_id))
        )
    return str(status)


async def _expire_keys(engine: AsyncEngine, buyer_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.buyer_id == buyer_id)
            .values(created_at=text("now() - interval '8 days'"))
        )


async def _run(work: Awaitable[None]) -> None:
    await work


async def _abandon_all(engine: AsyncEngine) -> int:
    total = 0
    while True:
        async with engine.begin() as conn:
            done = len(await abandon_idle_carts(conn, HOUR, 100, LANES))
        total += done
        if done == 0:
            return total


async def test_an_idle_cart_is_abandoned_and_announced(
    two_shoppers: tuple[Shopper, Shopper], engine: AsyncEngine
) -> None:
    idle, busy = two_shoppers
    sku = await offer(engine)
    idle_cart = (await idle.add(sku, 2)).json()
    busy_cart = (await busy.add(sku, 1)).json()
    await _idle(engine, idle_cart["cart_id"])
    await _idle(engine, busy_cart["cart_id"], "30 minutes")

    assert await _abandon_all(engine) >= 1

    assert await _status(engine, idle_cart["cart_id"]) == "abandoned"
    assert await _status(engine, busy_cart["cart_id"]) == "active"
    assert (await idle.cart()).status_code == 404
    events = await sent(engine, idle_cart["cart_id"])
    assert types(events)[-1] == "cart.abandoned"
    abandoned = events[-1].message
    assert isinstance(abandoned, CartAbandoned)
    assert (abandoned.buyer_id, abandoned.item_count) == (idle.buyer_id, 1)
    # Abandoned once: a second pass finds nothing more of it.
    await _abandon_all(engine)
    assert types(await sent(engine, idle_cart["cart_id"])).count("cart.abandoned") == 1


async def test_activity_keeps_a_cart_alive(shopper: Shopper, engine: AsyncEngine) -> None:
    sku = await offer(engine)
    cart = (await shopper.add(sku)).json()
    await _idle(engine, cart["cart_id"])

    await shopper.add(sku)  # the buyer came back
    await _abandon_all(engine)

    assert await _status(engine, cart["cart_id"]) == "active"


async def test_a_cart_being_changed_is_skipped(shopper: Shopper, engine: AsyncEngine) -> None:
    cart = (await shopper.add(await offer(engine))).json()
    await _idle(engine, cart["cart_id"])

    async with engine.connect() as holder:
        await holder.execute(
            select(carts.c.cart_id)
            .where(carts.c.cart_id == uuid.UUID(cart["cart_id"]))
            .with_for_update()
        )
        async with engine.begin() as conn:
            # SKIP LOCKED: the pass neither waits for the locked cart nor abandons it.
            await asyncio.wait_for(abandon_idle_carts(conn, HOUR, 100, LANES), timeout=5)
        assert await _status(engine, cart["cart_id"]) == "active"
        await holder.rollback()

    await _abandon_all(engine)
    assert await _status(engine, cart["cart_id"]) == "abandoned"


async def test_the_background_loop_abandons_and_purges_expired_keys(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine)
    cart = (await shopper.add(sku, 1, Idempotency_Key="loop")).json()
    await _idle(engine, cart["cart_id"])
    await _expire_keys(engine, shopper.buyer_id)
    settings = CartApiSettings(abandon_after_s=HOUR.total_seconds(), abandon_poll_interval_s=0.05)
    stop, loop = asyncio.Event(), abandon_loop(settings, LANES)

    task = asyncio.create_task(_run(loop(engine, stop)))
    for _ in range(100):
        if await _status(engine, cart["cart_id"]) == "abandoned":
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)

    assert await _status(engine, cart["cart_id"]) == "abandoned"
    async with engine.connect() as conn:
        keys = await conn.scalar(
            select(idempotency_keys.c.key).where(idempotency_keys.c.buyer_id == shopper.buyer_id)
        )
    assert keys is None


async def test_one_pass_drains_every_batch(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    sku = await offer(engine)
    cart_ids = [(await Shopper(client).add(sku)).json()["cart_id"] for _ in range(3)]
    for cart_id in cart_ids:
        await _idle(engine, cart_id)
    settings = CartApiSettings(abandon_after_s=HOUR.total_seconds(), abandon_batch_size=1)

    assert await run_pass(engine, settings, LANES) >= 3

    assert {await _status(engine, cart_id) for cart_id in cart_ids} == {"abandoned"}


async def test_an_abandoned_cart_is_no_longer_served_from_the_cache(
    cached_client: httpx.AsyncClient, cart_cache: RedisCartCache, engine: AsyncEngine
) -> None:
    shopper = Shopper(cached_client)
    cart = (await shopper.add(await offer(engine))).json()
    assert (await shopper.cart()).status_code == 200  # now cached
    await _idle(engine, cart["cart_id"])
    settings = CartApiSettings(abandon_after_s=HOUR.total_seconds())

    await run_pass(engine, settings, LANES, cart_cache)

    assert await _status(engine, cart["cart_id"]) == "abandoned"
    assert (await shopper.cart()).status_code == 404
