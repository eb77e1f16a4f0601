"""The one consumer transaction shape, for a batch: inbox claim -> steps -> outbox -> commit -> ack.

A fetched batch is split into slots by partition: slots run concurrently, each as one database
transaction (group commit), and the records of one partition stay strictly in order. A slot
that fails is re-run record by record, so a poison record is dead-lettered alone while its
neighbours apply; a single record keeps the per-record retry rules. A delivery on its own is
the same path with a batch of one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager as ContextManager

from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.platform import inbox, journal, outbox
from services.platform.delivery import (
    BatchHooks,
    ConflictError,
    Delivery,
    Handler,
    Mailbox,
    Outcome,
    RejectedMessageError,
    RetryLaterError,
    Route,
    dead_letter,
    is_transient,
    traced,
    worth_retrying_whole,
)
from services.platform.items import Item, duplicates, entry, hooks_of, read, type_of
from services.platform.observe import log_rejected, observed
from services.platform.outbox import OutboxMessage
from services.platform.settings import ConsumerSettings
from services.platform.telemetry import Telemetry, scope

__all__ = [
    "BatchHooks",
    "ConflictError",
    "Consumer",
    "Delivery",
    "Handler",
    "Mailbox",
    "Outcome",
    "RejectedMessageError",
    "RetryLaterError",
    "Route",
    "dead_letter",
    "is_transient",
    "traced",
]

log = logging.getLogger("checkout_saga.consumer")


class Consumer:
    """Applies deliveries for one service with the exactly-once-effect transaction shape."""

    def __init__(
        self,
        engine: AsyncEngine,
        mailbox: Mailbox,
        service: str,
        settings: ConsumerSettings,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.engine = engine
        self.mailbox = mailbox
        self.service = service
        self.settings = settings
        self.outcomes: Counter[str] = Counter()
        self.telemetry = telemetry or Telemetry()
        self._claim = inbox.claim_statement(mailbox.inbox)

    async def process(
        self,
        delivery: Delivery,
        expected_type: str,
        handler: Handler,
        hooks: BatchHooks | None = None,
    ) -> Outcome:
        """Handle one delivery: the batch path with a batch of one."""
        (outcome,) = await self.process_batch([(delivery, Route(expected_type, handler, hooks))])
        return outcome

    async def process_batch(self, batch: Sequence[tuple[Delivery, Route]]) -> list[Outcome]:
        """Apply a fetched batch; raises RetryLaterError when some record must come back later.

        Every slot finishes before the error is raised, so slots that committed stay committed
        (their redelivery is recognised by the inbox).
        """
        items = [read(delivery, route) for delivery, route in batch]
        with scope.bound(self.telemetry.metrics):
            results = await asyncio.gather(
                *(self._run_slot(slot) for slot in self._slots(items)), return_exceptions=True
            )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [item.outcome or Outcome.APPLIED for item in items]

    def _slots(self, items: list[Item]) -> list[list[Item]]:
        # Partition p always maps to slot p % n: one partition's records stay in one slot, in
        # order, and one order's messages (same key, same partition number) never race.
        if len(items) < self.settings.parallel_min_records:
            # A trickle: one transaction, records already in partition order.
            return [items] if items else []
        slots: dict[int, list[Item]] = {}
        for item in items:
            slots.setdefault(item.delivery.partition % self.settings.parallel, []).append(item)
        return list(slots.values())

    async def _run_slot(self, items: list[Item]) -> None:
        if len(items) > 1 and await self._try_batch(items):
            return
        await self._one_by_one(items)

    async def _try_batch(self, items: list[Item]) -> bool:
        """One transaction for the slot; False when it failed (then each record goes alone)."""
        for attempt in (1, 2):
            try:
                await self._transaction(items, trial=True)
            except Exception as exc:
                # A version conflict or a deadlock is worth one more try of the whole slot from a
                # fresh read; anything else (a poison record, a saga not created yet) is isolated
                # by handling the records one by one.
                if worth_retrying_whole(exc) and attempt == 1:
                    self._count_retry(exc, "batch")
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                log.debug("batch of %d failed (%r); one by one", len(items), exc)
                return False
            return True
        return False

    async def _one_by_one(self, items: list[Item]) -> None:
        """Each record in its own transaction; a partition stops at a record that must wait.

        A first pass tries each record once: one that fails transiently (e.g. a payment whose
        saga's CheckoutStarted is further on in this batch, on another topic) waits, with the
        rest of its partition, until its neighbours went; then those get their full retries.
        """
        waiting: set[tuple[str, int]] = set()
        failure: RetryLaterError | None = None
        for item in await self._first_pass(items):
            position = (item.delivery.topic, item.delivery.partition)
            if position in waiting:
                continue  # later records of that partition must not overtake it
            try:
                await self._single(item)
            except RetryLaterError as exc:
                waiting.add(position)
                failure = exc
        if failure is not None:
            raise failure

    async def _first_pass(self, items: list[Item]) -> list[Item]:
        """Each record once, without backoff; returns those left for the retrying pass."""
        later: list[Item] = []
        held: set[tuple[str, int]] = set()
        for item in items:
            position = (item.delivery.topic, item.delivery.partition)
            if position not in held:
                try:
                    await self._single(item, attempts=1)
                    continue
                except RetryLaterError:
                    held.add(position)
            later.append(item)
        return later

    async def _single(self, item: Item, attempts: int | None = None) -> None:
        """One record in its own transaction: applied, dead-lettered, or RetryLaterError."""
        limit = attempts or self.settings.retry_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._transaction([item])
                break
            except RejectedMessageError as exc:
                await self._dead_letter(item, exc.reason, attempt)
                break
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("%s failed on a record; dead-lettering it", self.service)
                    await self._dead_letter(item, f"{type(exc).__name__}: {exc}", attempt)
                    break
                if attempt >= limit:
                    if attempts is None:
                        self._count("failed", item.route.message_type)
                    raise RetryLaterError(str(exc)) from exc
                self._count_retry(exc, item.route.message_type)
                await asyncio.sleep(self._backoff(attempt))

    async def _transaction(self, items: list[Item], *, trial: bool = False) -> None:
        """Inbox claim of every id, the steps in record order, one outbox insert, one commit.

        A trial is a whole slot's attempt: if it fails, its records are handled again.
        """
        produced, consumed = self._unreadable(items)
        # Observations the handlers make count only if this transaction commits (in a trial,
        # even a rejection's: the records' re-run counts it).
        with scope.transaction(trial=trial):
            async with self.engine.begin() as conn:
                fresh = await self._claim_fresh(conn, items)
                hooks = hooks_of(fresh)
                for hook, batch in hooks:
                    await hook.before_batch(conn, batch)
                for item in fresh:
                    before = len(produced)
                    with journal.noting() as notes:
                        produced += await self._handle(conn, item)
                    consumed.append(entry(item, Outcome.APPLIED, journal.detail_of(notes), before))
                for hook, _ in hooks:
                    await hook.after_batch(conn)
                consumed += duplicates(items, fresh, len(produced))
                await outbox.write(
                    conn, self.mailbox.outbox, produced, self.mailbox.lanes, consumed
                )
        self._settle(items, {id(i) for i in fresh})

    def _unreadable(self, items: list[Item]) -> tuple[list[OutboxMessage], list[journal.Consumed]]:
        """The dead letters of the records that could not be read, and their journal rows."""
        letters: list[OutboxMessage] = []
        consumed: list[journal.Consumed] = []
        for item in items:
            if item.error is not None:
                consumed.append(entry(item, Outcome.DEAD_LETTERED, item.error, len(letters)))
                letters.append(dead_letter(item.delivery, item.error, 1, self.service))
        return letters, consumed

    async def _claim_fresh(self, conn: AsyncConnection, items: list[Item]) -> list[Item]:
        """The items to apply: decoded, first of their id in the batch, not in the inbox yet."""
        first: dict[uuid.UUID, Item] = {}
        for item in items:
            if item.decoded is not None:
                first.setdefault(item.decoded.envelope.message_id, item)
        if not first:
            return []
        claimed = await inbox.claim_many(
            conn,
            self._claim,
            [(mid, i.route.message_type) for mid, i in first.items()],
        )
        return [i for mid, i in first.items() if mid in claimed]

    async def _handle(self, conn: AsyncConnection, item: Item) -> list[OutboxMessage]:
        assert item.decoded is not None
        service, message_type = self.service, item.route.message_type
        started = time.perf_counter()
        with self._observed(item.delivery, message_type):
            produced = traced(await item.route.handler(conn, item.decoded))
        took = time.perf_counter() - started
        # Counted when the batch's transaction commits, like everything a handler observes.
        scope.observe(lambda m: m.handling.labels(service, message_type).observe(took))
        return produced

    def _settle(self, items: list[Item], fresh: set[int]) -> None:
        for item in items:
            if item.decoded is None:
                item.outcome = Outcome.DEAD_LETTERED
                self._log_rejected(item, item.error or "invalid")
            else:
                item.outcome = Outcome.APPLIED if id(item) in fresh else Outcome.DUPLICATE
            self._count(item.outcome, type_of(item))
        self.telemetry.metrics.batches.labels(self.service).observe(len(items))

    def _observed(self, delivery: Delivery, message_type: str) -> ContextManager[Span | None]:
        return observed(self.telemetry, self.service, delivery, message_type)

    def _count(self, outcome: str, message_type: str) -> None:
        self.outcomes[outcome] += 1
        self.telemetry.metrics.messages.labels(self.service, message_type, outcome).inc()

    def _count_retry(self, exc: Exception, message_type: str) -> None:
        self._count("retried", message_type)
        # Exactly ConflictError: a version conflict. Subclasses mean other things (e.g. the
        # saga's "not created yet", retried while the message may be overtaking its saga).
        if type(exc) is ConflictError:
            self.telemetry.metrics.conflicts.labels(self.service, message_type).inc()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self.settings.retry_max_delay_s, self.settings.retry_base_delay_s * 2 ** (attempt - 1)
        )
        return random.uniform(0, ceiling)  # full jitter: retries of many consumers spread out

    async def _dead_letter(self, item: Item, reason: str, attempts: int) -> None:
        """Park a record that can never apply; not claimed, so a replay of it can apply."""
        letter = dead_letter(item.delivery, reason, attempts, self.service)
        row = entry(item, Outcome.DEAD_LETTERED, reason, 0)
        async with self.engine.begin() as conn:
            await outbox.write(conn, self.mailbox.outbox, [letter], self.mailbox.lanes, [row])
        self._log_rejected(item, reason)
        item.outcome = Outcome.DEAD_LETTERED
        self._count(Outcome.DEAD_LETTERED, type_of(item))

    def _log_rejected(self, item: Item, reason: str) -> None:
        log_rejected(self.service, item.delivery, type_of(item), reason)
