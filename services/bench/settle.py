"""When a run is over: every outbox drained and every consumer group caught up, several times running.

An empty outbox alone is not the end: the relay may have published a DeductStock that the
inventory consumer has not applied yet, and stopping the services then would strand it.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from services.bench import counters
from services.platform.progress import GroupProgress
from services.platform.settings import Settings
from services.runtime import SERVICES, build_specs, consumer_groups

POLL_S = 0.5


async def _caught_up(progress: list[GroupProgress]) -> bool:
    for group in progress:
        ends, committed = await group.ends(), await group.committed()
        if any((committed.get(tp) or 0) < end for tp, end in ends.items()):
            return False
    return True


async def wait_quiet(
    engine: AsyncEngine, settings: Settings, timeout_s: float, quiet_polls: int = 3
) -> bool:
    """Until no due outbox row and no consumer lag on `quiet_polls` polls in a row; False on timeout."""
    groups = consumer_groups(build_specs(settings, SERVICES))
    progress = [GroupProgress(settings.kafka, group, topics) for group, topics in groups.values()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    quiet = 0
    try:
        while quiet < quiet_polls:
            drained = await counters.unsent_outbox_rows(engine) == 0
            quiet = quiet + 1 if drained and await _caught_up(progress) else 0
            if loop.time() > deadline:
                return False
            await asyncio.sleep(POLL_S)
    finally:
        for group in progress:
            await group.close()
    return True
