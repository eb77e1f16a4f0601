"""The coupon guess limit: failed code attempts counted per buyer and per client address.

A fixed window per subject ("buyer:<id>", "client:<address>"): once a subject's failures in the
current window reach its limit, POST /cart/coupons is refused (429) until the window ends. The
count is written in its own transaction, so the refusal that rolls the request back still counts.
A fixed window lets a guesser spend up to twice the limit around a window's edge; the limit
slows guessing by orders of magnitude either way, which is its purpose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.tables import coupon_attempts


class TooManyGuessesError(Exception):
    """Too many failed codes from this buyer or address: try again after `retry_after_s`."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many invalid codes; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class GuessLimit:
    """The failures each subject may make per window."""

    limits: Mapping[str, int]
    window_s: float

    def window_start(self, now: datetime) -> datetime:
        """The start of the window `now` falls in (windows are aligned on the epoch)."""
        seconds = math.floor(now.timestamp() / self.window_s) * self.window_s
        return datetime.fromtimestamp(seconds, UTC)

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the current window ends."""
        end = self.window_start(now) + timedelta(seconds=self.window_s)
        return max(1, math.ceil((end - now).total_seconds()))


async def check(engine: AsyncEngine, limit: GuessLimit, now: datetime) -> None:
    """Refuse when any subject spent its failures in the current window."""
    start = limit.window_start(now)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(coupon_attempts.c.subject, coupon_attempts.c.failures).where(
                coupon_attempts.c.subject.in_(sorted(limit.limits)),
                coupon_attempts.c.window_start == start,
            )
        )
        spent = {row.subject: row.failures for row in rows}
    if any(spent.get(subject, 0) >= cap for subject, cap in limit.limits.items()):
        raise TooManyGuessesError(limit.retry_after(now))


async def record_failure(engine: AsyncEngine, limit: GuessLimit, now: datetime) -> None:
    """Count one failed code for every subject, and drop their windows that ended."""
    start = limit.window_start(now)
    subjects = sorted(limit.limits)
    async with engine.begin() as conn:
        insert = pg_insert(coupon_attempts).values(
            [{"subject": s, "window_start": start, "failures": 1} for s in subjects]
        )
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=["subject", "window_start"],
                set_={"failures": coupon_attempts.c.failures + 1},
            )
        )
        await conn.execute(
            delete(coupon_attempts).where(
                coupon_attempts.c.subject.in_(subjects), coupon_attempts.c.window_start < start
            )
        )
