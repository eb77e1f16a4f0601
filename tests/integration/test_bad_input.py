"""Hostile input on a live topic is dead-lettered with a reason and never blocks the partition."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer

from contracts import CheckoutStarted, LineItem, MessageHeaders
from contracts.topics import topic_for
from tests.support.payer import ScriptedPayer, eventually, publish
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def _envelope(order_id: uuid.UUID, payload: dict[str, object], message_type: str) -> bytes:
    return json.dumps(
        {
            "message_id": str(uuid.uuid4()),
            "message_type": message_type,
            "correlation_id": str(order_id),
            "occurred_at": "2026-11-22T10:00:00Z",
            "payload": payload,
        }
    ).encode()


def _bad_values(order_id: uuid.UUID) -> dict[str, bytes]:
    item = {"sku": "SKU-1", "quantity": 1, "unit_price": "1.00"}
    base = {"order_id": str(order_id), "buyer_id": "b", "currency": "EUR"}
    return {
        "malformed": b'{"message_id": "not json',
        "unknown type": _envelope(order_id, base, "CheckoutExploded"),
        "quantity 0": _envelope(
            order_id, {**base, "items": [{**item, "quantity": 0}]}, "CheckoutStarted"
        ),
        "10000 items": _envelope(
            order_id,
            {**base, "items": [{**item, "sku": f"S{i}"} for i in range(10_000)]},
            "CheckoutStarted",
        ),
        "non-uuid id": _envelope(
            order_id, {**base, "order_id": "42", "items": [item]}, "CheckoutStarted"
        ),
    }


async def test_invalid_checkouts_are_dead_lettered_and_the_partition_keeps_flowing(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 1)
    good = CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id="buyer",
        currency="EUR",
        items=[LineItem(sku=sku, quantity=1, unit_price=Decimal("5.00"))],
    )
    key = str(good.order_id).encode()  # same key: the same partition as the good checkout
    bad = _bad_values(good.order_id)
    for value in bad.values():
        await producer.send_and_wait(topic_for(CheckoutStarted), value, key=key)
    await publish(producer, good)

    async def confirmed() -> bool:
        return await stack.saga_state(good.order_id) == "Confirmed"

    await eventually(confirmed, timeout=60)

    async def letters() -> list[dict[str, object]]:
        rows = await stack.sent("saga", "dead_letter", good.order_id)
        return rows if len(rows) >= len(bad) else []

    rows = await eventually(letters, timeout=30)
    reasons = [r["headers"][MessageHeaders.ERROR] for r in rows]  # type: ignore[index, union-attr]
    assert len(reasons) == len(bad), reasons
    assert any("malformed JSON" in r for r in reasons)
    assert any("unknown message_type" in r for r in reasons)
    assert any("quantity" in r for r in reasons)
    assert any("exceeds" in r or "at most 100 items" in r for r in reasons)
    assert all(
        r[MessageHeaders.ORIGINAL_TOPIC] == topic_for(CheckoutStarted)
        for r in [x["headers"] for x in rows]
    )  # type: ignore[index]
    # No state from the bad ones: the only saga under this key is the good one, with one order.
    orders = await stack.rows(
        "SELECT count(*) AS n FROM orders.orders WHERE order_id = :o", o=good.order_id
    )
    assert orders == [{"n": 1}]
