"""Dead letters: listed from the topic with their reason and origin, replayed by id or filter."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from contracts import (
    DEAD_LETTER_TOPIC,
    CheckoutStarted,
    LineItem,
    MessageHeaders,
    PaymentFailed,
)
from contracts.codec import encode, headers_for
from contracts.topics import topic_for
from ops.admin.app import create_admin_app
from ops.cli.dlq import dlq_app
from services.platform.dlq import DeadLetter, DeadLetterFilter, read_dead_letters
from services.platform.settings import KafkaSettings
from tests.support.payer import ScriptedPayer, eventually, publish
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


async def _letters(
    kafka: KafkaSettings, where: DeadLetterFilter, count: int, *, timeout: float = TIMEOUT
) -> list[DeadLetter]:
    async def probe() -> list[DeadLetter]:
        found = await read_dead_letters(kafka, where)
        return found if len(found) >= count else []

    result = await eventually(probe, timeout=timeout, interval=0.3)
    assert isinstance(result, list)
    return result


def _cli(kafka: KafkaSettings, *args: str) -> str:
    env = {"CHECKOUT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    result = CliRunner().invoke(dlq_app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


async def _stale_payment(producer: AIOKafkaProducer, start: CheckoutStarted) -> uuid.UUID:
    """A payment failure older than the orphan grace for an order with no saga yet: rejected
    for good (a completed payment would be refunded instead: money never waits in the DLQ)."""
    paid = PaymentFailed(order_id=start.order_id, payment_id=uuid.uuid4(), reason="declined")
    envelope = paid.to_envelope(occurred_at=datetime.now(UTC) - timedelta(hours=2))
    await producer.send_and_wait(
        topic_for(paid),
        encode(envelope),
        key=str(start.order_id).encode(),
        headers=[(k, v.encode()) for k, v in headers_for(envelope).items()],
    )
    return envelope.message_id


async def test_a_rejected_payment_is_listed_and_applied_once_replayed(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    kafka = stack.settings.kafka
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 5)
    start = CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id="dlq-buyer",
        currency="EUR",
        items=[LineItem(sku=sku, quantity=1, unit_price=Decimal("7.00"))],
    )
    message_id = await _stale_payment(producer, start)

    [letter] = await _letters(kafka, DeadLetterFilter(message_id=str(message_id)), 1)
    assert letter.rejected_by == "saga"
    assert letter.original_topic == topic_for(PaymentFailed)
    assert "no saga" in letter.error
    assert letter.key == str(start.order_id)
    assert "dlq_error" not in letter.original_headers()
    listed = json.loads(
        await asyncio.to_thread(_cli, kafka, "list", "--json", "--message-id", str(message_id))
    )
    assert [item["message_id"] for item in listed] == [str(message_id)]

    await publish(producer, start)  # now the saga exists: the replayed payment applies
    await eventually(lambda: stack.saga_state(start.order_id), timeout=TIMEOUT)
    assert "replayed 1" in await asyncio.to_thread(_cli, kafka, "replay", str(message_id))

    async def applied() -> bool:
        found = await stack.rows("SELECT 1 FROM saga.inbox WHERE message_id = :m", m=message_id)
        return bool(found)

    await eventually(applied, timeout=TIMEOUT)


async def test_a_replayed_invalid_message_is_dead_lettered_again_under_a_new_offset(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    kafka = stack.settings.kafka
    message_id = uuid.uuid4()
    await producer.send_and_wait(
        "checkout.checkout_started",
        b'{"not": "an envelope"',
        key=str(uuid.uuid4()).encode(),
        headers=[("message_id", str(message_id).encode())],
    )
    saga_only = DeadLetterFilter(message_id=str(message_id), service="saga")
    [first] = await _letters(kafka, saga_only, 1)
    assert "malformed JSON" in first.error

    output = await asyncio.to_thread(_cli, kafka, "replay", str(message_id), "--service", "saga")
    assert "replayed 1" in output

    letters = await _letters(kafka, saga_only, 2, timeout=TIMEOUT * 2)
    offsets = {letter.summary()["original_offset"] for letter in letters}
    assert len(offsets) == 2  # a new delivery, a new position, a new letter
    assert all(letter.value == first.value for letter in letters)


def _letter(**headers: str) -> DeadLetter:
    return DeadLetter(0, 0, "k", b"{}", headers)


def test_filters_match_topic_service_error_and_id() -> None:
    letter = _letter(
        message_id="m-1",
        dlq_original_topic="checkout.payment_completed",
        dlq_rejected_by="saga",
        dlq_error="PaymentCompleted for an order that has no saga",
        dlq_original_partition="1",
        dlq_original_offset="9",
    )
    assert DeadLetterFilter().matches(letter)
    assert DeadLetterFilter(topic="checkout.payment_completed", service="saga").matches(letter)
    assert DeadLetterFilter(error="NO SAGA", message_id="m-1").matches(letter)
    assert DeadLetterFilter(message_id=str(letter.letter_id)).matches(letter)
    assert not DeadLetterFilter(topic="checkout.checkout_started").matches(letter)
    assert not DeadLetterFilter(service="orders").matches(letter)
    assert not DeadLetterFilter(error="quantity").matches(letter)
    assert not DeadLetterFilter(message_id="m-2").matches(letter)
    assert letter.original_headers() == {"message_id": "m-1"}


def test_replay_needs_an_id_or_all() -> None:
    result = CliRunner().invoke(dlq_app, ["replay"])
    assert result.exit_code != 0
    assert "MESSAGE_ID or --all" in result.output


async def test_every_letter_of_a_batched_write_is_listed(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    # The relay sends rows without waiting for each ack, so letters reach the topic in
    # multi-record batches; Tansu then under-reports the end offset, and a reader that trusts
    # it misses the tail.
    marker = f"batched-{uuid.uuid4().hex}"
    # A letter's id derives from its origin: a topic of its own keeps these from sharing one
    # with a real letter (the list keeps the first copy of an id).
    origin = f"test.batched.{marker}".encode()
    sends = [
        await producer.send(
            DEAD_LETTER_TOPIC,
            b"{}",
            key=b"k",
            headers=[
                (MessageHeaders.ERROR, marker.encode()),
                (MessageHeaders.ORIGINAL_TOPIC, origin),
                (MessageHeaders.ORIGINAL_PARTITION, b"0"),
                (MessageHeaders.ORIGINAL_OFFSET, str(n).encode()),
                (MessageHeaders.REJECTED_BY, b"saga"),
            ],
        )
        for n in range(BATCH)
    ]
    await asyncio.gather(*sends)
    letters = await read_dead_letters(stack.settings.kafka, DeadLetterFilter(error=marker))
    assert len(letters) == BATCH


BATCH = 40


async def test_a_letter_replayed_over_the_admin_api_applies_and_its_timeline_shows_both(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 5)
    start = CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id="dlq-buyer",
        currency="EUR",
        items=[LineItem(sku=sku, quantity=1, unit_price=Decimal("7.00"))],
    )
    message_id = await _stale_payment(producer, start)
    await _letters(stack.settings.kafka, DeadLetterFilter(message_id=str(message_id)), 1)
    await publish(producer, start)
    await eventually(lambda: stack.saga_state(start.order_id), timeout=TIMEOUT)

    app = create_admin_app(stack.settings, stack.engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            answer = await client.post(
                "/admin/v1/dead-letters/replay", json={"ids": [str(message_id)]}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"replayed": 1, "missing": []}

            async def both_journaled() -> list[str]:
                view = (await client.get(f"/admin/v1/checkouts/{start.order_id}")).json()
                told = [
                    e["outcome"]
                    for e in view["timeline"]
                    if e.get("message_id") == str(message_id) and e.get("service") == "saga"
                ]
                return told if "applied" in told else []

            told = await eventually(both_journaled, timeout=TIMEOUT)
    finally:
        await app.state.admin.telemetry.close()
    # First refused (no saga yet), then applied once replayed: the timeline tells both.
    assert told == ["dead_lettered", "applied"]
