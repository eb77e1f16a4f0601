"""A payment deadline measures the payer, not our backlog: answers queued behind a held-back saga
consumer are applied before the deadline may fire; without an answer it still fires."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest
from aiokafka import AIOKafkaProducer

from contracts import CheckoutStarted, PaymentRequested
from contracts.envelope import utcnow
from saga.deadline_gate import key_hash
from saga.timeouts import DeadlineGate
from services.platform.progress import GroupProgress
from services.platform.settings import KafkaSettings, Settings
from services.platform.topics import ensure_topics
from tests.support.builders import checkout_started, unique_sku
from tests.support.payer import Answer, ScriptedPayer, completed, eventually, publish
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


async def _reserved(stack: Stack, payer: ScriptedPayer, start: CheckoutStarted) -> datetime:
    """Wait until the saga asked for payment; its payment deadline."""

    async def probe() -> datetime | None:
        row = await stack.saga(start.order_id)
        if row is None or row["state"] != "StockReserved" or start.order_id not in payer.requests:
            return None
        deadline: datetime = row["payment_deadline"]
        return deadline

    found = await eventually(probe, timeout=TIMEOUT)
    assert isinstance(found, datetime)
    return found


async def _final(stack: Stack, order_id: uuid.UUID) -> dict[str, object]:
    async def probe() -> dict[str, object] | None:
        row = await stack.saga(order_id)
        return row if row and row["state"] in ("Confirmed", "Failed") else None

    found = await eventually(probe, timeout=TIMEOUT)
    assert isinstance(found, dict)
    return found


async def _checkout(
    stack: Stack, producer: AIOKafkaProducer, payer: ScriptedPayer
) -> CheckoutStarted:
    """A checkout the payer does not answer by itself."""
    sku = unique_sku()
    await stack.set_stock(sku, 5)
    start = checkout_started(items=[(sku, 1, "10.00")], buyer_id=f"buyer-{uuid.uuid4().hex[:8]}")
    payer.script[start.order_id] = Answer.SILENT
    await publish(producer, start)
    return start


@asynccontextmanager
async def saga_consumer_held(stack: Stack) -> AsyncIterator[None]:
    """Hold every saga consumer transaction at its inbox claim, so none commits (nor its offsets).

    The timeout poller never writes the inbox, so it keeps running: the lag of a busy consumer.
    """
    async with stack.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.exec_driver_sql("LOCK TABLE saga.inbox IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.rollback()


async def test_an_answer_queued_behind_the_saga_consumer_beats_its_deadline(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    start = await _checkout(stack, producer, payer)
    deadline = await _reserved(stack, payer, start)
    request: PaymentRequested = payer.requests[start.order_id][0]

    async with saga_consumer_held(stack):
        await payer.send(completed(request))  # on the broker in time, but not consumed
        wait = (
            deadline - utcnow()
        ).total_seconds() + 3 * stack.settings.saga.timeout_poll_interval_s
        await asyncio.sleep(max(wait, 0) + 1.0)
        assert utcnow() > deadline
        assert await stack.saga_state(start.order_id) == "StockReserved"

    saga = await _final(stack, start.order_id)
    assert saga["state"] == "Confirmed"
    assert await stack.sent("saga", "RefundPayment", start.order_id) == []
    assert await stack.sent("saga", "ReleaseStockReservations", start.order_id) == []


async def test_without_an_answer_the_deadline_still_fires_once_the_consumer_caught_up(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    start = await _checkout(stack, producer, payer)
    await _reserved(stack, payer, start)

    saga = await _final(stack, start.order_id)
    assert saga["state"] == "Failed"
    assert saga["data"]["failure_reason"] == "payment timeout"  # type: ignore[index]
    released = await stack.sent("saga", "ReleaseStockReservations", start.order_id)
    assert len(released) == 1


async def test_the_saga_key_hash_column_is_kafkas_murmur2_of_the_order_id(stack: Stack) -> None:
    keys = [str(uuid.uuid4()) for _ in range(300)] + ["", "a", "ab", "abc", "ünï"]
    rows = await stack.rows(
        "SELECT k, saga.kafka_key_hash(k) AS h FROM unnest(CAST(:keys AS text[])) AS k", keys=keys
    )
    assert {r["k"]: r["h"] for r in rows} == {k: key_hash(k) for k in keys}
    start_id = (await stack.rows("SELECT id, key_hash FROM saga.sagas LIMIT 1"))[0]
    assert start_id["key_hash"] == key_hash(str(start_id["id"]))


async def test_an_unreachable_broker_releases_nothing_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9")
    gate = DeadlineGate(GroupProgress(kafka, "checkout-saga.saga", ["t"]), max_snapshots=4)
    with caplog.at_level(logging.WARNING, logger="checkout_saga.saga.timeouts"):
        assert await gate.ask() is None
        assert await gate.ask() is None
    await gate.close()
    ours = [r.getMessage() for r in caplog.records if r.name == "checkout_saga.saga.timeouts"]
    assert len(ours) == 1
    assert ours[0].startswith("payment deadlines wait: the broker cannot be asked")


async def test_group_progress_reads_the_end_of_a_many_record_batch(
    integration_settings: Settings,
) -> None:
    """Tansu reports a batch's base offset + 1 as the end; the progress reader finds its end."""
    kafka = integration_settings.kafka
    topic = f"tests.progress.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=200)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"x", key=b"one-key") for _ in range(20)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    progress = GroupProgress(kafka, f"tests.progress.{uuid.uuid4().hex[:8]}", [topic])
    try:
        counts = await progress.partition_counts()
        ends = await progress.ends()
        committed = await progress.committed()
    finally:
        await progress.close()
    assert counts == {topic: kafka.topic_partitions}
    assert sum(ends.values()) == 20
    assert all(offset is None or offset < 0 for offset in committed.values())
