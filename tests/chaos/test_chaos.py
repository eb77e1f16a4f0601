"""Chaos: a thousand checkouts per seed while processes are killed and restarted; then every invariant.

Every service runs as two processes and so does the relay. Each seed fixes the checkouts (plain
ones and marketplace groups), the payment simulators' decisions, the test's duplicate, early and
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

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.conftest import simulator_rules
from tests.chaos.invariants import saga_states, violations
from tests.chaos.load import ChaosLoad, drive, pay_late, plan, prepare
from tests.chaos.monkey import ChaosMonkey
from tests.chaos.settle import until_settled
from tests.chaos.summary import Phases, mix_line, outcome_mix
from tests.chaos.wire import settled_and_accounted
from tests.support.processes import Fleet

SEEDS = (
    [int(os.environ["CHECKOUT_CHAOS_SEED"])]
    if "CHECKOUT_CHAOS_SEED" in os.environ
    else [
        1701,
        4242,
        90210,
    ]
)
CHECKOUTS = int(os.environ.get("CHECKOUT_CHAOS_CHECKOUTS", "1000"))
MIN_KILLS = 20
"""Kills per seed while its checkouts are in flight (from the first until every saga is final)."""
PACE_S = max(0.03, 30.0 / CHECKOUTS)
"""At most ~33 checkouts a second, which a loaded two-core machine follows under the monkey
(at 50 a second a backlog built up), and at least 30 s of publishing: time for MIN_KILLS kills
at any size."""
KILL_EVERY_S = (0.5, 1.5)
DOWN_S = (0.1, 0.8)
"""A kill every ~1.5 s on average (a pause, then the kill, then the restart after DOWN_S)."""
LATE_PAYMENTS = 12
TAIL_S = 20.0
"""The monkey goes on this long after the last checkout (and until it made MIN_KILLS kills, on a
slow machine), unless every saga is final: twice the payment deadline, so the last checkouts'
answers and timeouts come under it too."""
LATE_CHAOS_S = 4.0
"""The monkey's time while late payments are refunded."""
STALL_S = 60.0
"""A wait fails once nothing moved in the product for this long (payment deadlines are 10 s)."""

pytestmark = [
    pytest.mark.chaos,
    # Only a cap for a run that hangs: the waits themselves end when the product stalls.
    pytest.mark.timeout(round(300 + 0.25 * CHECKOUTS)),
]


ORPHAN_GRACE_S = 3.0
"""Far below the product's 60 s: a payment that overtook its CheckoutStarted by more than this
(a backlog behind kills does it) is refunded as an orphan, and the checkout must still end
right (charged again, or failed with nothing kept)."""


@pytest.fixture(scope="module")
def chaos_env_extra() -> dict[str, str]:
    """A short orphan grace, so that orphan refunds happen in every seed."""
    return {"CHECKOUT_SAGA__ORPHAN_GRACE_S": str(ORPHAN_GRACE_S)}


async def _failed_orders(db: AsyncEngine, load: ChaosLoad) -> list[uuid.UUID]:
    return [o for o, r in (await saga_states(db, load)).items() if r["state"] == "Failed"]


async def _unfinished(db: AsyncEngine, load: ChaosLoad) -> list[str]:
    states = await saga_states(db, load)
    final = sum(1 for r in states.values() if r["state"] in ("Confirmed", "Failed"))
    return [] if final == len(load.checkouts) else [f"{final} of {len(load.checkouts)} final"]


async def _tail(monkey: ChaosMonkey, db: AsyncEngine, load: ChaosLoad) -> None:
    """After the drive: TAIL_S more, and on until MIN_KILLS kills, unless every saga is final."""
    began = time.monotonic()
    while await _unfinished(db, load):
        if time.monotonic() - began > TAIL_S and monkey.total_kills >= MIN_KILLS:
            return
        await asyncio.sleep(0.5)


async def _chaos_phase(
    fleet: Fleet, db: AsyncEngine, producer: AIOKafkaProducer, load: ChaosLoad, phases: Phases
) -> tuple[ChaosMonkey, int]:
    """The load under the monkey, a calm settle, then late payments under the monkey again.

    Also returns the kills made while checkouts were in flight. The monkey pauses once the last
    checkouts' payments and deadlines had TAIL_S to play out: kills that go on while the backlog
    drains only slow the drain (every kill rebalances a group), and a slower machine would then
    see more of them, and drain slower still.
    """
    monkey = ChaosMonkey(fleet, random.Random(f"{load.seed}:monkey"), KILL_EVERY_S, DOWN_S)
    async with monkey.at_work():
        await drive(producer, load, PACE_S)
        phases.end("drive")
        await _tail(monkey, db, load)
    under_load = monkey.total_kills
    await until_settled(lambda: _unfinished(db, load), db, STALL_S)
    phases.end("settle")
    async with monkey.at_work():
        await pay_late(producer, load, await _failed_orders(db, load), LATE_PAYMENTS)
        await asyncio.sleep(LATE_CHAOS_S)
    await asyncio.to_thread(fleet.wait_ready, sorted(fleet.commands))
    phases.end("late payments")
    return monkey, under_load


@pytest.mark.parametrize("seed", SEEDS)
async def test_no_checkout_is_lost_or_doubled_under_chaos(
    seed: int,
    chaos_fleet: Fleet,
    chaos_db: AsyncEngine,
    chaos_producer: AIOKafkaProducer,
    chaos_bootstrap: str,
    chaos_published: set[uuid.UUID],
) -> None:
    phases = Phases()
    replay = f"chaos seed {seed} (replay: CHECKOUT_CHAOS_SEED={seed})"
    load = plan(seed, CHECKOUTS)
    load.simulator = simulator_rules(chaos_fleet.env)
    await prepare(chaos_db, load)
    phases.end("prepare")
    try:
        monkey, under_load = await _chaos_phase(chaos_fleet, chaos_db, chaos_producer, load, phases)
    finally:
        # The next seeds read this one's records on the wire too, whether it passes or not.
        chaos_published |= load.published

    problems = await until_settled(lambda: violations(chaos_db, load), chaos_db, STALL_S)
    assert not problems, f"{replay}: {monkey.summary()}\n" + "\n".join(problems[:40])
    phases.end("invariants")
    wire = await settled_and_accounted(chaos_bootstrap, chaos_db, load, chaos_published, replay)
    phases.end("quiescence and wire")

    outcomes = await outcome_mix(chaos_db, load)
    mix = mix_line(outcomes)
    duplicates = sum(c.redelivered or c.restarted for c in load.checkouts)
    stale = sum(c.stale_payment is not None for c in load.checkouts)
    print(
        f"\n[chaos] {replay}: {len(load.checkouts)} checkouts ({mix}); {duplicates} duplicate "
        f"checkouts, {sum(c.early_payment is not None for c in load.checkouts)} early, "
        f"{stale} stale and {load.late_payments} late payments; "
        f"{monkey.summary()}, {under_load} under load; "
        f"{wire.records} records on the wire ({wire.redundant} re-sent); "
        f"{phases.total:.0f}s: {phases.line()}",
        file=sys.stderr,
    )
    assert under_load >= MIN_KILLS, f"{replay}: only {under_load} kills while checkouts ran"
    assert outcomes["orphans"] or not stale, f"{replay}: no stale payment was refunded as an orphan"
