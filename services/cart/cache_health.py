"""When the cart cache may be used: backoff after a failure, and carts whose invalidation was lost.

Pure (times are passed in, monotonic seconds), so the rules are tested without Redis.

A write whose invalidation could not reach Redis leaves an entry there that may be stale. This
process remembers the buyer and reads that buyer's cart from PostgreSQL until the invalidation
is delivered, or until twice the TTL has passed since the failure: an entry lives one TTL, and
the second covers a store that was already on its way when the write failed (a reader stores
only while the generation it read is current, and a remembered buyer's reads do not store).
Past `max_pending` buyers the set is dropped and every read bypasses the cache for as long
instead, so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class CacheHealth:
    """The cache's state in one process: usable or backing off, and the invalidations owed."""

    ttl_s: float
    retry_after_s: float
    max_pending: int = 10_000
    _pending: dict[str, float] = field(default_factory=dict)
    _all_suspect_until: float = 0.0
    _down_until: float = 0.0
    _down: bool = False

    def usable(self, now: float) -> bool:
        """False while backing off after a failure: do not even try Redis."""
        return now >= self._down_until

    def may_read(self, buyer_id: str, now: float) -> bool:
        """True when a cached entry of this buyer can be trusted (and a fresh one stored)."""
        return self.usable(now) and not self._suspect(buyer_id, now)

    def _suspect(self, buyer_id: str, now: float) -> bool:
        if now < self._all_suspect_until:
            return True
        until = self._pending.get(buyer_id)
        return until is not None and now < until

    def failed(self, now: float) -> bool:
        """Redis failed: back off; True when this starts an outage (log it once)."""
        self._down_until = now + self.retry_after_s
        started, self._down = not self._down, True
        return started

    def succeeded(self) -> bool:
        """Redis answered; True when this ends an outage."""
        ended, self._down = self._down, False
        return ended

    def owe(self, buyer_id: str, now: float) -> None:
        """An invalidation of this buyer's entry could not be delivered."""
        self._prune(now)
        if len(self._pending) >= self.max_pending and buyer_id not in self._pending:
            self._pending.clear()
            self._all_suspect_until = now + self._owed_for
            return
        self._pending[buyer_id] = now + self._owed_for

    def owed(self, now: float) -> list[str]:
        """Buyers whose invalidation is still owed (and could still matter)."""
        self._prune(now)
        return list(self._pending)

    def delivered(self, buyer_ids: list[str]) -> None:
        """These owed invalidations reached Redis."""
        for buyer_id in buyer_ids:
            self._pending.pop(buyer_id, None)

    @property
    def _owed_for(self) -> float:
        return 2 * self.ttl_s

    def _prune(self, now: float) -> None:
        # Past its deadline an owed invalidation no longer matters: the entry has expired.
        for buyer_id in [b for b, until in self._pending.items() if until <= now]:
            del self._pending[buyer_id]
