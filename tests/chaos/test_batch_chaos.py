"""Chaos with large batches: consumers and a relay killed -9 while they work through a backlog.

test_chaos.py paces its checkouts (PACE_S), so its consumers mostly fetch one record at a time.
Here a seed's checkouts are published in one burst while both saga, both inventory and both
relay processes are stopped, so the records pile up; then one stage at a time is started as a
single instance, which takes the whole backlog in fetches of up to max_poll_records, and is
killed -9 in the middle of it:

- saga: the checkouts and their duplicates waiting in its topics; killed once it committed a
  transaction of more than LARGE ids;
- relay: the outbox rows the saga and orders wrote meanwhile; killed while a batch transaction
  holds its lanes, after that batch's first records reached Kafka if it sees them in time (they
  are then published again, and the consumers must recognise them);
- inventory: the ReserveStock commands the relays published; killed as the saga was.

Each kill records the backlog at that moment (the consumer group's lag, or unsent outbox rows)
and what the process had done of it (its transactions' sizes, from the inbox), and the test
asserts that more than BACKLOG_AT_KILL were pending and that a consumer's transactions were
large: the kills are proven to hit the batched path. Then every process runs again, the
seeded monkey keeps killing while the later waves (each produced in a burst, so fetched in
large batches too) go through, and every invariant of the tier is checked as in test_chaos.py.
Replay one seed with CHECKOUT_CHAOS_SEED=<seed>; CHECKOUT_BATCH_CHAOS_CHECKOUTS sets its size.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import PaymentCompleted
from contracts.topics import all_topics
from services.platform.progress import GroupProgress
from services.platform.settings import KafkaSettings, Settings
from services.runtime import SERVICES, build_specs, consumer_groups
from tests.chaos.conftest import PARTITIONS
from tests.chaos.invariants import group_outcomes, rows, saga_states, until, violations
from tests.chaos.load import ChaosLoad, drive, pay_late, plan, prepare
from tests.chaos.monkey import ChaosMonkey
from tests.chaos.wire import settled_and_accounted
from tests.support.payer import publish
from tests.support.processes import Fleet

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]

# One seed in CI. Seed 8086 passed twice by hand, then once in CI its inventory-1, started
# alone after a graceful stop of both inventory instances, looped joining its group for 45 s
# (generation 6 every 3 s, never synced, never leader): Tansu kept electing a member that never
# answered. Not understood yet (README, Tansu quirks); replay with CHECKOUT_CHAOS_SEED=8086.
SEEDS = [int(os.environ["CHECKOUT_CHAOS_SEED"])] if "CHECKOUT_CHAOS_SEED" in os.environ else [5150]
CHECKOUTS = int(os.environ.get("CHECKOUT_BATCH_CHAOS_CHECKOUTS", "400"))
STOCK_PER_SKU = 150
"""Enough stock that most checkouts confirm (deduct, clear, refund paths), some still run out."""
BACKLOG_AT_KILL = 50
"""Each targeted kill must land while more than this many records or rows are still pending."""
KILL_DELAY_S = (0.0, 0.02)
"""After a consumer's first large transaction, the seeded pause before the kill."""
LATE_PAYMENTS = 12
STAGE_TIMEOUT_S = 45.0
SETTLE_TIMEOUT_S = 90.0
POLL_S = 0.01
HELD = ("saga-1", "saga-2", "inventory-1", "inventory-2", "relay-1", "relay-2")
"""Stopped while the burst is published, so that every stage has a backlog."""
TARGETS = {"saga": "saga-1", "relay": "relay-1", "inventory": "inventory-1"}
"""The instance each stage starts alone and kills."""
LARGE = 50
"""A targeted consumer is killed once it committed a transaction of more ids than this."""


@dataclass(frozen=True)
class BacklogKill:
    """One targeted kill -9 and the backlog its service had left at that moment."""

    process: str
    backlog_at_start: int  # pending when the process was started alone
    pending: int  # at the kill: the group's lag (read once dead), or unsent outbox rows
    working: bool  # it had applied part of the backlog, or held a relay batch open
    largest: int | None  # the most ids one of its transactions claimed (a consumer's)
    detail: str  # what it had done: its transactions, or its records on the wire

    def line(self) -> str:
        """One line of the test report."""
        return (
            f"{self.process}: backlog {self.backlog_at_start} at start, {self.pending} pending "
            f"at the kill; {self.detail}"
        )


def _groups() -> dict[str, tuple[str, list[str]]]:
    return consumer_groups(build_specs(Settings(), SERVICES))


async def _first(
    probe: Callable[[], Awaitable[int]], done: Callable[[int], bool], timeout_s: float, what: str
) -> int:
    """Poll a number until it is done; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value} after {timeout_s}s")
        await asyncio.sleep(POLL_S)


async def _count(db: AsyncEngine, sql: str, **params: object) -> int:
    return int((await rows(db, sql, **params))[0]["n"])


async def _unsent(db: AsyncEngine, schemas: tuple[str, ...] = SERVICES) -> int:
    total = 0
    for schema in schemas:
        sql = f"SELECT count(*) AS n FROM {schema}.outbox WHERE sent_at IS NULL"
        total += await _count(db, sql)
    return total


async def _lag(progress: GroupProgress) -> int:
    """Records of the group's topics past its committed offsets."""
    ends, committed = await progress.ends(), await progress.committed()
    return sum(max(0, end - max(committed.get(tp) or 0, 0)) for tp, end in ends.items())


_TRANSACTIONS = (
    "SELECT count(*) AS n FROM {}.inbox WHERE received_at > :t "
    "GROUP BY received_at ORDER BY received_at"
)
"""Ids claimed per committed transaction of a consumer since a time."""


async def _kill_consumer_mid_backlog(
    fleet: Fleet, db: AsyncEngine, service: str, progress: GroupProgress, rng: random.Random
) -> BacklogKill:
    """Start the service's instance alone; kill it once it committed a large transaction.

    Its transactions are read from the inbox: the ids one transaction claimed (in one
    statement) share its now() as received_at. The group's lag is measured once the process is
    dead, so nothing moves meanwhile: its committed offsets cannot move any more, and the lag is
    what the group must deliver again, the records it applied without committing their offsets
    included (the inbox must recognise those).
    """
    name = TARGETS[service]
    backlog = await _lag(progress)
    since = (await rows(db, "SELECT now() AS t"))[0]["t"]
    sizes: list[int] = []

    async def largest() -> int:
        sizes[:] = [r["n"] for r in await rows(db, _TRANSACTIONS.format(service), t=since)]
        return max(sizes, default=0)

    started = time.monotonic()
    fleet.start(name)
    await _first(largest, lambda n: n > LARGE, STAGE_TIMEOUT_S, f"{name} transactions")
    await asyncio.sleep(rng.uniform(*KILL_DELAY_S))
    fleet.kill9(name)
    alive = time.monotonic() - started
    await largest()
    return BacklogKill(
        name,
        backlog,
        await _lag(progress),
        bool(sizes),
        max(sizes, default=0),
        f"it had committed {len(sizes)} transactions claiming {sizes} ids; "
        f"killed {alive:.1f}s after its start",
    )


def _relay_state_sql() -> str:
    """Lanes locked by relay batches in progress, and unsent outbox rows of every schema."""
    unsent = " + ".join(
        f"(SELECT count(*) FROM {s}.outbox WHERE sent_at IS NULL)" for s in SERVICES
    )
    return (
        # objsubid 2: two-int4 keys, the relay's (orders and cart lock single bigint keys)
        "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
        f"AND granted) AS locks, {unsent} AS unsent"
    )


async def _kill_relay_mid_backlog(fleet: Fleet, db: AsyncEngine, bootstrap: str) -> BacklogKill:
    """Start one relay alone; kill it while its first batch transaction holds its lanes.

    A relay batch locks its lanes (advisory transaction locks), reads the rows, sends them all,
    marks them sent and commits; killed with the locks held, it dies between the read and the
    commit, so every row of the batch stays unsent and whatever reached Kafka goes again.
    """
    name = TARGETS["relay"]
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        parts = [TopicPartition(t, p) for t in all_topics() for p in range(PARTITIONS)]

        async def on_wire() -> int:
            return sum((await reader.end_offsets(parts)).values())

        state = _relay_state_sql()
        before, backlog = await on_wire(), await _unsent(db)
        seen: dict[str, int] = {}

        async def locks() -> int:
            seen.update((await rows(db, state))[0])
            return seen["locks"]

        started = time.monotonic()
        fleet.start(name)
        await _first(locks, lambda n: n > 0, STAGE_TIMEOUT_S, f"{name} lanes locked")
        # A batch is open; its records reaching Kafka before it commits is the worst moment.
        locked = time.monotonic()
        while time.monotonic() - locked < 2.0:
            on, _ = await asyncio.gather(on_wire(), locks())
            if on > before or not seen["locks"]:
                break
        fleet.kill9(name)
        alive = time.monotonic() - started
        sent = await on_wire() - before
    finally:
        await reader.stop()
    return BacklogKill(
        name,
        backlog,
        seen["unsent"],
        seen["locks"] > 0,
        None,
        f"killed holding {seen['locks']} lanes, {alive:.1f}s after its start; "
        f"{sent} records of its batch were on the wire (reported ends) and go out again",
    )


async def _pay_early(producer: AIOKafkaProducer, load: ChaosLoad) -> None:
    """The planned early payments, each before its saga requested any payment.

    Sent once the sagas exist (relays still held, so no saga has reserved stock yet) rather
    than in the burst: in a burst, a payment fetched ahead of its CheckoutStarted (another
    topic) sends the saga's whole slot record by record, and the kill would not hit a batch.
    """
    for c in load.checkouts:
        if c.early_payment is not None:
            start = c.start
            paid = PaymentCompleted(
                order_id=start.order_id,
                payment_id=c.early_payment,
                amount=start.total,
                currency="EUR",
            )
            load.published.add(await publish(producer, paid))
            load.payments.setdefault(start.order_id, set()).add(c.early_payment)


async def _restart(fleet: Fleet, names: list[str]) -> None:
    for name in names:
        if name not in fleet.procs:
            fleet.start(name)
    await asyncio.to_thread(fleet.wait_ready, names)


def _restart_payments(fleet: Fleet, seed: int) -> None:
    """The payment simulator decides by this run's seed."""
    fleet.env["CHECKOUT_PAYMENTS__SEED"] = str(seed)
    fleet.stop("payments")
    fleet.start("payments")
    fleet.wait_ready(["payments"])


async def _targeted_kills(
    fleet: Fleet,
    db: AsyncEngine,
    producer: AIOKafkaProducer,
    bootstrap: str,
    load: ChaosLoad,
) -> tuple[list[BacklogKill], float]:
    """The burst with the stages held, then each stage started alone and killed mid-backlog."""
    rng = random.Random(f"{load.seed}:batch-kills")
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    groups = _groups()
    progress = {s: GroupProgress(kafka, *groups[s]) for s in ("saga", "inventory")}
    try:
        for name in HELD:
            await asyncio.to_thread(fleet.stop, name)
        began = time.monotonic()
        burst = replace(load, checkouts=[replace(c, early_payment=None) for c in load.checkouts])
        await drive(producer, burst, 0.0)
        load.published |= burst.published
        burst_s = time.monotonic() - began
        saga = await _kill_consumer_mid_backlog(fleet, db, "saga", progress["saga"], rng)
        kills = [saga]

        await _restart(fleet, ["saga-1", "saga-2"])
        ids = load.order_ids
        sagas = "SELECT count(*) AS n FROM saga.sagas WHERE id = ANY(:ids)"
        await _first(
            lambda: _count(db, sagas, ids=ids),
            lambda n: n == len(ids),
            STAGE_TIMEOUT_S,
            "sagas created",
        )
        await _pay_early(producer, load)
        kills.append(await _kill_relay_mid_backlog(fleet, db, bootstrap))

        await _restart(fleet, ["relay-1", "relay-2"])
        await _first(lambda: _unsent(db, ("saga",)), lambda n: n == 0, STAGE_TIMEOUT_S, "relays")
        kills.append(
            await _kill_consumer_mid_backlog(fleet, db, "inventory", progress["inventory"], rng)
        )
        await _restart(fleet, ["inventory-1", "inventory-2"])
    finally:
        for p in progress.values():
            await p.close()
        for name in HELD:  # whatever happened, every process runs again
            if name not in fleet.procs:
                fleet.start(name)
    return kills, burst_s


async def _settle_under_monkey(
    fleet: Fleet, db: AsyncEngine, producer: AIOKafkaProducer, load: ChaosLoad
) -> tuple[ChaosMonkey, bool]:
    """The later waves with the monkey at work, then late payments; every process up after.

    Also returns whether every saga became final in time.
    """
    monkey = ChaosMonkey(fleet, random.Random(f"{load.seed}:monkey"))
    stop = asyncio.Event()
    task = asyncio.create_task(monkey.run(stop))
    try:

        async def unfinished() -> list[str]:
            states = await saga_states(db, load)
            final = sum(1 for r in states.values() if r["state"] in ("Confirmed", "Failed"))
            return [] if final == len(load.checkouts) else [f"{final} final"]

        settled = not await until(unfinished, SETTLE_TIMEOUT_S)
        failed = [o for o, r in (await saga_states(db, load)).items() if r["state"] == "Failed"]
        await pay_late(producer, load, failed, LATE_PAYMENTS)
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await task
    await asyncio.to_thread(fleet.wait_ready, sorted(fleet.commands))
    return monkey, settled


@pytest.mark.parametrize("seed", SEEDS)
async def test_kills_in_the_middle_of_large_batches_lose_and_double_nothing(
    seed: int,
    chaos_fleet: Fleet,
    chaos_db: AsyncEngine,
    chaos_producer: AIOKafkaProducer,
    chaos_bootstrap: str,
    chaos_published: set[uuid.UUID],
) -> None:
    began = time.monotonic()
    replay = f"batch chaos seed {seed} (replay: CHECKOUT_CHAOS_SEED={seed})"
    load = plan(seed, CHECKOUTS)
    load.stock = dict.fromkeys(load.stock, STOCK_PER_SKU)
    await prepare(chaos_db, load)
    _restart_payments(chaos_fleet, seed)
    kills, burst_s = await _targeted_kills(
        chaos_fleet, chaos_db, chaos_producer, chaos_bootstrap, load
    )
    report = "\n".join(k.line() for k in kills)
    monkey, settled = await _settle_under_monkey(chaos_fleet, chaos_db, chaos_producer, load)

    # Sagas that did not become final in SETTLE_TIMEOUT_S will not: report them at once.
    problems = await until(lambda: violations(chaos_db, load), SETTLE_TIMEOUT_S if settled else 0)
    assert not problems, f"{replay}: {report}\n{monkey.summary()}\n" + "\n".join(problems[:40])
    wire = await settled_and_accounted(chaos_bootstrap, chaos_db, load, chaos_published, replay)

    # The test did what it claims: every targeted kill landed with a backlog still pending, and
    # after the process had done part of it (so it was working through it, not starting up).
    assert all(k.pending > BACKLOG_AT_KILL and k.working for k in kills), f"{replay}:\n{report}"
    assert all(k.largest is None or k.largest > LARGE for k in kills), f"{replay}:\n{report}"
    states = await saga_states(chaos_db, load)
    confirmed = sum(1 for r in states.values() if r["state"] == "Confirmed")
    groups = dict(await group_outcomes(chaos_db, load))
    print(
        f"\n[batch chaos] {replay}: {len(load.checkouts)} checkouts published in {burst_s:.1f}s "
        f"({confirmed} confirmed, {len(load.checkouts) - confirmed} failed; "
        f"marketplace groups {groups}), "
        f"{load.late_payments} late payments; targeted kills:\n{report}\nthen "
        f"{monkey.summary()}; {wire.records} records on the wire ({wire.redundant} re-sent); "
        f"{time.monotonic() - began:.0f}s",
        file=sys.stderr,
    )
