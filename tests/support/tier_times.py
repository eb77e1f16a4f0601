"""Wall time per test tier (the folder under tests/), for the summary at the end of a run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def tier_of(nodeid: str) -> str:
    """`tests/chaos/test_chaos.py::test_x[1]` -> `chaos`; a test outside a tier -> `(other)`."""
    parts = nodeid.split("::", 1)[0].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "(other)"


@dataclass
class TierTimes:
    """Seconds spent in setup, call and teardown of each tier's tests, and how many ran."""

    seconds: Counter[str] = field(default_factory=Counter)
    tests: Counter[str] = field(default_factory=Counter)

    def add(self, nodeid: str, when: str, duration: float) -> None:
        """One phase of one test (a session fixture's start counts in its first test's setup)."""
        tier = tier_of(nodeid)
        self.seconds[tier] += duration
        if when == "call":
            self.tests[tier] += 1

    def lines(self) -> list[str]:
        """One line per tier, slowest first, then the total."""
        width = max(len("total"), *map(len, self.seconds))
        rows = [
            f"{tier:<{width}}  {seconds:8.1f} s  {self.tests[tier]:5d} tests"
            for tier, seconds in self.seconds.most_common()
        ]
        total = sum(self.seconds.values())
        return [*rows, f"{'total':<{width}}  {total:8.1f} s  {sum(self.tests.values()):5d} tests"]
