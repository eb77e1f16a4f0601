"""What a chaos run exercised: outcomes, compensations and where its wall time went."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.invariants import group_events, rows, saga_states
from tests.chaos.load import ChaosLoad


@dataclass
class Phases:
    """Wall time per phase of a run, in the order the phases ended."""

    began: float = field(default_factory=time.monotonic)
    seconds: dict[str, float] = field(default_factory=dict)

    def end(self, phase: str) -> None:
        """The named phase ends now; it began where the last one ended."""
        self.seconds[phase] = time.monotonic() - self.began - sum(self.seconds.values())

    @property
    def total(self) -> float:
        """Seconds since the run began."""
        return time.monotonic() - self.began

    def line(self) -> str:
        """`drive 31s, settle 14s, ...`."""
        return ", ".join(f"{p} {s:.0f}s" for p, s in self.seconds.items())


def failure_kind(reason: str) -> str:
    """A failure reason without the SKUs or ids it names, so that reasons can be counted."""
    if reason.startswith("payment failed: "):
        return reason
    if "does not match the order total" in reason:
        return "payment does not match the total"
    return reason.partition(":")[0]


async def outcome_mix(db: AsyncEngine, load: ChaosLoad) -> dict[str, Any]:
    """Sagas by outcome and failure, groups by policy and outcome, compensations made."""
    sagas = await saga_states(db, load)
    failed = [
        r["data"].get("failure_reason") or "" for r in sagas.values() if r["state"] == "Failed"
    ]
    return {
        "confirmed": len(sagas) - len(failed),
        "failed": len(failed),
        "failures": dict(Counter(failure_kind(r) for r in failed).most_common()),
        "groups": await _groups_by_policy(db, load),
        "released": await _count(
            db, "inventory.reservations WHERE status = 'released' AND order_id = ANY(:ids)", load
        ),
        "refunds": await _count(db, "payments.refunds WHERE order_id = ANY(:ids)", load),
        "orphans": await _count(db, "saga.orphan_refunds WHERE order_id = ANY(:ids)", load),
    }


async def _groups_by_policy(db: AsyncEngine, load: ChaosLoad) -> dict[str, dict[str, int]]:
    policy = {c.start.order_id: c.start.policy.value for c in load.checkouts}
    groups = [c.start.order_id for c in load.checkouts if c.start.items[0].vendor_id]
    mix: dict[str, Counter[str]] = {}
    for group, sent in (await group_events(db, groups)).items():
        for event in sent:
            mix.setdefault(policy[uuid.UUID(group)], Counter())[event["outcome"]] += 1
    return {p: dict(sorted(c.items())) for p, c in sorted(mix.items())}


async def _count(db: AsyncEngine, where: str, load: ChaosLoad) -> int:
    found = await rows(db, f"SELECT count(*) AS n FROM {where}", ids=load.order_ids)
    return int(found[0]["n"])


def mix_line(mix: dict[str, Any]) -> str:
    """The outcome mix as one line of the run's summary."""
    return (
        f"{mix['confirmed']} confirmed, {mix['failed']} failed {mix['failures']}; "
        f"marketplace groups {mix['groups']}; compensations: {mix['released']} reservations "
        f"released, {mix['refunds']} payments refunded ({mix['orphans']} as orphans)"
    )
