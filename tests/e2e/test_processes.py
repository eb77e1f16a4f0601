"""The product as processes: one per service plus a relay, fed by a plain producer's raw JSON.

The checkouts are written by hand here, not with the contracts models: an upstream in any
language has only the documented wire format.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.payer import eventually
from tests.support.processes import REPO_ROOT, Fleet

pytestmark = pytest.mark.e2e

TIMEOUT = 60.0
FINAL = ("Confirmed", "Failed")


def checkout_json(order_id: str, sku: str, quantity: int, unit_price: str) -> bytes:
    """A CheckoutStarted exactly as docs/wire.md documents the wire format."""
    envelope = {
        "message_id": str(uuid.uuid4()),
        "message_type": "CheckoutStarted",
        "correlation_id": order_id,
        "causation_id": None,
        "occurred_at": datetime.now(UTC).isoformat(),
        "schema_version": 1,
        "payload": {
            "order_id": order_id,
            "buyer_id": "e2e-buyer",
            "buyer_email": "buyer@example.com",
            "currency": "EUR",
            "items": [{"sku": sku, "quantity": quantity, "unit_price": unit_price}],
        },
    }
    return json.dumps(envelope).encode()


async def publish(
    producer: AIOKafkaProducer, sku: str, quantity: int = 1, unit_price: str = "10.00"
) -> str:
    """Publish one checkout to checkout.checkout_started keyed by its order id; the order id."""
    order_id = str(uuid.uuid4())
    value = checkout_json(order_id, sku, quantity, unit_price)
    headers = [
        ("message_type", b"CheckoutStarted"),
        ("correlation_id", order_id.encode()),
        ("schema_version", b"1"),
        ("content-type", b"application/json"),
    ]
    await producer.send_and_wait(
        "checkout.checkout_started", value, key=order_id.encode(), headers=headers
    )
    return order_id


async def rows(db: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Dict rows of a read-only query."""
    async with db.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql), params)]


async def set_stock(fleet: Fleet, sku: str, available: int) -> None:
    """Stock a product through the CLI, as an operator would (its env names the database)."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ops.cli", "stock", "set", sku, str(available)),
        cwd=REPO_ROOT,
        env=fleet.env,
        stdout=subprocess.DEVNULL,
    )
    assert await proc.wait() == 0


async def final_states(db: AsyncEngine, order_ids: list[str]) -> dict[str, str]:
    """Wait until every saga is Confirmed or Failed; their states by order id."""

    async def probe() -> dict[str, str] | None:
        found = await rows(
            db,
            "SELECT id::text AS id, state FROM saga.sagas WHERE id::text = ANY(:ids)",
            ids=order_ids,
        )
        states = {r["id"]: r["state"] for r in found}
        done = len(states) == len(order_ids) and all(s in FINAL for s in states.values())
        return states if done else None

    result = await eventually(probe, timeout=TIMEOUT, interval=0.2)
    assert isinstance(result, dict)
    return result


async def settled_stock(db: AsyncEngine, sku: str, **expected: int) -> dict[str, Any]:
    """Wait until the product's counters read as expected (deducts and releases are async)."""

    async def probe() -> dict[str, Any] | None:
        found = await rows(db, "SELECT * FROM inventory.products WHERE sku = :s", s=sku)
        ok = found and all(found[0][k] == v for k, v in expected.items())
        return found[0] if ok else None

    result = await eventually(probe, timeout=TIMEOUT, interval=0.2)
    assert isinstance(result, dict)
    return result


def new_sku() -> str:
    """A product of one test only."""
    return f"E2E-{uuid.uuid4().hex[:10]}"


async def order(db: AsyncEngine, order_id: str) -> dict[str, Any]:
    """The order row once it left `created`."""

    async def probe() -> dict[str, Any] | None:
        found = await rows(db, "SELECT * FROM orders.orders WHERE order_id::text = :o", o=order_id)
        return found[0] if found and found[0]["status"] != "created" else None

    result = await eventually(probe, timeout=TIMEOUT, interval=0.2)
    assert isinstance(result, dict)
    return result


async def consume_order_created(bootstrap: str, order_id: str) -> dict[str, Any]:
    """Read checkout.order_created from the beginning, as a plain analytics consumer would."""
    consumer = AIOKafkaConsumer(
        "checkout.order_created",
        bootstrap_servers=bootstrap,
        group_id=None,  # no group: reads every partition itself, no join to wait for
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(TIMEOUT):
            async for record in consumer:
                if record.key == order_id.encode():
                    event: dict[str, Any] = json.loads(record.value)
                    event["headers"] = {k: v.decode() for k, v in record.headers}
                    return event
    finally:
        await consumer.stop()
    raise AssertionError("consumer stopped without the event")


async def test_a_checkout_under_the_limit_is_confirmed_and_announced(
    fleet: Fleet, e2e_db: AsyncEngine, e2e_producer: AIOKafkaProducer, e2e_bootstrap: str
) -> None:
    sku = new_sku()
    await set_stock(fleet, sku, 10)
    order_id = await publish(e2e_producer, sku, quantity=2, unit_price="120.00")

    assert await final_states(e2e_db, [order_id]) == {order_id: "Confirmed"}
    assert (await order(e2e_db, order_id))["status"] == "confirmed"
    await settled_stock(e2e_db, sku, available=8, reserved=0, deducted=2)
    event = await consume_order_created(e2e_bootstrap, order_id)
    assert event["message_type"] == "order_created"
    assert event["correlation_id"] == order_id
    assert event["payload"]["order_id"] == order_id
    assert event["payload"]["total"] == "240.00"
    assert event["headers"]["message_type"] == "order_created"


async def test_service_and_relay_processes_serve_health_and_their_own_metrics(
    fleet: Fleet,
    e2e_db: AsyncEngine,
    e2e_producer: AIOKafkaProducer,
    saga_admin_port: int,
    relay_admin_port: int,
) -> None:
    sku = new_sku()
    await set_stock(fleet, sku, 5)
    order_id = await publish(e2e_producer, sku, quantity=1, unit_price="10.00")
    assert await final_states(e2e_db, [order_id]) == {order_id: "Confirmed"}

    # Each process's own counters: only its registry has them.
    saga = await _scrape(saga_admin_port)
    applied = 'message_type="CheckoutStarted",outcome="applied",service="saga"'
    assert _sample(saga, "checkout_messages_total", applied) >= 1, saga
    assert "checkout_saga_transitions_total{" in saga
    relay = await _scrape(relay_admin_port)
    assert _sample(relay, "checkout_relay_published_total") >= 1, relay


async def _scrape(port: int) -> str:
    """/metrics of a process, once its readiness check passes."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as admin:
        assert (await admin.get("/health/ready")).status_code == 200
        return (await admin.get("/metrics")).text


def _sample(metrics: str, name: str, labels: str = "") -> float:
    """The value of one sample of the Prometheus text (0 when absent)."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_checkout_above_the_limit_is_declined_and_compensated(
    fleet: Fleet, e2e_db: AsyncEngine, e2e_producer: AIOKafkaProducer
) -> None:
    sku = new_sku()
    await set_stock(fleet, sku, 10)
    order_id = await publish(e2e_producer, sku, quantity=3, unit_price="200.00")

    assert await final_states(e2e_db, [order_id]) == {order_id: "Failed"}
    failed = await order(e2e_db, order_id)
    assert failed["status"] == "failed"
    assert "above limit" in str(failed["failure_reason"])
    await settled_stock(e2e_db, sku, available=10, reserved=0, deducted=0)


async def test_inventory_killed_mid_flow_and_restarted_loses_nothing(
    fleet: Fleet, e2e_db: AsyncEngine, e2e_producer: AIOKafkaProducer
) -> None:
    sku, stock, checkouts = new_sku(), 15, 20
    await set_stock(fleet, sku, stock)
    first = [await publish(e2e_producer, sku) for _ in range(7)]

    async def inventory_working() -> bool:
        reserved = await rows(
            e2e_db,
            "SELECT 1 FROM saga.sagas WHERE id::text = ANY(:ids) AND state <> 'Submitted'",
            ids=first,
        )
        return bool(reserved)

    await eventually(inventory_working, timeout=TIMEOUT, interval=0.02)
    assert fleet.kill9("inventory") == -9
    rest = []
    for _ in range(checkouts - len(first)):
        rest.append(await publish(e2e_producer, sku))
        await asyncio.sleep(0.02)
    fleet.start("inventory")

    states = await final_states(e2e_db, first + rest)
    confirmed = sum(1 for s in states.values() if s == "Confirmed")
    assert confirmed == stock  # every unit sold once, the other five out of stock
    await settled_stock(e2e_db, sku, available=0, reserved=0, deducted=stock)
