"""The services' real consumers fed in-process: records in batches, outboxes delivered by hand.

`DirectPath` stands in for the broker and the relay, nothing else: each published record gets
a position (topic, partition by key as Kafka's partitioner computes it, offset) and goes to
every service subscribed to its topic; each round, every service applies its next batch
through `Consumer.process_batch` exactly as its batch loop would (a batch that must come back
is fed again from its first record, as the loop rewinds it), and then the outbox rows the
round committed are marked sent and delivered, those of valid checkouts to their consumers.
What became of every record at every service is kept in `ledger`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, TOPICS
from contracts.codec import InvalidMessageError, check_key, decode
from saga import app as saga_app
from saga.deadline_gate import partition_of
from services.cart import app as cart_app
from services.inventory import app as inventory_app
from services.orders import app as orders_app
from services.payments import app as payments_app
from services.platform.consumer import Consumer, Delivery, Outcome, RetryLaterError, Route
from services.platform.settings import Settings
from tests.fuzz.records import Case
from tests.fuzz.state import named_ids

APPS = (saga_app, inventory_app, orders_app, cart_app, payments_app)


class StallError(AssertionError):
    """A record kept coming back past the stall limit: its partition would never move on."""


@dataclass
class Node:
    """One service's consumer, its routes by topic, and the records waiting for it."""

    name: str
    consumer: Consumer
    routes: dict[str, Route]
    pending: deque[Delivery] = field(default_factory=deque)


@dataclass
class Record:
    """A published record, the case it came from (None: a valid checkout's), its outcomes."""

    delivery: Delivery
    case: Case | None
    services: tuple[str, ...]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    first_tried: dict[str, float] = field(default_factory=dict)
    """When each service first took it in a batch (a backlog is no stall; long retrying is)."""


def nodes(engine: AsyncEngine, settings: Settings) -> dict[str, Node]:
    """Every service's consumer on this engine, as the runtime subscribes them."""
    found = {}
    for app in APPS:
        spec = app.create_service(settings)
        consumer = Consumer(engine, spec.mailbox, spec.name, settings.consumer)
        routes = {
            TOPICS[s.message_cls.message_type]: Route(
                s.message_cls.message_type, s.handler, s.hooks
            )
            for s in spec.subscriptions
        }
        found[spec.name] = Node(spec.name, consumer, routes)
    return found


class DirectPath:
    """Records published to positions and applied batch by batch by every subscribed service."""

    def __init__(
        self,
        engine: AsyncEngine,
        services: dict[str, Node],
        *,
        partitions: int,
        batch: int,
        stall_s: float,
        rng: random.Random,
    ) -> None:
        self.engine, self.nodes, self.partitions = engine, services, partitions
        self.batch, self.stall_s, self.rng = batch, stall_s, rng
        self.ledger: dict[tuple[str, int, int], Record] = {}
        self.relayed: set[str] = set()
        """Keys whose outbox rows are delivered (valid checkouts); others are only marked sent."""
        self.key_rule_breaches: list[str] = []
        self._offsets: dict[tuple[str, int], int] = {}
        self._base = rng.randrange(1 << 40)

    def subscribers(self, topic: str) -> tuple[str, ...]:
        """The services that consume a topic."""
        return tuple(n.name for n in self.nodes.values() if topic in n.routes)

    def publish(
        self, topic: str, value: bytes, key: str | None, headers: dict[str, str], case: Case | None
    ) -> Record:
        """Give the record the next position on its partition and queue it for its consumers."""
        partition = (
            partition_of(key, self.partitions) if key else self.rng.randrange(self.partitions)
        )
        offset = self._offsets.get((topic, partition), self._base)
        self._offsets[(topic, partition)] = offset + 1
        delivery = Delivery(value, topic, partition, offset, key, headers)
        record = Record(delivery, case, self.subscribers(topic))
        self.ledger[(topic, partition, offset)] = record
        for name in record.services:
            self.nodes[name].pending.append(delivery)
        return record

    @property
    def busy(self) -> bool:
        """Whether any service has records waiting."""
        return any(n.pending for n in self.nodes.values())

    async def round(self) -> None:
        """Every service applies its next batch, concurrently (a failure cancels the others)."""
        async with asyncio.TaskGroup() as group:
            for node in self.nodes.values():
                if node.pending:
                    group.create_task(self._step(node))

    async def _step(self, node: Node) -> None:
        batch = [node.pending.popleft() for _ in range(min(self.batch, len(node.pending)))]
        now = time.monotonic()
        for delivery in batch:
            self.ledger[_position(delivery)].first_tried.setdefault(node.name, now)
        try:
            outcomes = await node.consumer.process_batch([(d, node.routes[d.topic]) for d in batch])
        except RetryLaterError:
            node.pending.extendleft(reversed(batch))  # the loop rewinds to the first record
            self._check_stall(node.name, batch)
            await asyncio.sleep(0.05)
            return
        for delivery, outcome in zip(batch, outcomes, strict=True):
            self.ledger[_position(delivery)].outcomes[node.name] = outcome

    def _check_stall(self, service: str, batch: list[Delivery]) -> None:
        tried = [self.ledger[_position(d)].first_tried[service] for d in batch]
        waited = time.monotonic() - min(tried)
        if waited <= self.stall_s:
            return
        # The culprit is among the fuzz records this service has not settled yet.
        unsettled = [
            self.ledger[_position(d)]
            for d in batch
            if service not in self.ledger[_position(d)].outcomes
            and self.ledger[_position(d)].case is not None
        ]
        shown = [
            f"{r.case.kind if r.case else ''} key={r.delivery.key!r} {r.delivery.value[:400]!r}"
            for r in unsettled[:3]
        ]
        raise StallError(f"{service} has retried a batch for {waited:.0f}s; unsettled: {shown}")

    async def relay(self) -> list[Record]:
        """Mark every unsent outbox row sent; publish the valid checkouts' ones. Those, in order."""
        published = []
        for schema in {n.consumer.mailbox.schema for n in self.nodes.values()}:
            for topic, key, payload, headers in await self._take_unsent(schema):
                if topic == DEAD_LETTER_TOPIC or not self._of_valid_checkout(key, payload):
                    continue
                self._check_key_rule(payload, key)
                published.append(self.publish(topic, payload, key, headers, None))
        return published

    async def _take_unsent(self, schema: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                text(
                    f"UPDATE {schema}.outbox SET sent_at = now() WHERE sent_at IS NULL "
                    "RETURNING id, topic, message_key, payload, headers"
                )
            )
            return [
                (str(r.topic), str(r.message_key), bytes(r.payload), dict(r.headers))
                for r in sorted(rows, key=lambda r: int(r.id))
            ]

    def _of_valid_checkout(self, key: str, payload: bytes) -> bool:
        """Keyed by a valid checkout, or naming one (a vendor order's events name their group)."""
        if key in self.relayed:
            return True
        if any(found in self.relayed for found in named_ids(payload)):
            self.relayed.add(key)
            return True
        return False

    def _check_key_rule(self, payload: bytes, key: str) -> None:
        # Every consumer refuses a record not keyed by its correlation id: the product must
        # never write one.
        try:
            check_key(decode(payload).envelope, key)
        except InvalidMessageError as exc:
            self.key_rule_breaches.append(f"{key}: {exc}")


def _position(delivery: Delivery) -> tuple[str, int, int]:
    return (delivery.topic, delivery.partition, delivery.offset)


def new_ids(rng: random.Random, count: int) -> list[uuid.UUID]:
    """Reproducible random ids."""
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]
