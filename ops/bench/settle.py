"""When a run is over: every outbox drained and every consumer group caught up, several times running.

An empty outbox alone is not the end: the relay may have published a DeductStock that the
inventory consumer has not applied yet, and stopping the services then would strand it.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from ops.bench import counters
from services.platform.progress import GroupProgress
from services.platform.settings import Settings
from services.runtime import SERVICES, build_specs, consumer_groups

POLL_S = 0.5


async def lagging(progress: list[GroupProgress]) -> list[str]:
    """Partitions whose group has not committed up to the end: 'group topic[p] committed/end'."""
    behind = []
    for group in progress:
        ends, committed = await group.ends(), await group.committed()
        for tp, end in ends.items():
            done = max(committed.get(tp) or 0, 0)  # -1: never committed
            if done < end:
                behind.append(f"{group.group} {tp.topic}[{tp.partition}] {done}/{end}")
    return behind


async def wait_quiet(
    engine: AsyncEngine, settings: Settings, timeout_s: float, quiet_polls: int = 3
) -> list[str]:
    """Until no due outbox row and no consumer lag on `quiet_polls` polls in a row.

    Returns what was still owed at the timeout (empty when the run settled).
    """
    groups = consumer_groups(build_specs(settings, SERVICES))
    progress = [GroupProgress(settings.kafka, group, topics) for group, topics in groups.values()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    quiet = 0
    try:
        while quiet < quiet_polls:
            unsent = await counters.unsent_outbox_rows(engine)
            owed = [f"{unsent} unsent outbox rows"] if unsent else []
            owed += await lagging(progress)
            quiet = 0 if owed else quiet + 1
            if owed and loop.time() > deadline:
                return owed
            await asyncio.sleep(POLL_S)
    finally:
        for group in progress:
            await group.close()
    return []
