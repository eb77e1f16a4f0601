"""Hostile records through every service's real consumer, in batches, with valid checkouts among them.

Each service's `Consumer.process_batch` gets batches of records on every topic it consumes, as
its batch loop hands them over: structured cases from the contracts (Hypothesis, drawn in a
thread while the run goes on), mutants of the run's own valid traffic, sandbox records valid at
the contracts' edges, and the records of valid checkouts, which must all complete. Afterwards
every table of every service must differ from its snapshot only by what valid records and the
expected dead letters explain.

Throughput: the fuzz window opens with a backlog of checkouts, and hostile records are
published every round until all are sent; after the checks, a backlog of as many checkouts of
the same kind (on products of their own) runs alone. Checkouts per second in each are reported
side by side (same run, same machine); Hypothesis has finished drawing before either.
"""

from __future__ import annotations

import asyncio
import queue
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import TOPICS, CheckoutStarted
from contracts.codec import encode, headers_for
from services.platform.settings import Settings
from tests.fuzz import checks, feed
from tests.fuzz.checkouts import Shop, problems, sagas_final, states
from tests.fuzz.conftest import time_limit
from tests.fuzz.direct import DirectPath, Record, nodes
from tests.fuzz.records import Case, Targets
from tests.fuzz.state import snapshot, unexplained

pytestmark = [
    pytest.mark.integration,
    # Hypothesis draws in a thread while the consumers run on the event loop and use `random`
    # (retry jitter): it takes that for its strategies using it.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
    time_limit(),
]

STRUCTURED_SHARE = 0.3
"""Of the fuzzed records, the share built by Hypothesis; mutants of valid traffic make the rest."""
FUZZ_PER_ROUND = 150
BATCH = 200
"""Records a consumer applies per batch (its fetch size, CHECKOUT_KAFKA__MAX_POLL_RECORDS)."""
VICTIMS, FROZEN = 20, 5
"""Checkouts finished before the fuzz, and ones left in Submitted: targets of the fuzz."""
STALL_S = 20.0
TYPE_OF_TOPIC = {topic: message_type for message_type, topic in TOPICS.items()}


@dataclass
class Run:
    """One direct fuzz run: its path, shop, hostile records to send and what it measured."""

    path: DirectPath
    shop: Shop
    mutants: feed.Mutants
    hostile: int
    generated: queue.Queue[list[Case]] = field(default_factory=queue.Queue)
    structured_left: int = 0
    mutants_left: int = 0
    victims: list[CheckoutStarted] = field(default_factory=list)
    frozen: list[CheckoutStarted] = field(default_factory=list)
    planned: list[CheckoutStarted] = field(default_factory=list)
    figures: checks.Figures = field(default_factory=lambda: checks.Figures("direct", 0))

    def publish_checkout(self, checkout: CheckoutStarted, relayed: bool = True) -> Record:
        """A checkout's CheckoutStarted, keyed by its order id as any upstream publishes it."""
        envelope, key = checkout.to_envelope(), str(checkout.order_id)
        if relayed:
            self.path.relayed.add(key)
        topic = TOPICS[checkout.message_type]
        record = self.path.publish(topic, encode(envelope), key, headers_for(envelope), None)
        self._seed(record)
        return record

    async def round(self) -> None:
        """Every service applies a batch; the outboxes are delivered; valid traffic seeds mutants."""
        await self.path.round()
        for record in await self.path.relay():
            self._seed(record)

    def _seed(self, record: Record) -> None:
        if record.services:  # a mutant goes where its seed went: somewhere it is consumed
            d = record.delivery
            seed = Case("valid", TYPE_OF_TOPIC[d.topic], d.value, d.key, d.headers, False, d.key)
            self.mutants.remember(seed)

    def publish_hostile(self) -> None:
        """This round's share of structured cases (as far as drawn yet) and mutants."""
        cases: list[Case] = []
        while len(cases) < FUZZ_PER_ROUND * STRUCTURED_SHARE and not self.generated.empty():
            cases += self.generated.get_nowait()
        cases, rest = cases[: self.structured_left], cases[self.structured_left :]
        if rest:  # more than this run asked for: keep them for the next round
            self.generated.put(rest)
        self.structured_left -= len(cases)
        wanted = min(self.mutants_left, FUZZ_PER_ROUND - len(cases))
        made = self.mutants.make(wanted)
        self.mutants_left -= len(made)
        for case in (*cases, *made):
            record = self.path.publish(
                TOPICS[case.message_type], case.value, case.key, case.headers, case
            )
            assert record.services, f"nobody consumes {case.message_type}"

    @property
    def sending(self) -> bool:
        """Whether hostile records are still to be sent."""
        return self.structured_left > 0 or self.mutants_left > 0


async def _backlog(run: Run, engine: AsyncEngine, checkouts: list[CheckoutStarted]) -> float:
    """Publish the checkouts at once and run rounds until all are final; checkouts per second."""
    started = time.monotonic()
    for checkout in checkouts:
        run.publish_checkout(checkout)
    ids = [c.order_id for c in checkouts]
    while await sagas_final(engine, ids) < len(ids):
        assert run.path.busy, "nothing moves, yet checkouts are not final"
        await run.round()
    return len(ids) / (time.monotonic() - started)


async def _fuzz(run: Run, engine: AsyncEngine, planned: list[CheckoutStarted]) -> float:
    """The window: the checkouts' backlog and hostile records every round; checkouts per second."""
    started, deadline = time.monotonic(), time.monotonic() + 120 + run.hostile / 40
    for checkout in planned:
        run.publish_checkout(checkout)
    ids, finished = [c.order_id for c in planned], 0.0
    while run.sending or run.path.busy or not finished:
        run.publish_hostile()
        if not run.path.busy and run.sending:
            await asyncio.sleep(0.05)  # waiting for Hypothesis to draw more
        await run.round()
        if not finished and await sagas_final(engine, ids) == len(ids):
            finished = time.monotonic() - started
        assert time.monotonic() < deadline, "the fuzz window took too long"
    return len(ids) / finished


def _settled(path: DirectPath) -> list[checks.Settled]:
    return [
        checks.Settled(
            r.delivery,
            r.case.kind if r.case else "valid",
            bool(r.case and r.case.refused),
            r.case.order_id if r.case else r.delivery.key,
            {s: r.outcomes.get(s) for s in r.services},
        )
        for r in path.ledger.values()
    ]


def _open(engine: AsyncEngine, settings: Settings, examples: int, seed: int) -> Run:
    rng = random.Random(seed)
    # Enough stock that most checkouts can be confirmed, not so much that none runs out.
    shop = Shop.open(rng, products=8, units=_planned(examples) // 2)
    path = DirectPath(
        engine, nodes(engine, settings), partitions=4, batch=BATCH, stall_s=STALL_S, rng=rng
    )
    run = Run(path, shop, feed.Mutants(rng), examples, figures=checks.Figures("direct", seed))
    run.structured_left = int(examples * STRUCTURED_SHARE)
    run.mutants_left = examples - run.structured_left
    run.victims = [shop.checkout() for _ in range(VICTIMS)]
    run.frozen = [shop.checkout() for _ in range(FROZEN)]
    shop.frozen.update(c.order_id for c in run.frozen)
    run.planned = [shop.checkout() for _ in range(_planned(examples))]
    return run


async def _prepare(run: Run, engine: AsyncEngine, seed: int) -> None:
    """Finish the victims' checkouts, freeze the frozen ones; Hypothesis draws meanwhile."""
    consumed = {r.message_type for n in run.path.nodes.values() for r in n.routes.values()}
    aimed = tuple(str(c.order_id) for c in (*run.victims, *run.frozen, *run.planned))
    targets = Targets(tuple(sorted(consumed)), aimed)
    drawing = asyncio.create_task(
        asyncio.to_thread(feed.structured, targets, run.structured_left, seed, run.generated.put)
    )
    await run.shop.stock_up(engine)
    for checkout in run.frozen:  # their reservation requests are never delivered: Submitted
        run.publish_checkout(checkout, relayed=False)
    await _backlog(run, engine, run.victims)
    await drawing


def _planned(examples: int) -> int:
    """Checkouts in the fuzz window (and in the baseline after it)."""
    return max(60, examples // 40)


async def _alone(run: Run, engine: AsyncEngine, examples: int) -> float:
    """Checkouts per second with no fuzz: a backlog as large, on products of its own."""
    shop = Shop.open(run.shop.rng, products=8, units=_planned(examples) // 2)
    await shop.stock_up(engine)
    return await _backlog(run, engine, [shop.checkout() for _ in range(_planned(examples))])


async def test_every_consumer_dead_letters_hostile_records_and_valid_checkouts_complete(
    fuzz_engine: AsyncEngine,
    fuzz_settings: Settings,
    fuzz_examples: int,
    fuzz_seed: int,
    tmp_path: Path,
) -> None:
    print(f"\nfuzz seed {fuzz_seed} (CHECKOUT_FUZZ_SEED={fuzz_seed} replays it)")
    began = time.monotonic()
    run = _open(fuzz_engine, fuzz_settings, fuzz_examples, fuzz_seed)
    figures = run.figures
    await _prepare(run, fuzz_engine, fuzz_seed)
    figures.seconds["prepare_and_draw"] = time.monotonic() - began
    before = await snapshot(fuzz_engine)

    window = time.monotonic()
    figures.throughput["checkouts_per_s_during_fuzz"] = await _fuzz(run, fuzz_engine, run.planned)
    figures.seconds["fuzz_window"] = time.monotonic() - window
    after = await snapshot(fuzz_engine)
    records = _settled(run.path)
    figures.count(records)
    figures.mutants_stayed_valid = run.mutants.stayed_valid
    figures.checkouts.update(await states(fuzz_engine, [c.order_id for c in run.planned]))

    assert checks.outcome_problems(records) == []
    assert checks.letter_problems(records, await checks.dead_letters(fuzz_engine)) == []
    assert checks.sandbox_problems(records, after) == []
    ids = [str(i) for i in run.shop.checkouts]
    assert unexplained(before, after, checks.allowed(records, run.shop.stock, ids)) == []
    assert await problems(fuzz_engine, run.shop) == []
    assert run.path.key_rule_breaches == []
    assert figures.as_dict()["fuzzed_records"] == fuzz_examples

    figures.throughput["checkouts_per_s_alone"] = await _alone(run, fuzz_engine, fuzz_examples)
    figures.seconds["total"] = time.monotonic() - began
    figures.write(tmp_path)
