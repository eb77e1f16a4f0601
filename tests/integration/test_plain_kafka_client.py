"""A client that knows only docs/wire.md and the AsyncAPI document: raw JSON, no contracts package.

It publishes a two-vendor `CheckoutStarted` with policy `partial` and reads the per-vendor
outcomes and the one `checkout_group_completed` from the topics, as another team's service would.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.support.payer import ScriptedPayer
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TOPICS = {
    "started": "checkout.checkout_started",
    "confirmed": "checkout.order_confirmed",
    "failed": "checkout.order_marked_failed",
    "group": "checkout.checkout_group_completed",
}
TIMEOUT_S = 60.0


def _checkout_started(group_id: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The envelope exactly as docs/wire.md shows it, with vendors on the lines."""
    return {
        "message_id": str(uuid.uuid4()),
        "message_type": "CheckoutStarted",
        "correlation_id": group_id,
        "causation_id": None,
        "occurred_at": datetime.now(UTC).isoformat(),
        "schema_version": 1,
        "payload": {
            "order_id": group_id,
            "buyer_id": f"buyer-{uuid.uuid4().hex[:8]}",
            "buyer_email": None,
            "cart_id": None,
            "currency": "EUR",
            "policy": "partial",
            "items": lines,
        },
    }


async def _listen(bootstrap: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        TOPICS["confirmed"],
        TOPICS["failed"],
        TOPICS["group"],
        bootstrap_servers=bootstrap,
        group_id=f"tests.plain-client.{uuid.uuid4().hex[:8]}",
        auto_offset_reset="latest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    deadline = asyncio.get_running_loop().time() + 30
    while not consumer.assignment() and asyncio.get_running_loop().time() < deadline:
        await consumer.getmany(timeout_ms=100)
    # "latest" is decided at the first fetch: take the positions now, before publishing.
    for partition in consumer.assignment():
        await consumer.position(partition)
    return consumer


async def _collect(consumer: AIOKafkaConsumer, group_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every message about this group (its vendor orders' events and the group's), until final."""
    seen: dict[str, list[dict[str, Any]]] = {"confirmed": [], "failed": [], "group": []}
    by_topic = {topic: name for name, topic in TOPICS.items()}
    clock = asyncio.get_running_loop().time
    deadline, quiet_until = clock() + TIMEOUT_S, None
    while clock() < (quiet_until or deadline):
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for record in records:
                envelope = json.loads(record.value)
                headers = {k: v.decode() for k, v in record.headers}
                assert headers["message_type"] == envelope["message_type"]
                assert record.key.decode() == envelope["correlation_id"]
                group = envelope["payload"].get("checkout_group_id", envelope["correlation_id"])
                if group == group_id:
                    seen[by_topic[record.topic]].append(envelope)
        finished = seen["group"] and len(seen["confirmed"]) + len(seen["failed"]) >= 2
        if finished and quiet_until is None:
            quiet_until = clock() + 1.0  # long enough to see a second event, were there one
    if quiet_until is None:
        raise AssertionError(f"group {group_id} did not finish: {seen}")
    return seen


async def test_a_plain_client_sees_each_vendor_outcome_and_one_group_event(
    stack: Stack, payer: ScriptedPayer, kafka_bootstrap: str
) -> None:
    in_stock, sold_out = f"PLAIN-{uuid.uuid4().hex[:8]}", f"PLAIN-{uuid.uuid4().hex[:8]}"
    await stack.set_stock(in_stock, 5)
    await stack.set_stock(sold_out, 0)
    group_id = str(uuid.uuid4())
    message = _checkout_started(
        group_id,
        [
            {"sku": in_stock, "quantity": 2, "unit_price": "12.50", "vendor_id": "acme"},
            {"sku": sold_out, "quantity": 1, "unit_price": "30.00", "vendor_id": "globex"},
        ],
    )
    consumer = await _listen(kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        headers = {
            "message_id": message["message_id"],
            "message_type": "CheckoutStarted",
            "correlation_id": group_id,
            "schema_version": "1",
            "content-type": "application/json",
        }
        await producer.send_and_wait(
            TOPICS["started"],
            json.dumps(message).encode(),
            key=group_id.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
        seen = await _collect(consumer, group_id)
    finally:
        await producer.stop()
        await consumer.stop()

    [confirmed] = [e["payload"] for e in seen["confirmed"]]
    [failed] = [e["payload"] for e in seen["failed"]]
    assert (confirmed["vendor_id"], confirmed["total"]) == ("acme", "25.00")
    assert failed["vendor_id"] == "globex"
    assert failed["rejected"] == [{"sku": sold_out, "quantity": 1, "reason": "insufficient_stock"}]
    [group] = [e["payload"] for e in seen["group"]]
    assert group["order_id"] == group_id
    assert (group["outcome"], group["balance_due"]) == ("partially_completed", "25.00")
    assert {o["vendor_id"]: o["status"] for o in group["orders"]} == {
        "acme": "confirmed",
        "globex": "failed",
    }
