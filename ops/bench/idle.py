"""`checkout-saga bench-idle`: what the whole stack costs with no checkout in flight.

The same stack as `bench` (embedded PostgreSQL and Tansu, every service and a relay as OS
processes), left alone until the consumers have gone idle (KAFKA__IDLE_AFTER_S), then its CPU
is read over a window: per group, in percent of one core.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from contracts.topics import all_topics
from ops.bench.probes import Probes, find_groups
from ops.bench.stack import Payer, Stack, new_fleet, owned_servers, scratch_dir
from services.platform.db import create_engine
from services.platform.topics import ensure_topics

READY_TIMEOUT_S = 120.0


def idle_report(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, object]:
    """CPU per group over the window in percent of one core; the bench's own is left out."""
    percent = {k: round((after[k] - before[k]) / seconds * 100, 2) for k in after if k != "bench"}
    return {
        "window_s": seconds,
        "cpu_percent_of_a_core": percent,
        "total_percent_of_a_core": round(sum(percent.values()), 2),
    }


async def _measure(
    stack: Stack, seconds: float, quiet_s: float, log: Callable[[str], None]
) -> dict[str, object]:
    assert stack.fleet is not None
    await ensure_topics(stack.settings.kafka, all_topics())
    engine = create_engine(stack.settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            backend = int(await conn.scalar(text("SELECT pg_backend_pid()")) or 0)
        await asyncio.to_thread(stack.fleet.start_all, READY_TIMEOUT_S)
        probes = Probes(find_groups(stack, backend))
        log(f"stack up; letting it go idle for {quiet_s:g} s, then reading CPU for {seconds:g} s")
        await asyncio.sleep(quiet_s)
        before = probes.cpu_now()
        await asyncio.sleep(seconds)
        after = probes.cpu_now()
    finally:
        stack.fleet.stop_all()
        await engine.dispose()
    return {**idle_report(before, after, seconds), "quiet_before_s": quiet_s}


def run_idle(seconds: float, processes: int, log: Callable[[str], None]) -> str:
    """Start an owned stack, measure it idle, stop it; the JSON report."""
    with scratch_dir() as scratch, owned_servers(Path(scratch)) as (settings, infra):
        fleet = new_fleet(settings, Payer(), processes, Path(scratch) / "logs")
        # The product's own deadline poll, not the load bench's faster one.
        fleet.env.pop("CHECKOUT_SAGA__TIMEOUT_POLL_INTERVAL_S", None)
        stack = Stack(settings, owned=True, infra=infra, fleet=fleet)
        quiet_s = settings.kafka.idle_after_s + 5
        report = asyncio.run(_measure(stack, seconds, quiet_s, log))
    report["processes"] = processes
    return json.dumps(report, indent=2)
