"""One run of the fault tier: a seeded chaos load driven while a fault runs, then every invariant.

Shared by the fault tests (tests/chaos/test_faults.py): the load, the invariants and the wire
check are the chaos tier's own (tests/chaos/load.py, invariants.py, wire.py), so a fault is
held to exactly what a kill -9 is held to.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.invariants import rows, saga_states, until, violations
from tests.chaos.load import ChaosLoad, drive, pay_late, plan, prepare
from tests.chaos.wire import WireReport, settled_and_accounted
from tests.support.faults import RoutedFleet

LATE_PAYMENTS = 8
"""Payments the test sends for failed orders after the run: each must be refunded once."""

Fault = Callable[[ChaosLoad], Awaitable[str]]
"""Injects a fault while the load runs; returns what it did, for the report."""


@dataclass
class Tier:
    """The fleet, the clients and the sizes of one module's runs."""

    fleet: RoutedFleet
    db: AsyncEngine
    producer: AIOKafkaProducer
    bootstrap: str
    published: set[uuid.UUID]  # every record the tests published themselves, all runs
    checkouts: int
    ready_timeout_s: float
    settle_timeout_s: float
    payments: dict[str, str] = field(
        default_factory=dict
    )  # the simulator's rules, if not the fleet's

    def restore(self) -> None:
        """Start again whatever an earlier fault left down, and wait until all are ready."""
        for name in self.fleet.commands:
            if name not in self.fleet.procs or self.fleet.procs[name].poll() is not None:
                self.fleet.procs.pop(name, None)
                self.fleet.start(name)
        self.fleet.wait_ready(list(self.fleet.commands), self.ready_timeout_s)


async def survive(
    tier: Tier, seed: int, fault: Fault, pace_s: float
) -> tuple[ChaosLoad, WireReport, str]:
    """Drive the seed's load with the fault alongside; then every invariant holds.

    Returns the load, the wire's report and the fault's own summary.
    """
    load = plan(seed, tier.checkouts)
    if await _ran_before(tier.db, load):
        pytest.skip(f"seed {seed} already ran on this module's database: replay one test (-k)")
    await prepare(tier.db, load)
    await asyncio.to_thread(_restart_payments, tier, seed)
    try:
        return await _drive_through(tier, load, fault, pace_s)
    finally:
        # The test's own records, known to the later runs' wire checks even if this one fails.
        tier.published |= load.published


def _restart_payments(tier: Tier, seed: int) -> None:
    """The payment simulator decides by this run's seed (and by the run's rules, if any)."""
    tier.fleet.routes["payments"] = {"CHECKOUT_PAYMENTS__SEED": str(seed), **tier.payments}
    tier.fleet.stop("payments")
    tier.fleet.start("payments")
    tier.fleet.wait_ready(["payments"], tier.ready_timeout_s)


async def _drive_through(
    tier: Tier, load: ChaosLoad, fault: Fault, pace_s: float
) -> tuple[ChaosLoad, WireReport, str]:
    replay = f"seed {load.seed} (replay: CHECKOUT_CHAOS_SEED={load.seed} and -k this test)"
    driving = asyncio.create_task(drive(tier.producer, load, pace_s))
    try:
        summary = await fault(load)
    finally:
        await driving
    await until(lambda: _unfinished(tier.db, load), tier.settle_timeout_s)
    failed = [o for o, r in (await saga_states(tier.db, load)).items() if r["state"] == "Failed"]
    await pay_late(tier.producer, load, failed, LATE_PAYMENTS)
    problems = await until(lambda: violations(tier.db, load), tier.settle_timeout_s)
    assert not problems, f"{replay}: {summary}\n" + "\n".join(problems[:40])
    wire = await settled_and_accounted(tier.bootstrap, tier.db, load, tier.published, replay)
    alive = {n: p.poll() for n, p in tier.fleet.procs.items()}
    assert set(alive) == set(tier.fleet.commands), f"not running: {sorted(alive)}"
    assert set(alive.values()) == {None}, f"exited: {alive}"
    return load, wire, summary


async def _ran_before(db: AsyncEngine, load: ChaosLoad) -> bool:
    """Whether this seed's products exist (a seed plans the same ids every time)."""
    found = await rows(
        db, "SELECT count(*) AS n FROM inventory.products WHERE sku = ANY(:s)", s=list(load.stock)
    )
    return bool(found[0]["n"])


async def _unfinished(db: AsyncEngine, load: ChaosLoad) -> list[str]:
    states = await saga_states(db, load)
    final = sum(1 for r in states.values() if r["state"] in ("Confirmed", "Failed"))
    return [] if final == len(load.checkouts) else [f"{final} of {len(load.checkouts)} final"]


def report(
    kind: str, seed: int, load: ChaosLoad, wire: WireReport, began: float, what: str
) -> None:
    """One line per fault in the test log (-s): the figures docs/reliability.md records."""
    print(
        f"\n[fault: {kind}] seed {seed}: {len(load.checkouts)} checkouts; {what}; "
        f"{wire.records} records on the wire ({wire.redundant} re-sent); "
        f"{time.monotonic() - began:.0f}s",
        file=sys.stderr,
    )
