"""A seeded chaos monkey: SIGKILLs a random product process now and then, and restarts it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tests.support.processes import Fleet


@dataclass
class ChaosMonkey:
    """Kills one working process at a time (kill -9), restarts it after a short, random pause."""

    fleet: Fleet
    rng: random.Random
    interval_s: tuple[float, float] = (0.4, 1.4)
    down_s: tuple[float, float] = (0.1, 1.2)
    kills: Counter[str] = field(default_factory=Counter)
    restarts: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop is set; a killed process is always restarted, even when stopping."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(*self.interval_s))
            if stop.is_set():
                return
            name = self.rng.choice(sorted(self.fleet.commands))
            await self._until_settled(name, stop)
            if stop.is_set():
                return
            self.fleet.kill9(name)
            self.kills[name] += 1
            await asyncio.sleep(self.rng.uniform(*self.down_s))
            self.fleet.start(name)
            self.restarts += 1

    async def _until_settled(self, name: str, stop: asyncio.Event) -> None:
        """Wait until every instance of the process's service is working, or stop is set.

        A process still starting has nothing in flight, so a kill there would prove little;
        and a group whose last kill is still being rebalanced would only stall for longer.
        """
        service = name.rpartition("-")[0] or name
        while not stop.is_set() and not all(
            map(self.fleet.is_ready, self.fleet.instances(service))
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    @contextlib.asynccontextmanager
    async def at_work(self) -> AsyncIterator[None]:
        """The monkey runs while the block does; every process it killed is started again."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    @property
    def total_kills(self) -> int:
        """Kills of any process."""
        return sum(self.kills.values())

    def summary(self) -> str:
        """One line for the test report."""
        per = ", ".join(f"{n}={k}" for n, k in sorted(self.kills.items()))
        return f"{self.total_kills} kills, {self.restarts} restarts ({per})"
