"""What must hold after a fuzz run, record by record, and the figures a run reports.

Every refused record is dead-lettered by every service that consumes its topic, once, with a
reason, at its position; no valid checkout's record is; a sandbox record is applied or
dead-lettered, and a service that dead-lettered one keeps no row of its order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, MessageHeaders
from contracts.codec import decode
from services.platform.consumer import Delivery, Outcome, dead_letter
from tests.fuzz.state import SCHEMAS, Allowed, Snapshot, ids_named, named_ids


@dataclass
class Settled:
    """A record as the run left it: where it was, what it was, what each consumer did."""

    delivery: Delivery
    kind: str  # "valid" for a valid checkout's record
    refused: bool
    order_id: str | None
    outcomes: dict[str, Outcome | None]


def letter_id(delivery: Delivery, service: str) -> str:
    """The id of the dead letter `service` writes for this record (derived from its position)."""
    return str(dead_letter(delivery, "", 0, service).message_id)


def outcome_problems(records: Iterable[Settled]) -> list[str]:
    """Records some consumer never settled, a refused one it applied, a valid one it refused."""
    found = []
    for r in records:
        for service, outcome in r.outcomes.items():
            where = f"{service} {r.kind} at {r.delivery.topic}/{r.delivery.partition}/{r.delivery.offset}"
            if outcome is None:
                found.append(f"{where}: never settled")
            elif r.kind == "valid" and outcome is Outcome.DEAD_LETTERED:
                found.append(f"{where}: a valid checkout's record was dead-lettered")
            elif r.refused and outcome is not Outcome.DEAD_LETTERED:
                found.append(
                    f"{where}: {outcome} for {r.delivery.value[:300]!r} (key {r.delivery.key!r})"
                )
    return found


async def dead_letters(engine: AsyncEngine) -> dict[str, dict[str, str]]:
    """Every dead letter in every service outbox: id -> headers."""
    letters: dict[str, dict[str, str]] = {}
    async with engine.connect() as conn:
        for schema in SCHEMAS:
            rows = await conn.execute(
                text(f"SELECT message_id, headers FROM {schema}.outbox WHERE topic = :t"),
                {"t": DEAD_LETTER_TOPIC},
            )
            letters.update({str(r.message_id): dict(r.headers) for r in rows})
    return letters


def letter_problems(records: Iterable[Settled], letters: dict[str, dict[str, str]]) -> list[str]:
    """Dead-lettered records whose letter is missing, without a reason, or about another record."""
    found = []
    for r in records:
        for service, outcome in r.outcomes.items():
            if outcome is not Outcome.DEAD_LETTERED:
                continue
            headers = letters.get(letter_id(r.delivery, service))
            expected = {
                MessageHeaders.REJECTED_BY: service,
                MessageHeaders.ORIGINAL_TOPIC: r.delivery.topic,
                MessageHeaders.ORIGINAL_PARTITION: str(r.delivery.partition),
                MessageHeaders.ORIGINAL_OFFSET: str(r.delivery.offset),
            }
            if headers is None:
                found.append(
                    f"{service} has no dead letter for {r.kind} at offset {r.delivery.offset}"
                )
            elif not headers.get(MessageHeaders.ERROR) or any(
                headers.get(k) != v for k, v in expected.items()
            ):
                found.append(f"{service}'s dead letter of {r.kind} reads {headers}")
    return found


def allowed(records: Iterable[Settled], skus: Iterable[str], ids: Iterable[str]) -> Allowed:
    """What the run may have changed: valid and sandbox records' effects, and their letters."""
    ok = Allowed(ids=set(ids), skus=set(skus))
    for r in records:
        applied = any(o is Outcome.APPLIED for o in r.outcomes.values())
        if r.kind == "valid" or (not r.refused and applied):
            ok.message_ids.add(str(decode(r.delivery.value).envelope.message_id))
            ok.ids.update(named_ids(r.delivery.value))
        ok.letters.update(
            letter_id(r.delivery, s) for s, o in r.outcomes.items() if o is Outcome.DEAD_LETTERED
        )
    return ok


async def outbox_traffic(engine: AsyncEngine, ids: set[str]) -> tuple[set[str], set[str]]:
    """(message ids, ids named) of every outbox row these orders caused, followed to the end.

    A row belongs to an order when its key is one of the ids or its payload names one (a
    vendor order's events name their group); the ids a row names join the set, until no new
    row joins. Through the broker, these are the messages the inboxes may claim.
    """
    rows: list[tuple[str, str, set[str]]] = []
    async with engine.connect() as conn:
        for schema in SCHEMAS:
            found = await conn.execute(
                text(
                    f"SELECT message_id, message_key, payload FROM {schema}.outbox WHERE topic <> :t"
                ),
                {"t": DEAD_LETTER_TOPIC},
            )
            rows += [(str(r.message_id), r.message_key, named_ids(bytes(r.payload))) for r in found]
    known, messages, grew = set(ids), set(), True
    while grew:
        grew = False
        for message_id, key, named in rows:
            if message_id not in messages and (key in known or named & known):
                messages.add(message_id)
                known |= named | {key}
                grew = True
    return messages, known


def sandbox_problems(records: Iterable[Settled], after: Snapshot) -> list[str]:
    """Sandbox orders a service dead-lettered every record of and still keeps rows of."""
    applied: dict[str, set[str]] = {}
    refused: dict[str, set[str]] = {}
    for r in records:
        if r.kind != "sandbox" or r.order_id is None:
            continue
        for service, outcome in r.outcomes.items():
            into = refused if outcome is Outcome.DEAD_LETTERED else applied
            into.setdefault(service, set()).add(r.order_id)
    found = []
    for service, ids in refused.items():
        kept = (ids - applied.get(service, set())) & ids_named(after, service)
        found += [
            f"{service} dead-lettered sandbox order {i} but keeps rows of it" for i in sorted(kept)
        ]
    return found


@dataclass
class Figures:
    """What a run reports."""

    path: str
    seed: int
    sent: Counter[str] = field(default_factory=Counter)
    """Records sent, by kind."""
    deliveries: Counter[str] = field(default_factory=Counter)
    """Deliveries (a record times the services consuming its topic), by service."""
    outcomes: Counter[str] = field(default_factory=Counter)
    mutants_stayed_valid: Counter[str] = field(default_factory=Counter)
    checkouts: Counter[str] = field(default_factory=Counter)
    """Final states of the checkouts published during the fuzz."""
    throughput: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def count(self, records: Iterable[Settled]) -> None:
        """Add the records' kinds and outcomes."""
        for r in records:
            self.sent[r.kind] += 1
            for service, outcome in r.outcomes.items():
                self.deliveries[service] += 1
                self.outcomes[
                    f"{r.kind if r.kind in ('valid', 'sandbox') else 'hostile'}:{outcome}"
                ] += 1

    def as_dict(self) -> dict[str, Any]:
        """The figures, JSON-ready, with the totals worked out."""
        hostile = sum(n for kind, n in self.sent.items() if kind != "valid")
        window = self.seconds.get("fuzz_window", 0.0)
        return {
            "path": self.path,
            "seed": self.seed,
            "fuzzed_records": hostile,
            "fuzzed_records_per_s": round(hostile / window, 1) if window else None,
            "valid_checkouts_during_fuzz": dict(self.checkouts),
            "throughput": {k: round(v, 1) for k, v in self.throughput.items()},
            "sent_by_kind": dict(sorted(self.sent.items())),
            "deliveries_by_service": dict(sorted(self.deliveries.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "mutants_that_stayed_valid_not_sent": dict(self.mutants_stayed_valid),
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }

    def write(self, directory: Path) -> None:
        """Print the figures and write them to fuzz-<path>.json in the directory."""
        report = json.dumps(self.as_dict(), indent=2)
        target = directory / f"fuzz-{self.path}.json"
        target.write_text(report)
        print(report)
        print(f"report written to {target}")
