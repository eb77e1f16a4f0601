"""The cart summary cache in Redis: GET /cart's rendered answer per buyer, invalidated by writes.

Two keys per buyer, hash-tagged so that both live in one cluster slot:
  checkout:cart:{<digest>}:gen    a generation, bumped after every write's commit
  checkout:cart:{<digest>}:body   "<generation> <version> <rules> <body>", the body as GET renders it
and one for the shop:
  checkout:cart:rules             the pricing rules' generation, bumped after a change of
                                  promotions, shipping methods or tax rates (every cart's totals)

The race this closes: a reader loads the old cart from PostgreSQL, a writer commits and
invalidates, then the reader stores the old cart and later reads serve it. Here a reader reads
the generation *before* it reads PostgreSQL and tags its entry with it; a writer bumps the
generation only *after* its commit; an entry is a hit only while its tag is the current
generation. A reader whose snapshot missed a commit read the generation before that commit's
bump, so its entry is never a hit once the write has answered. It stores through a Lua script
that writes only while its generation is still current (atomic in Redis), so a late reader does
not replace a newer entry either. A read that starts after a write's response sees the bumped
generation, so it never serves an entry older than the write.
Generations outlive entries (twice the TTL, renewed by every store and bump), so a generation
never falls back to an older value while an entry of it exists; a reader slower than the TTL
does not store. The rules generation works the same way for every cart at once: read before
PostgreSQL (in the same round trip as the buyer's keys), bumped after the rules' commit, and an
entry of an older rules generation is no hit.

Redis down or slow: every call has a short timeout; a failure backs off for retry_after_s
(reads go to PostgreSQL meanwhile), is logged once per outage and counted. How a write that
could not invalidate is kept from serving a stale cart: see cache_health.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from services.cart.cache_health import CacheHealth
from services.platform.settings import CartApiSettings

log = logging.getLogger("checkout_saga.cart.cache")

PREFIX = "checkout:cart:"
RULES_KEY = f"{PREFIX}rules"
_FAILURES = (RedisError, OSError, TimeoutError)

# KEYS: generation, body. ARGV: the generation the reader saw, the entry, TTL ms, generation TTL ms.
_STORE = """
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[1], current, 'PX', ARGV[4])
return 1
"""

# KEYS: generation, body. ARGV: generation TTL ms.
_BUMP = """
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class CachedCart:
    """A cart as GET /cart answers it: its version (the ETag) and the rendered JSON body."""

    version: int
    body: bytes
    # How long the body stays right without any write, from when it was loaded (a promotion
    # starts or ends then); None: as long as the cache keeps entries.
    fresh_for_s: float | None = field(default=None, compare=False)


Loader = Callable[[], Awaitable[CachedCart]]
"""Reads the cart from PostgreSQL; raises (e.g. no cart) to answer without caching."""


class CartCache(Protocol):
    """What the cart API needs of a cache."""

    async def read(self, buyer_id: str, load: Loader) -> CachedCart:
        """The buyer's cart, cached or loaded (and then stored)."""
        ...

    async def invalidate(self, buyer_id: str) -> None:
        """Forget the buyer's cart; call after a write's transaction ended."""
        ...

    async def invalidate_rules(self) -> None:
        """Forget every cart's totals: the pricing rules changed (call after their commit)."""
        ...

    def counts(self) -> dict[str, float]:
        """Hits, misses, errors, ... since the process started."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class NoCache:
    """No cache configured: every read loads from PostgreSQL."""

    async def read(self, buyer_id: str, load: Loader) -> CachedCart:
        """Load the cart."""
        return await load()

    async def invalidate(self, buyer_id: str) -> None:
        """Nothing to forget."""

    async def invalidate_rules(self) -> None:
        """Nothing to forget."""

    def counts(self) -> dict[str, float]:
        """Nothing counted."""
        return {}

    async def close(self) -> None:
        """Nothing to release."""


def keys(buyer_id: str) -> tuple[str, str]:
    """The generation and body keys of a buyer (a digest: buyer ids may hold any character)."""
    digest = hashlib.sha256(buyer_id.encode()).hexdigest()[:32]
    return f"{PREFIX}{{{digest}}}:gen", f"{PREFIX}{{{digest}}}:body"


def encode(generation: int, cart: CachedCart, rules: int = 0) -> bytes:
    """An entry as stored: generation, version, rules generation, body."""
    return f"{generation} {cart.version} {rules} ".encode() + cart.body


def decode(entry: bytes | str | None, generation: int, rules: int = 0) -> CachedCart | None:
    """The cart of an entry stored at these generations; None when absent, older or malformed."""
    if entry is None:
        return None
    raw = entry.encode() if isinstance(entry, str) else entry
    parts = raw.split(b" ", 3)
    if len(parts) != 4 or not all(part.isdigit() for part in parts[:3]):
        return None
    if int(parts[0]) != generation or int(parts[2]) != rules:
        return None
    return CachedCart(int(parts[1]), parts[3])


@dataclass
class _Counts:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bypassed: int = 0
    stores_refused: int = 0


@dataclass
class RedisCartCache:
    """The cache over a redis-py asyncio client (Redis or Valkey)."""

    client: Redis
    ttl_s: float
    retry_after_s: float
    clock: Callable[[], float] = time.monotonic
    _counts: _Counts = field(default_factory=_Counts)

    def __post_init__(self) -> None:
        self._health = CacheHealth(self.ttl_s, self.retry_after_s)
        self._store_script = self.client.register_script(_STORE)
        self._bump_script = self.client.register_script(_BUMP)

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)

    async def read(self, buyer_id: str, load: Loader) -> CachedCart:
        """Serve the entry of the current generation, else load and store it if still current."""
        await self._settle_owed()
        if not self._health.may_read(buyer_id, self.clock()):
            self._counts.bypassed += 1
            return await load()
        try:
            generation, rules, entry = await self._generations(buyer_id)
        except _FAILURES as exc:
            self._failed(exc)
            return await load()
        self._succeeded()
        cached = decode(entry, generation, rules)
        if cached is not None:
            self._counts.hits += 1
            return cached
        self._counts.misses += 1
        started = self.clock()
        fresh = await load()
        await self._store(buyer_id, generation, fresh, started, rules)
        return fresh

    async def _generations(self, buyer_id: str) -> tuple[int, int, bytes | None]:
        """The buyer's and the rules' generations and the entry, in one round trip."""
        # Two commands rather than one MGET: the rules key lives in another cluster slot.
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(RULES_KEY)
            pipe.mget(list(keys(buyer_id)))
            rules_raw, (generation_raw, entry) = await pipe.execute()
        return int(generation_raw or 0), int(rules_raw or 0), entry

    async def _store(
        self, buyer_id: str, generation: int, cart: CachedCart, started: float, rules: int
    ) -> None:
        now = self.clock()
        # A reader slower than the TTL might outlive its generation key: it does not store.
        if now - started >= self.ttl_s or not self._health.may_read(buyer_id, now):
            return
        # An entry never outlives its body: a promotion that starts or ends expires it then.
        life_s = self.ttl_s if cart.fresh_for_s is None else min(self.ttl_s, cart.fresh_for_s)
        life_ms = int((life_s - (now - started)) * 1000)
        if life_ms <= 0:
            return
        try:
            stored = await self._store_script(
                keys=list(keys(buyer_id)),
                args=[
                    str(generation),
                    encode(generation, cart, rules),
                    life_ms,
                    2 * self._ttl_ms,
                ],
            )
        except _FAILURES as exc:
            self._failed(exc)
            return
        if not stored:
            self._counts.stores_refused += 1

    async def invalidate(self, buyer_id: str) -> None:
        """Bump the buyer's generation; when Redis cannot be reached, owe it (cache_health)."""
        if not self._health.usable(self.clock()):
            self._health.owe(buyer_id, self.clock())
            return
        try:
            await self._bump(buyer_id)
        except _FAILURES as exc:
            self._health.owe(buyer_id, self.clock())
            self._failed(exc)
            return
        self._succeeded()
        await self._settle_owed()

    async def invalidate_rules(self) -> None:
        """Bump the rules generation: every cached cart is stale at once.

        Unlike a buyer's invalidation this is not owed when Redis is down: the rules change
        rarely, entries expire within the TTL, and checkout re-prices against the rules anyway.
        """
        try:
            await self.client.incr(RULES_KEY)
        except _FAILURES as exc:
            self._failed(exc)
            return
        self._succeeded()

    async def _bump(self, buyer_id: str) -> None:
        await self._bump_script(keys=list(keys(buyer_id)), args=[2 * self._ttl_ms])

    async def _settle_owed(self) -> None:
        """Deliver invalidations that failed earlier, once Redis may be tried again."""
        now = self.clock()
        if not self._health.usable(now):
            return
        for buyer_id in self._health.owed(now):
            try:
                await self._bump(buyer_id)
            except _FAILURES as exc:
                self._failed(exc)
                return
            self._health.delivered([buyer_id])
            self._succeeded()

    def _failed(self, exc: BaseException) -> None:
        self._counts.errors += 1
        if self._health.failed(self.clock()):
            log.warning(
                "cart cache unreachable (%s: %s); reading carts from PostgreSQL",
                type(exc).__name__,
                exc,
            )

    def _succeeded(self) -> None:
        if self._health.succeeded():
            log.warning("cart cache reachable again")

    def counts(self) -> dict[str, float]:
        """Hits, misses, errors (failed Redis calls), bypassed reads, refused (stale) stores."""
        c = self._counts
        return {
            "hits": c.hits,
            "misses": c.misses,
            "errors": c.errors,
            "bypassed": c.bypassed,
            "stores_refused": c.stores_refused,
        }

    async def close(self) -> None:
        """Close the client and its pool."""
        await self.client.aclose()


def redis_client(url: str, timeout_s: float, max_connections: int) -> Redis:
    """A client that fails fast: short timeouts and no retries."""
    # A blocking pool waits up to timeout_s for a free connection; a plain one refuses at once
    # when all are busy, which under load would look like an outage.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)


def cart_cache(settings: CartApiSettings) -> CartCache:
    """The configured cache: Redis when CHECKOUT_CART__CACHE_URL is set, else none."""
    if settings.cache_url is None:
        return NoCache()
    client = redis_client(
        settings.cache_url.get_secret_value(),
        settings.cache_timeout_s,
        settings.cache_max_connections,
    )
    return RedisCartCache(client, settings.cache_ttl_s, settings.cache_retry_after_s)
