"""The abandon job: active carts idle past the TTL become `abandoned` and `cart.abandoned` is sent.

Each pass claims a batch of idle carts with `FOR UPDATE SKIP LOCKED`, so several cart
processes can run the job at once and a cart a buyer is changing right now is skipped (its
change makes it active again anyway). After each batch commits, the abandoned carts' cached
copies are invalidated, so GET /cart stops serving them at once. The same loop purges expired
idempotency keys and guest sessions long over (guests.purge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.cart import events, guests, idempotency
from services.cart.cache import CartCache, cart_cache
from services.cart.domain import CartStatus
from services.cart.tables import cart_items, carts
from services.platform.service import BackgroundLoop
from services.platform.settings import CartApiSettings

log = logging.getLogger("checkout_saga.cart.abandon")


async def abandon_idle_carts(
    conn: AsyncConnection, idle_for: timedelta, limit: int, lanes: int
) -> list[str]:
    """Abandon up to `limit` carts idle for longer than `idle_for`; returns their buyers."""
    idle = (
        select(carts.c.cart_id, carts.c.buyer_id, carts.c.last_activity_at)
        .where(
            carts.c.status == CartStatus.ACTIVE,
            carts.c.last_activity_at < func.now() - idle_for,
        )
        .order_by(carts.c.last_activity_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (await conn.execute(idle)).all()
    if not claimed:
        return []
    ids = [row.cart_id for row in claimed]
    await conn.execute(
        update(carts)
        .where(carts.c.cart_id.in_(ids))
        .values(status=CartStatus.ABANDONED, version=carts.c.version + 1, updated_at=func.now())
    )
    counts = await _line_counts(conn, ids)
    abandoned = [
        events.abandoned(r.cart_id, r.buyer_id, r.last_activity_at, counts.get(r.cart_id, 0))
        for r in claimed
    ]
    await events.emit(conn, lanes, abandoned)
    return [row.buyer_id for row in claimed]


async def _line_counts(conn: AsyncConnection, cart_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    lines = await conn.execute(
        select(cart_items.c.cart_id, func.count().label("n"))
        .where(cart_items.c.cart_id.in_(cart_ids))
        .group_by(cart_items.c.cart_id)
    )
    return {row.cart_id: row.n for row in lines}


async def run_pass(
    engine: AsyncEngine, settings: CartApiSettings, lanes: int, cache: CartCache | None = None
) -> int:
    """One pass: abandon idle carts until none is left, purge what expired; returns carts."""
    total = 0
    while True:
        async with engine.begin() as conn:
            buyers = await abandon_idle_carts(
                conn,
                timedelta(seconds=settings.abandon_after_s),
                settings.abandon_batch_size,
                lanes,
            )
        if cache is not None:
            for buyer_id in buyers:
                await cache.invalidate(buyer_id)
        total += len(buyers)
        if len(buyers) < settings.abandon_batch_size:
            break
    async with engine.begin() as conn:
        await idempotency.purge_expired(conn, timedelta(seconds=settings.idempotency_ttl_s))
        purged = await guests.purge(conn, timedelta(seconds=settings.guest_purge_after_s))
    if purged:
        log.info("purged %d guest session(s) over for %s s", purged, settings.guest_purge_after_s)
    return total


def abandon_loop(settings: CartApiSettings, lanes: int) -> BackgroundLoop:
    """The background loop the runtime runs for the cart service."""

    async def run(engine: AsyncEngine, stop: asyncio.Event) -> None:
        cache = cart_cache(settings)
        try:
            while not stop.is_set():
                try:
                    abandoned = await run_pass(engine, settings, lanes, cache)
                    if abandoned:
                        log.info("abandoned %d idle cart(s)", abandoned)
                except Exception:
                    log.exception("abandon pass failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.abandon_poll_interval_s)
        finally:
            await cache.close()

    return run
