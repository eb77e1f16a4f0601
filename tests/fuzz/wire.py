"""The broker side of the fuzz: records sent as they are, and what became of them, read back.

Through Kafka the test sees no outcomes: a record's fate is read from the services' tables. A
service dead-lettered it when its outbox holds the letter derived from the record's position;
it applied it when its inbox holds the record's message id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, TOPICS, CheckoutStarted
from contracts.codec import decode, encode, headers_for
from services.platform.consumer import Delivery, Outcome
from tests.fuzz import checks
from tests.fuzz.checkouts import sagas_final
from tests.fuzz.records import Case

Sent = list[tuple[Delivery, Case]]
Subscribers = dict[str, tuple[str, ...]]
"""topic -> the services (named as their schemas) that consume it."""


async def send(producer: AIOKafkaProducer, cases: Sequence[Case]) -> Sent:
    """Publish cases as they are (key, headers, bytes), all in flight at once; where they landed."""
    pending = [
        await producer.send(
            TOPICS[case.message_type],
            case.value,
            key=None if case.key is None else case.key.encode(),
            headers=[(k, v.encode()) for k, v in case.headers.items()],
        )
        for case in cases
    ]
    landed = await asyncio.gather(*pending)
    return [
        (Delivery(c.value, TOPICS[c.message_type], m.partition, m.offset, c.key, c.headers), c)
        for c, m in zip(cases, landed, strict=True)
    ]


def checkout_case(checkout: CheckoutStarted) -> Case:
    """A valid checkout as a record an upstream publishes."""
    envelope, key = checkout.to_envelope(), str(checkout.order_id)
    value = encode(envelope)
    return Case("valid", checkout.message_type, value, key, headers_for(envelope), False, key)


async def wait_final(
    engine: AsyncEngine, checkouts: Sequence[CheckoutStarted], limit: float
) -> None:
    """Until every one of these checkouts' sagas is final (fails after `limit` seconds)."""
    ids, deadline = [c.order_id for c in checkouts], time.monotonic() + limit
    while await sagas_final(engine, ids) < len(ids):
        assert time.monotonic() < deadline, f"{len(ids)} checkouts did not all finish"
        await asyncio.sleep(0.2)


async def traffic(engine: AsyncEngine, keys: list[str], subscribers: Subscribers) -> list[Case]:
    """The valid messages the services sent under these keys (still in their outboxes)."""
    seeds = []
    async with engine.connect() as conn:
        for schema in {s for services in subscribers.values() for s in services}:
            rows = await conn.execute(
                text(
                    f"SELECT topic, message_key, payload, headers FROM {schema}.outbox "
                    "WHERE message_key = ANY(:k) AND topic <> :dlq"
                ),
                {"k": keys, "dlq": DEAD_LETTER_TOPIC},
            )
            for r in rows:
                if r.topic in subscribers:
                    payload, key = bytes(r.payload), str(r.message_key)
                    message_type = decode(payload).envelope.message_type
                    seeds.append(
                        Case("valid", message_type, payload, key, dict(r.headers), False, key)
                    )
    return seeds


async def settle(
    engine: AsyncEngine, sent: Sent, subscribers: Subscribers, limit: float
) -> list[checks.Settled]:
    """Every record's outcome at every consuming service, once all are known (or `limit` passes)."""
    deadline = time.monotonic() + limit
    while True:
        records = await _outcomes(engine, sent, subscribers)
        waiting = [r for r in records if None in r.outcomes.values()]
        if not waiting or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.5)


async def _outcomes(
    engine: AsyncEngine, sent: Sent, subscribers: Subscribers
) -> list[checks.Settled]:
    letters = await checks.dead_letters(engine)
    claimed = await _claimed(engine, [c for _, c in sent], subscribers)
    settled = []
    for delivery, case in sent:
        outcomes: dict[str, Outcome | None] = {}
        for service in subscribers[delivery.topic]:
            if checks.letter_id(delivery, service) in letters:
                outcomes[service] = Outcome.DEAD_LETTERED
            elif (service, _message_id(case)) in claimed:
                outcomes[service] = Outcome.APPLIED
            else:
                outcomes[service] = None  # not yet: a stall if it stays so
        settled.append(checks.Settled(delivery, case.kind, case.refused, case.order_id, outcomes))
    return settled


def _message_id(case: Case) -> str | None:
    try:
        return str(json.loads(case.value)["message_id"])
    except (ValueError, KeyError, TypeError):
        return None


async def _claimed(
    engine: AsyncEngine, cases: list[Case], subscribers: Subscribers
) -> set[tuple[str, str]]:
    """(service, message id) of the valid records' ids each service's inbox holds.

    Only valid ones: a mutant keeps the message id of the valid record it was made from, so
    for a refused record only its dead letter tells what became of it.
    """
    ids = [i for i in (_message_id(c) for c in cases if not c.refused) if i]
    found: set[tuple[str, str]] = set()
    async with engine.connect() as conn:
        for schema in {s for services in subscribers.values() for s in services}:
            rows = await conn.execute(
                text(
                    f"SELECT message_id FROM {schema}.inbox "
                    "WHERE message_id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": ids},
            )
            found.update((schema, str(r.message_id)) for r in rows)
    return found
