"""Waiting for a chaos run to settle: as long as the product moves, never by the clock alone.

The machine is shared and its speed varies several-fold, so a fixed deadline for "every saga
final" fails slow runs that were fine. A wait here ends when its probe reports nothing, or
when no service applied or wrote a message for a whole stall window: a stuck product.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime import SERVICES
from tests.chaos.invariants import rows


def _progress_sql() -> str:
    parts = [
        f"(SELECT max(received_at) FROM {s}.inbox) AS {s}_applied, "
        f"(SELECT max(id) FROM {s}.outbox) AS {s}_written, "
        f"(SELECT count(*) FROM {s}.outbox WHERE sent_at IS NULL) AS {s}_unsent"
        for s in SERVICES
    ]
    return "SELECT " + ", ".join(parts)


_PROGRESS = _progress_sql()
"""The last message each service applied and wrote, and what its outbox still holds (indexed)."""


async def progress(db: AsyncEngine) -> tuple[object, ...]:
    """A fingerprint of the product's work: it changes whenever any service moves."""
    return tuple((await rows(db, _PROGRESS))[0].values())


async def until_settled(
    probe: Callable[[], Awaitable[list[str]]],
    db: AsyncEngine,
    stall_s: float,
    interval_s: float = 0.5,
) -> list[str]:
    """Re-run a probe until it reports nothing or the product stalled for stall_s; its report."""
    seen, moved = None, time.monotonic()
    while True:
        problems = await probe()
        if not problems:
            return []
        now = await progress(db)
        if now != seen:
            seen, moved = now, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            return [*problems, f"nothing moved in the product for {stall_s:.0f}s"]
        await asyncio.sleep(interval_s)
