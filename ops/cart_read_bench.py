"""GET /api/v1/cart under load, with or without the cart cache, on embedded servers.

`python -m ops.cart_read_bench --carts 200 --concurrency 32 --requests 4000 --cache on`
starts embedded PostgreSQL (and embedded Valkey with `--cache on`), migrates, fills N carts
through the API, warms every cart once, then sends R reads of random carts from C concurrent
clients through the app in this process (httpx's ASGI transport: no sockets, so the figures are
the API's own cost). Prints one JSON line: requests/s, p50/p99 in ms and the cache's counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from contextlib import ExitStack
from decimal import Decimal
from statistics import quantiles

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart import catalog
from services.cart.cache import CartCache, NoCache, RedisCartCache, redis_client
from services.cart.http.app import create_http_app
from services.platform import migrate
from services.platform.db import create_engine
from services.platform.embedded import (
    EmbeddedPostgres,
    EmbeddedValkey,
    create_database,
    run_blocking,
    url_with_database,
)
from services.platform.settings import Settings

LINES_PER_CART = 5


async def _drive(
    settings: Settings, cache: CartCache, args: argparse.Namespace
) -> dict[str, object]:
    engine = create_engine(settings, pool_size=10)
    app = create_http_app(settings, engine, cache)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://b/api/v1") as http:
            buyers = await _fill(engine, http, args.carts)
            for buyer in buyers:  # warm: the first read of each cart is a miss
                await http.get("/cart", headers={"X-Buyer-Id": buyer})
            return await _hammer(http, buyers, args.concurrency, args.requests, args.seed)
    finally:
        await cache.close()
        await engine.dispose()


async def _fill(engine: AsyncEngine, http: httpx.AsyncClient, carts: int) -> list[str]:
    skus = [f"BENCH-{i}" for i in range(LINES_PER_CART)]
    async with engine.begin() as conn:
        for sku in skus:
            await catalog.set_offer(conn, sku, Decimal("9.99"), "EUR")
    buyers = [f"bench-buyer-{i}" for i in range(carts)]
    for buyer in buyers:
        for sku in skus:
            response = await http.post(
                "/cart/items", json={"sku": sku, "qty": 2}, headers={"X-Buyer-Id": buyer}
            )
            response.raise_for_status()
    return buyers


async def _hammer(
    http: httpx.AsyncClient, buyers: list[str], concurrency: int, requests: int, seed: int
) -> dict[str, object]:
    rng = random.Random(seed)
    picks = [rng.choice(buyers) for _ in range(requests)]
    latencies: list[float] = []
    cursor = iter(picks)

    async def client() -> None:
        for buyer in cursor:
            started = time.perf_counter()
            response = await http.get("/cart", headers={"X-Buyer-Id": buyer})
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cuts = quantiles(latencies, n=100)
    return {
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
    }


def main() -> None:
    """Parse the options, start the servers, run, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--carts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--cache", choices=["on", "off"], default="on")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with ExitStack() as servers:
        postgres = servers.enter_context(EmbeddedPostgres())
        run_blocking(create_database(postgres.url, "bench"))
        url = url_with_database(postgres.url, "bench")
        migrate.upgrade(url)
        settings = Settings(database_url=SecretStr(url))
        cache: CartCache = NoCache()
        if args.cache == "on":
            valkey = servers.enter_context(EmbeddedValkey())
            cart = settings.cart
            client = redis_client(valkey.url, cart.cache_timeout_s, cart.cache_max_connections)
            cache = RedisCartCache(client, cart.cache_ttl_s, cart.cache_retry_after_s)
        result = asyncio.run(_drive(settings, cache, args))
        result |= {"cache": args.cache, "counts": cache.counts()}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
