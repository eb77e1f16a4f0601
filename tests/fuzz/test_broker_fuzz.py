"""Hostile records through the real broker: every service's batch loop, consumer group and relay.

A smaller share than the direct path (a tenth of CHECKOUT_FUZZ_EXAMPLES, at least 500): the
records go to their topics through a plain Kafka producer, shuffled among valid checkouts, and
the product runs as one process of every service with its relay. The batch loops must not crash
(no batch failed and rewound, no loop died) or stall (everything settles in time), every refused
record is dead-lettered once by each service consuming its topic, valid checkouts complete, and
the tables change only as the valid records and the expected dead letters explain. As many
checkouts then run alone, for the throughput side by side.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutStarted
from services.platform.consumer import Outcome
from services.platform.settings import Settings
from services.runtime import SERVICES, Runtime
from tests.fuzz import checks, feed, wire
from tests.fuzz.checkouts import Shop, problems, states
from tests.fuzz.conftest import time_limit
from tests.fuzz.records import Case, Targets
from tests.fuzz.state import Allowed, snapshot, unexplained

pytestmark = [
    pytest.mark.integration,
    # Hypothesis draws in a thread while the services run on the event loop and use `random`
    # (retry jitter, the Kafka client): it takes that for its strategies using it.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
    time_limit(),
]

STRUCTURED_SHARE = 0.3
WARM_UP = 10
CHECKOUTS_PER_THOUSAND = 60
"""Valid checkouts among every thousand hostile records (the same in the run alone after)."""
SETTLE_S = 90.0
"""How long records may take to settle, plus a second per hundred hostile records."""
CRASH_LOGGERS = ("checkout_saga.batch_loop", "checkout_saga.runtime")
"""Where a batch that failed (and was rewound) or a dead loop is logged. A record dead-lettered
after its handler raised is logged too, by the consumer: that is no crash."""


@pytest.fixture
async def product(fuzz_settings: Settings, fuzz_bootstrap: str) -> AsyncIterator[Runtime]:
    """Every service and the relay in one process, on the tier's own broker."""
    kafka = fuzz_settings.kafka.model_copy(update={"bootstrap_servers": fuzz_bootstrap})
    async with Runtime(fuzz_settings.model_copy(update={"kafka": kafka}), SERVICES) as runtime:
        yield runtime


@pytest.fixture
async def producer(fuzz_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer, as an upstream (or an attacker) would use."""
    client = AIOKafkaProducer(
        bootstrap_servers=fuzz_bootstrap, enable_idempotence=False, max_request_size=1 << 20
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@dataclass
class BrokerRun:
    """One fuzz run through the broker: what it sends and what came of it."""

    product: Runtime
    producer: AIOKafkaProducer
    engine: AsyncEngine
    shop: Shop
    hostile: int
    seed: int
    figures: checks.Figures
    mutants: feed.Mutants
    planned: list[CheckoutStarted] = field(default_factory=list)
    stream: list[Case] = field(default_factory=list)

    @property
    def settle_s(self) -> float:
        """How long the run's records may take to settle."""
        return SETTLE_S + self.hostile / 100

    @property
    def subscribers(self) -> wire.Subscribers:
        """topic -> the schemas of the services consuming it."""
        found: dict[str, list[str]] = {}
        for service, routes in self.product.routes.items():
            for topic in routes:
                found.setdefault(topic, []).append(self.product.consumers[service].mailbox.schema)
        return {topic: tuple(schemas) for topic, schemas in found.items()}

    async def prepare(self) -> None:
        """Warm the groups up with a few checkouts; draw and mutate the hostile records."""
        await self.shop.stock_up(self.engine)
        warm_up = [self.shop.checkout() for _ in range(WARM_UP)]
        self.planned = [self.shop.checkout() for _ in range(_checkouts(self.hostile))]
        structured: list[Case] = []
        drawing = asyncio.create_task(asyncio.to_thread(self._draw, warm_up, structured.extend))
        await wire.send(self.producer, [wire.checkout_case(c) for c in warm_up])
        await wire.wait_final(self.engine, warm_up, limit=60)
        await drawing
        keys = [str(c.order_id) for c in warm_up]
        for seed in await wire.traffic(self.engine, keys, self.subscribers):
            self.mutants.remember(seed)
        cases = structured
        while len(cases) < self.hostile:
            cases += self.mutants.make(self.hostile - len(cases))
        self.stream = cases + [wire.checkout_case(c) for c in self.planned]
        self.mutants.rng.shuffle(self.stream)

    def _draw(self, warm_up: list[CheckoutStarted], sink: feed.Sink) -> None:
        routes = self.product.routes.values()
        consumed = tuple(sorted({r.message_type for rs in routes for r in rs.values()}))
        targets = Targets(consumed, tuple(str(c.order_id) for c in (*warm_up, *self.planned)))
        feed.structured(targets, int(self.hostile * STRUCTURED_SHARE), self.seed, sink)

    async def fuzz(self) -> list[checks.Settled]:
        """Send the stream at once; wait for the checkouts and for every record to settle."""
        window = time.monotonic()
        sent = await wire.send(self.producer, self.stream)
        await wire.wait_final(self.engine, self.planned, limit=self.settle_s)
        self.figures.throughput["checkouts_per_s_during_fuzz"] = len(self.planned) / (
            time.monotonic() - window
        )
        records = await wire.settle(self.engine, sent, self.subscribers, self.settle_s)
        self.figures.seconds["fuzz_window"] = time.monotonic() - window
        self.figures.count(records)
        self.figures.mutants_stayed_valid = self.mutants.stayed_valid
        self.figures.checkouts.update(await states(self.engine, [c.order_id for c in self.planned]))
        return records

    async def alone(self) -> None:
        """As many checkouts again, with no fuzz, on products of their own."""
        shop = Shop.open(self.shop.rng, products=6, units=self.shop.units)
        await shop.stock_up(self.engine)
        checkouts = [shop.checkout() for _ in range(_checkouts(self.hostile))]
        started = time.monotonic()
        await wire.send(self.producer, [wire.checkout_case(c) for c in checkouts])
        await wire.wait_final(self.engine, checkouts, limit=self.settle_s)
        elapsed = time.monotonic() - started
        self.figures.throughput["checkouts_per_s_alone"] = len(checkouts) / elapsed


def _checkouts(hostile: int) -> int:
    return hostile * CHECKOUTS_PER_THOUSAND // 1000


async def _eventually_no_problems(engine: AsyncEngine, shop: Shop) -> list[str]:
    """The checkouts' problems once they are gone, or as they stand at the deadline.

    A saga is final before its last commands (deduct, release, clear the cart) are applied.
    """
    deadline = time.monotonic() + 30
    while True:
        found = await problems(engine, shop)
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


async def _allowed(engine: AsyncEngine, records: list[checks.Settled], shop: Shop) -> Allowed:
    """What may change: the records' own effects, and those of the messages the services sent
    one another for valid checkouts and applied sandbox records (through Kafka, not this test).
    A sandbox order's own messages may be refused (a payment for an order with no saga): valid
    checkouts' may not."""
    allowed = checks.allowed(records, shop.stock, [str(i) for i in shop.checkouts])
    sandbox = {
        r.order_id
        for r in records
        if r.kind == "sandbox" and r.order_id and Outcome.APPLIED in r.outcomes.values()
    }
    valid_messages, valid_named = await checks.outbox_traffic(engine, allowed.ids - sandbox)
    sandbox_messages, sandbox_named = await checks.outbox_traffic(engine, sandbox)
    allowed.message_ids |= valid_messages | sandbox_messages
    allowed.ids |= valid_named | sandbox_named
    allowed.refusable = sandbox_messages
    return allowed


def _loops_dead(product: Runtime) -> list[str]:
    # The loop's task is private to it; a test may look.
    return [
        loop.consumer.service for loop in product.loops if loop._task is None or loop._task.done()
    ]


async def test_the_batch_loops_survive_hostile_records_on_the_wire(
    product: Runtime,
    producer: AIOKafkaProducer,
    fuzz_engine: AsyncEngine,
    fuzz_examples: int,
    fuzz_seed: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    print(f"\nfuzz seed {fuzz_seed} (CHECKOUT_FUZZ_SEED={fuzz_seed} replays it)")
    began, rng = time.monotonic(), random.Random(fuzz_seed + 1)
    hostile = max(500, fuzz_examples // 10)
    shop = Shop.open(rng, products=6, units=(WARM_UP + _checkouts(hostile)) // 2)
    figures = checks.Figures("broker", fuzz_seed)
    run = BrokerRun(
        product, producer, fuzz_engine, shop, hostile, fuzz_seed + 1, figures, feed.Mutants(rng)
    )
    await run.prepare()
    figures.seconds["prepare_and_draw"] = time.monotonic() - began
    before = await snapshot(fuzz_engine)
    caplog.set_level(logging.WARNING)

    records = await run.fuzz()
    after = await snapshot(fuzz_engine)

    assert [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name in CRASH_LOGGERS
    ] == []
    assert _loops_dead(product) == []
    assert checks.outcome_problems(records) == []
    assert checks.letter_problems(records, await checks.dead_letters(fuzz_engine)) == []
    assert checks.sandbox_problems(records, after) == []
    assert unexplained(before, after, await _allowed(fuzz_engine, records, shop)) == []
    assert await _eventually_no_problems(fuzz_engine, shop) == []
    assert figures.as_dict()["fuzzed_records"] == hostile

    await run.alone()
    figures.seconds["total"] = time.monotonic() - began
    figures.write(tmp_path)
