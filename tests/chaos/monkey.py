"""A seeded chaos monkey: SIGKILLs a random product process now and then, and restarts it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field

from tests.support.processes import Fleet


@dataclass
class ChaosMonkey:
    """Kills one process at a time (kill -9), restarts it after a short, random pause."""

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
            self.fleet.kill9(name)
            self.kills[name] += 1
            await asyncio.sleep(self.rng.uniform(*self.down_s))
            self.fleet.start(name)
            self.restarts += 1

    @property
    def total_kills(self) -> int:
        """Kills of any process."""
        return sum(self.kills.values())

    def summary(self) -> str:
        """One line for the test report."""
        per = ", ".join(f"{n}={k}" for n, k in sorted(self.kills.items()))
        return f"{self.total_kills} kills, {self.restarts} restarts ({per})"
