"""Chaos: hundreds of checkouts while processes are killed and restarted; then every invariant.

Each seed fixes the checkouts, the payment simulator's decisions, the test's duplicate, early and
late messages and the order of the kills (their timing still depends on the machine). Replay one
seed with CHECKOUT_CHAOS_SEED=<seed>; CHECKOUT_CHAOS_CHECKOUTS sets the checkouts per seed.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.invariants import group_outcomes, saga_states, until, violations
from tests.chaos.load import ChaosLoad, drive, pay_late, plan, prepare
from tests.chaos.monkey import ChaosMonkey
from tests.chaos.wire import settled_and_accounted
from tests.support.processes import Fleet

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

SEEDS = (
    [int(os.environ["CHECKOUT_CHAOS_SEED"])]
    if "CHECKOUT_CHAOS_SEED" in os.environ
    else [
        1701,
        4242,
        90210,
    ]
)
CHECKOUTS = int(os.environ.get("CHECKOUT_CHAOS_CHECKOUTS", "200"))
PACE_S = 0.1
LATE_PAYMENTS = 12
SETTLE_TIMEOUT_S = 90.0


async def _failed_orders(db: AsyncEngine, load: ChaosLoad) -> list[uuid.UUID]:
    return [o for o, r in (await saga_states(db, load)).items() if r["state"] == "Failed"]


def _restart_payments(fleet: Fleet, seed: int) -> None:
    """The payment simulator decides by this run's seed."""
    fleet.env["CHECKOUT_PAYMENTS__SEED"] = str(seed)
    fleet.stop("payments")
    fleet.start("payments")
    fleet.wait_ready(["payments"])


async def _chaos_phase(
    fleet: Fleet, db: AsyncEngine, producer: AIOKafkaProducer, load: ChaosLoad
) -> ChaosMonkey:
    """Load, then late payments, with the monkey at work; every process up again after."""
    monkey = ChaosMonkey(fleet, random.Random(f"{load.seed}:monkey"))
    stop = asyncio.Event()
    task = asyncio.create_task(monkey.run(stop))
    try:
        await drive(producer, load, PACE_S)

        async def unfinished() -> list[str]:
            states = await saga_states(db, load)
            final = sum(1 for r in states.values() if r["state"] in ("Confirmed", "Failed"))
            return [] if final == len(load.checkouts) else [f"{final} final"]

        await until(unfinished, SETTLE_TIMEOUT_S)
        await pay_late(producer, load, await _failed_orders(db, load), LATE_PAYMENTS)
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await task
    await asyncio.to_thread(fleet.wait_ready, sorted(fleet.commands))
    return monkey


@pytest.mark.parametrize("seed", SEEDS)
async def test_no_checkout_is_lost_or_doubled_under_chaos(
    seed: int,
    chaos_fleet: Fleet,
    chaos_db: AsyncEngine,
    chaos_producer: AIOKafkaProducer,
    chaos_bootstrap: str,
    chaos_published: set[uuid.UUID],
) -> None:
    began = time.monotonic()
    replay = f"chaos seed {seed} (replay: CHECKOUT_CHAOS_SEED={seed})"
    load = plan(seed, CHECKOUTS)
    await prepare(chaos_db, load)
    _restart_payments(chaos_fleet, seed)
    monkey = await _chaos_phase(chaos_fleet, chaos_db, chaos_producer, load)

    problems = await until(lambda: violations(chaos_db, load), SETTLE_TIMEOUT_S)
    assert not problems, f"{replay}: {monkey.summary()}\n" + "\n".join(problems[:40])
    wire = await settled_and_accounted(chaos_bootstrap, chaos_db, load, chaos_published, replay)

    states = await saga_states(chaos_db, load)
    confirmed = sum(1 for r in states.values() if r["state"] == "Confirmed")
    groups = dict(await group_outcomes(chaos_db, load))
    why = Counter(
        (r["data"].get("failure_reason") or "")[:24]
        for r in states.values()
        if r["state"] == "Failed"
    )
    print(
        f"\n[chaos] {replay}: {len(load.checkouts)} checkouts ({confirmed} confirmed, "
        f"{len(load.checkouts) - confirmed} failed {dict(why.most_common(4))}; "
        f"marketplace groups {groups}), "
        f"{load.late_payments} late payments, "
        f"{sum(c.early_payment is not None for c in load.checkouts)} early payments, "
        f"{monkey.summary()}; {wire.records} records on the wire ({wire.redundant} re-sent); "
        f"{time.monotonic() - began:.0f}s",
        file=sys.stderr,
    )
