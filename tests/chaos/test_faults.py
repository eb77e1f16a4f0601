"""Chaos beyond kill -9: database connections cut, one service cut off the broker, processes
frozen past their session, and the saga's wall clock jumping; then every invariant of the tier.

One fleet serves the four faults (starting it is the slow part), routed so that each fault
reaches exactly the processes it means to (the others keep their direct addresses):

- saga-2 and inventory-2 reach PostgreSQL through a PgProxy each, which knows when a session
  is inside a transaction: their connections are cut there, and they are frozen while one is
  open (each then wakes up holding it);
- inventory-1 reaches the broker through a KafkaProxy, which rewrites the broker's advertised
  address so that the process cannot go around it;
- saga-1 and saga-2 run on a fake wall clock (libfaketime) that the clock test moves.

Each test drives a seeded load (tests/chaos/load.py) while its fault runs, requires every
invariant of the tier (tests/chaos/invariants.py) and the wire accounting (tests/chaos/wire.py),
and asserts that its fault really happened. Replay a failing test's seed with
CHECKOUT_CHAOS_SEED=<seed> and -k <test> (a seed plans the same ids, so the four tests cannot
share one on the module's database); CHECKOUT_FAULT_CHECKOUTS sets the checkouts per fault.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.broker import group_id
from services.platform.embedded import free_port
from tests.chaos.conftest import chaos_env
from tests.chaos.load import ChaosLoad
from tests.support.clock import FakeClock, libfaketime
from tests.support.deadlines import JumpPlan, Jumps, jump, timeouts
from tests.support.fault_runs import Tier, report, survive
from tests.support.faults import (
    RoutedFleet,
    assignments,
    blocked_by,
    expire_silent_members,
    held,
    logged,
    paused,
    remote_ports,
    stop_inside_transaction,
)
from tests.support.kafka_proxy import KafkaProxy
from tests.support.pg_proxy import PgProxy, server_of, through

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

CHECKOUTS = int(os.environ.get("CHECKOUT_FAULT_CHECKOUTS", "240"))
PACE_S = 0.04
SETTLE_TIMEOUT_S = 90.0
EVIDENCE_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 180.0
"""Nine processes joining their groups on a busy two-core machine took more than a minute."""
SESSION_MS = 6000
"""The product's default, not the tier's 2 s: on a two-core machine shared with other test runs,
2 s sessions expired without any fault (a starved process misses its heartbeats) and the
groups rebalanced again and again."""
SESSION_S = SESSION_MS / 1000
JOINER_SESSION_MS = 2000
"""The stand-in joiner's own session: it is expired this soon after the members rejoin."""
PAYMENT_TIMEOUT_S = 6
"""This module's own: the clock test's windows are measured against it."""
PROCESSES: dict[str, tuple[str, ...]] = {
    "saga-1": ("saga", "--no-relay"),
    "saga-2": ("saga", "--no-relay"),
    "inventory-1": ("inventory", "--no-relay"),
    "inventory-2": ("inventory", "--no-relay"),
    "orders": ("orders", "--no-relay"),
    "cart": ("cart", "--no-relay"),
    "payments": ("payments", "--no-relay"),
    "relay-1": ("relay",),
    "relay-2": ("relay",),
}
PARTNER = {"saga-2": "saga-1", "inventory-2": "inventory-1", "inventory-1": "inventory-2"}
ON_DB_PROXY = ("saga-2", "inventory-2")
"""Only these: every round trip through a proxy in this (busy) test process costs latency."""
DB_CUT = ON_DB_PROXY
BROKER_CUT = "inventory-1"
FROZEN = ON_DB_PROXY
"""Their proxies tell when a transaction of theirs is open."""
ON_FAKE_CLOCK = ("saga-1", "saga-2")
BROKER_LOST = ("Connect call failed", "Connection refused", "KafkaConnectionError")
STALE_COMMITS = ("offset commit failed", "OffsetCommit failed")
"""What the product and aiokafka log when an offset commit is refused (e.g. a stale member's)."""


def seeds(default: int) -> list[int]:
    """The test's seed, or the one to replay (run one test then: -k)."""
    return [int(os.environ.get("CHECKOUT_CHAOS_SEED", default))]


@dataclass
class Routes:
    """The proxies and the clock the routed processes use instead of the direct addresses."""

    db: dict[str, PgProxy]
    broker: KafkaProxy
    clock: FakeClock | None

    def env(self, database_url: str) -> dict[str, dict[str, str]]:
        """Each routed process's own variables."""
        extra: dict[str, dict[str, str]] = {name: {} for name in PROCESSES}
        for name, proxy in self.db.items():
            extra[name]["CHECKOUT_DATABASE_URL"] = through(database_url, proxy)
        extra[BROKER_CUT]["CHECKOUT_KAFKA__BOOTSTRAP_SERVERS"] = self.broker.address
        if self.clock is not None:
            for name in ON_FAKE_CLOCK:
                extra[name].update(self.clock.env(dict(os.environ)))
        return extra


@pytest.fixture(scope="module")
def routes(
    chaos_bootstrap: str, chaos_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Routes]:
    """Pass-through proxies (until a test cuts one) and a clock at offset 0."""
    host, port = chaos_bootstrap.rsplit(":", 1)
    library = libfaketime()
    clock = FakeClock(tmp_path_factory.mktemp("clock") / "offset", library) if library else None
    server = server_of(chaos_database_url)
    db = {name: PgProxy(free_port(), server).start() for name in ON_DB_PROXY}
    broker = KafkaProxy(free_port(), (host, int(port))).start()
    try:
        yield Routes(db, broker, clock)
    finally:
        for proxy in [*db.values(), broker]:
            proxy.stop()


@pytest.fixture(scope="module")
def chaos_fleet(
    routes: Routes,
    chaos_bootstrap: str,
    chaos_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RoutedFleet]:
    """Every process of PROCESSES, the routed ones on their proxies and clock."""
    env = {
        **chaos_env(chaos_bootstrap, chaos_database_url),
        "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS": str(SESSION_MS),
        "CHECKOUT_SAGA__PAYMENT_TIMEOUT_S": str(PAYMENT_TIMEOUT_S),
    }
    logs = tmp_path_factory.mktemp("fault-logs")
    fleet = RoutedFleet(env, logs, PROCESSES, routes.env(chaos_database_url))
    try:
        for name in PROCESSES:
            fleet.start(name)
        fleet.wait_ready(list(PROCESSES), READY_TIMEOUT_S)
        yield fleet
    finally:
        fleet.stop_all()
    left = fleet.leftovers()
    assert not left, f"processes left behind: {left}"


@pytest.fixture
async def tier(
    chaos_fleet: RoutedFleet,
    chaos_db: AsyncEngine,
    chaos_producer: AIOKafkaProducer,
    chaos_bootstrap: str,
    chaos_published: set[uuid.UUID],
) -> Tier:
    """The fleet running in full before a run (an earlier fault may have left one down)."""
    tier = Tier(
        chaos_fleet,
        chaos_db,
        chaos_producer,
        chaos_bootstrap,
        chaos_published,
        CHECKOUTS,
        READY_TIMEOUT_S,
        SETTLE_TIMEOUT_S,
    )
    await asyncio.to_thread(tier.restore)
    return tier


async def _take_over(tier: Tier, frozen: str, since: int) -> frozenset[tuple[str, int]]:
    """Let the group expire the frozen (or cut-off) member; what its partner took of its share."""
    await asyncio.sleep(SESSION_S + 0.5)  # its session has run out
    service = PROCESSES[frozen][0]
    host, port = tier.bootstrap.rsplit(":", 1)
    await expire_silent_members((host, int(port)), group_id(service), JOINER_SESSION_MS)
    share, partner = held(tier.fleet, frozen), PARTNER[frozen]

    def took(text: str) -> bool:
        return any(given & share for given in assignments(text))

    what = f"a share of {frozen}'s partitions"
    text = await logged(tier.fleet, partner, since, took, what, EVIDENCE_TIMEOUT_S)
    return frozenset().union(*(given & share for given in assignments(text)))


# --- 1. database connections cut mid-transaction -------------------------------------------

DB_CUTS_EACH = 6


async def _cut_databases(routes: Routes, rng: random.Random) -> dict[str, list[int]]:
    """Cut each routed process's database connections inside a transaction, in turns."""
    inside: dict[str, list[int]] = {name: [] for name in DB_CUT}
    for turn in range(DB_CUTS_EACH * len(DB_CUT)):
        name = DB_CUT[turn % len(DB_CUT)]
        proxy = routes.db[name]
        await asyncio.sleep(rng.uniform(0.2, 0.6))
        inside[name].append(await asyncio.to_thread(proxy.cut_inside_transaction, 5.0))
        await asyncio.sleep(rng.uniform(0.0, 0.5))  # connecting again is refused meanwhile
        await asyncio.to_thread(proxy.restore)
    return inside


@pytest.mark.parametrize("seed", seeds(6101))
async def test_database_connections_cut_mid_transaction(
    seed: int, tier: Tier, routes: Routes
) -> None:
    began, rng = time.monotonic(), random.Random(f"{seed}:db-cuts")
    cuts: dict[str, list[int]] = {}

    async def fault(load: ChaosLoad) -> str:
        cuts.update(await _cut_databases(routes, rng))
        return f"sessions inside a transaction at each cut: {cuts}"

    load, wire, summary = await survive(tier, seed, fault, PACE_S)
    for name, inside in cuts.items():
        landed = sum(1 for n in inside if n)
        assert landed >= DB_CUTS_EACH // 2, f"{name}: few cuts inside a transaction: {inside}"
    report("database cut", seed, load, wire, began, summary)


# --- 2. one service cut off the broker ------------------------------------------------------

BLIPS = 4


async def _cut_broker(tier: Tier, routes: Routes, rng: random.Random) -> str:
    """Brief cuts of inventory-1's broker link, then one past its session: its share moves."""
    fleet, proxy = tier.fleet, routes.broker
    broker_port = int(tier.bootstrap.rsplit(":", 1)[1])
    accepted, first = proxy.accepted, fleet.log_size(BROKER_CUT)
    bypassed = [broker_port in remote_ports(fleet.pid(BROKER_CUT))]
    for _ in range(BLIPS):
        await asyncio.sleep(rng.uniform(0.4, 1.0))
        await asyncio.to_thread(proxy.cut)
        await asyncio.sleep(rng.uniform(0.1, 0.8))  # shorter than the session: no rebalance
        await asyncio.to_thread(proxy.restore)
    since = {name: fleet.log_size(name) for name in (BROKER_CUT, PARTNER[BROKER_CUT])}
    await asyncio.to_thread(proxy.cut)
    try:
        moved = await _take_over(tier, BROKER_CUT, since[PARTNER[BROKER_CUT]])
    finally:
        await asyncio.to_thread(proxy.restore)
    await logged(fleet, BROKER_CUT, since[BROKER_CUT], _rejoined, "a rejoin", EVIDENCE_TIMEOUT_S)
    bypassed.append(broker_port in remote_ports(fleet.pid(BROKER_CUT)))
    assert not any(bypassed), "inventory-1 talked to the broker around its proxy"
    # Not necessarily during the long cut: a client backing off may try nothing until it ends.
    lost = fleet.log_since(BROKER_CUT, first)
    assert any(sign in lost for sign in BROKER_LOST), "inventory-1 never lost the broker"
    assert moved, "inventory-1's partitions never moved"
    return (
        f"{BLIPS} brief cuts and one of {SESSION_S:.0f}s+; {proxy.cut_connections} connections "
        f"reset, {proxy.accepted - accepted} reconnects, {proxy.rewrites} broker addresses "
        f"rewritten, {proxy.bytes_down} bytes from the broker through the proxy; "
        f"{len(moved)} of its partitions moved to {PARTNER[BROKER_CUT]}"
    )


def _rejoined(text: str) -> bool:
    return bool(assignments(text))


@pytest.mark.parametrize("seed", seeds(6202))
async def test_one_service_cut_off_the_broker(seed: int, tier: Tier, routes: Routes) -> None:
    began, rng = time.monotonic(), random.Random(f"{seed}:broker-cuts")

    async def fault(load: ChaosLoad) -> str:
        await asyncio.sleep(1.0)
        return await _cut_broker(tier, routes, rng)

    load, wire, summary = await survive(tier, seed, fault, PACE_S)
    report("broker cut", seed, load, wire, began, summary)


# --- 3. a process frozen past its session ----------------------------------------------------


@dataclass
class Freeze:
    """One SIGSTOP: what the frozen process held, what moved, and how it woke."""

    name: str
    tries: int
    open_at_stop: int  # its sessions inside a transaction when it stopped
    moved: frozenset[tuple[str, int]]  # its partitions its partner took while it was frozen
    blocking: int  # sessions seen waiting for a lock the frozen one's open transaction holds
    log_from: int  # its log's size when it was frozen

    def line(self, fleet: RoutedFleet) -> str:
        """One line of the test report."""
        woke = fleet.log_since(self.name, self.log_from)
        refused = sum(woke.count(sign) for sign in STALE_COMMITS)
        return (
            f"{self.name}: frozen after {self.tries} tries with {self.open_at_stop} open "
            f"transactions; {len(self.moved)} partitions moved to its partner; sessions seen "
            f"waiting for its locks {self.blocking}x; {refused} offset commits refused since"
        )


async def _freeze(tier: Tier, routes: Routes, name: str, rng: random.Random) -> Freeze:
    """Freeze a process mid-transaction until its partner took its partitions, then wake it."""
    fleet, partner = tier.fleet, PARTNER[name]
    since = {n: fleet.log_size(n) for n in (name, partner)}
    tries, open_at_stop = await stop_inside_transaction(fleet.pid(name), routes.db[name], rng)
    with paused(fleet.pid(name)):  # already stopped: this continues it however the block ends
        moving = asyncio.create_task(_take_over(tier, name, since[partner]))
        blocked = 0
        while not moving.done():
            blocked += await blocked_by(tier.db, routes.db[name].backend_pids())
            await asyncio.sleep(0.05)
        moved = await moving
    await logged(
        fleet, name, since[name], lambda t: bool(assignments(t)), "a rejoin", EVIDENCE_TIMEOUT_S
    )
    return Freeze(name, tries, open_at_stop, moved, blocked, since[name])


@pytest.mark.parametrize("seed", seeds(6303))
async def test_processes_frozen_past_their_session(seed: int, tier: Tier, routes: Routes) -> None:
    began = time.monotonic()
    freezes: list[Freeze] = []

    async def one(name: str) -> Freeze:
        rng = random.Random(f"{seed}:{name}")
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        return await _freeze(tier, routes, name, rng)

    async def fault(load: ChaosLoad) -> str:
        # Both at once, while the load runs: one after the other, the second could find its
        # service idle once the first had waited out its session (CI saw 400 tries fail).
        freezes.extend(await asyncio.gather(*map(one, FROZEN)))
        return "; ".join(f.line(tier.fleet) for f in freezes)

    load, wire, _ = await survive(tier, seed, fault, PACE_S)
    for f in freezes:
        assert f.open_at_stop, f"frozen with no transaction open: {f.line(tier.fleet)}"
        assert f.moved, f"nothing moved while frozen: {f.line(tier.fleet)}"
    report("freeze", seed, load, wire, began, "; ".join(f.line(tier.fleet) for f in freezes))


# --- 4. the saga's wall clock jumps --------------------------------------------------------

JUMPS = JumpPlan(
    back_s=30,  # both jumps well under the orphan grace: no message looks dated from elsewhere
    back_for=timedelta(seconds=5),  # by the database's clock
    forward_s=30,  # and the clock stays forward to the end
    pending=3,  # the clock jumps only while at least this many of the run's deadlines are
    timeout=timedelta(seconds=PAYMENT_TIMEOUT_S),
    wait_s=EVIDENCE_TIMEOUT_S,
)
CLOCK_PACE_S = 0.06
"""Slower than the others: the load still runs when the clock jumps forward."""
SILENT_RATE = "0.3"
"""Many payers never answer in this test, so many deadlines are pending at each jump."""


@pytest.mark.parametrize("seed", seeds(6404))
async def test_the_saga_clock_jumps_back_and_forward(seed: int, tier: Tier, routes: Routes) -> None:
    clock = routes.clock
    if clock is None:
        pytest.skip("libfaketime is not installed (Debian: apt-get install faketime)")
    began = time.monotonic()
    tier.payments = {"CHECKOUT_PAYMENTS__SILENT_RATE": SILENT_RATE}
    jumps: list[Jumps] = []
    waiting: list[int] = []

    async def fault(load: ChaosLoad) -> str:
        jumped, met = await jump(tier.db, clock, load.order_ids, JUMPS)
        jumps.append(jumped)
        waiting.extend(met)
        return (
            f"back {JUMPS.back_s}s for {JUMPS.back_for.seconds}s with {met[0]} deadlines "
            f"pending, then forward {JUMPS.forward_s}s with {met[1]} pending"
        )

    try:
        load, wire, summary = await survive(tier, seed, fault, CLOCK_PACE_S)
        found = await timeouts(tier.db, load.order_ids)
    finally:
        clock.set_offset(0)
    findings = jumps[0].findings(found)
    counts = {what: len(ts) for what, ts in findings.items()}
    detail = f"{summary}; {len(found)} payment timeouts: {counts}"
    for bug in ("early on its clock", "payer answered in time"):
        lines = "\n".join(t.line() for t in findings[bug])
        assert not findings[bug], f"{bug}: {detail}\n{lines}"
    assert all(waiting), f"a jump met no pending deadline: {detail}"
    assert findings["fired after the forward jump"], f"the poller never fired forward: {detail}"
    report("clock jumps", seed, load, wire, began, detail)
