"""The fuzz volume: structured cases collected from Hypothesis, mutants made from real traffic.

Hypothesis runs the collector in a worker thread (it blocks), each example a handful of cases,
with a seed so a run can be replayed. Mutants come from the bytes of valid records the run
has seen; the codec says which of them stay valid, and only refused ones are sent.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from contracts.codec import InvalidMessageError, check_headers, check_key, decode
from tests.fuzz.cases import cases
from tests.fuzz.mutations import mutate
from tests.fuzz.records import Case, Targets

PER_EXAMPLE = 10
"""Most cases one Hypothesis example draws (about half that on average)."""
Sink = Callable[[list[Case]], None]
"""Where drawn cases go, a few at a time (a list's extend, a queue's put)."""


def structured(targets: Targets, count: int, seed: int, sink: Sink) -> None:
    """Hand `count` cases drawn by Hypothesis to `sink`, a few at a time (blocking: a thread)."""
    quota, round_ = _Quota(count, sink), 0
    while quota.left > 0:
        _collect(targets, quota.left, seed + round_, quota.take)
        round_ += 1


@dataclass
class _Quota:
    """Passes cases on until `left` of them went."""

    left: int
    sink: Sink

    def take(self, cases: list[Case]) -> None:
        wanted = cases[: self.left]
        self.left -= len(wanted)
        if wanted:
            self.sink(wanted)


def _collect(targets: Targets, wanted: int, run_seed: int, sink: Sink) -> None:
    @hypothesis_seed(run_seed)
    @settings(
        max_examples=max(1, wanted * 2 // PER_EXAMPLE + 1),
        deadline=None,
        database=None,  # nothing written to .hypothesis/; the seed replays a run
        phases=[Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(st.lists(cases(targets), min_size=1, max_size=PER_EXAMPLE))
    def collect(drawn: list[Case]) -> None:
        sink(drawn)

    collect()


def refusal(
    value: bytes, message_type: str, key: str | None, headers: dict[str, str]
) -> str | None:
    """Why every consumer of this type's topic refuses the record (None: they accept it)."""
    try:
        envelope = decode(value, message_type).envelope
        check_key(envelope, key)
        check_headers(envelope, headers)
    except InvalidMessageError as exc:
        return str(exc)
    return None


@dataclass
class Mutants:
    """Makes refused mutants of valid records; counts those that stayed valid (not sent)."""

    rng: random.Random
    seeds: list[Case] = field(default_factory=list)
    stayed_valid: Counter[str] = field(default_factory=Counter)
    limit: int = 2_000

    def remember(self, case: Case) -> None:
        """Keep a valid record as a seed (the newest `limit` of them)."""
        self.seeds.append(case)
        if len(self.seeds) > self.limit:
            del self.seeds[: len(self.seeds) - self.limit]

    def make(self, count: int) -> list[Case]:
        """Up to `count` mutants the codec refuses (fewer when some stay valid)."""
        made = []
        for _ in range(count if self.seeds else 0):
            seed, other = self.rng.choice(self.seeds), self.rng.choice(self.seeds)
            name, value = mutate(self.rng, seed.value, other.value)
            if refusal(value, seed.message_type, seed.key, seed.headers) is None:
                self.stayed_valid[name] += 1
                continue
            made.append(
                Case(
                    f"mutant:{name}",
                    seed.message_type,
                    value,
                    seed.key,
                    seed.headers,
                    True,
                    seed.order_id,
                )
            )
        return made
