"""The checkout timeline on the live stack: GET /admin/v1/checkouts/{id} after real checkouts.

Checkouts go through every running service over the broker; the timeline is read from the
journals those services wrote, never from Kafka.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from contracts import CheckoutStarted, LineItem
from ops.admin.app import create_admin_app
from ops.cli.admin import saga_app
from services.platform.db import create_engine
from tests.support.builders import checkout_started
from tests.support.payer import ScriptedPayer, eventually, publish
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An admin API client (the app alone, no runtime) with the stack's settings."""
    engine = create_engine(stack.settings, pool_size=1)
    app = create_admin_app(stack.settings, engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as opened:
            yield opened
    finally:
        await app.state.admin.telemetry.close()
        await engine.dispose()


async def _finished(client: httpx.AsyncClient, checkout_id: uuid.UUID, last: str) -> Any:
    """The checkout's view once the service that consumes `last` journaled it."""

    async def probe() -> dict[str, Any] | None:
        answer = await client.get(f"/admin/v1/checkouts/{checkout_id}")
        if answer.status_code != 200:
            return None
        view: dict[str, Any] = answer.json()
        consumed = {(e["message_type"], e["direction"]) for e in view["timeline"]}
        return view if (last, "in") in consumed else None

    return await eventually(probe, timeout=TIMEOUT)


def _applied(view: dict[str, Any], service: str) -> list[tuple[str, str | None]]:
    """(message type, detail) of what one service applied, in timeline order."""
    return [
        (e["message_type"], e["detail"])
        for e in view["timeline"]
        if e["service"] == service and e["direction"] == "in" and e["outcome"] == "applied"
    ]


def _causal(timeline: list[dict[str, Any]]) -> list[str]:
    """Every consumed message that comes before its own 'out' row (there must be none)."""
    produced_at = {e["message_id"]: i for i, e in enumerate(timeline) if e["direction"] == "out"}
    return [
        f"{e['service']} consumed {e['message_type']} at {i}, produced at {produced_at[e['message_id']]}"
        for i, e in enumerate(timeline)
        if e["direction"] == "in" and produced_at.get(e["message_id"], -1) > i
    ]


async def test_a_confirmed_checkout_reads_as_its_story_across_every_service(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, client: httpx.AsyncClient
) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 5)
    start = checkout_started(items=[(sku, 2, "4.50")], buyer_id="buyer-timeline")
    await publish(producer, start)

    view = await _finished(client, start.order_id, "DeductStock")

    assert view["group_id"] == str(start.order_id)
    assert view["saga"]["state"] == "Confirmed"
    assert [o["status"] for o in view["orders"]] == ["confirmed"]
    assert [(r["sku"], r["quantity"], r["status"]) for r in view["reservations"]] == [
        (sku, 2, "deducted")
    ]
    assert _applied(view, "saga") == [
        ("CheckoutStarted", "create_saga: (none) → Submitted"),
        ("StockReservationCompleted", "stock_reserved: Submitted → StockReserved"),
        ("PaymentCompleted", "payment_completed: StockReserved → Confirmed"),
    ]
    assert [t for t, _ in _applied(view, "inventory")] == ["ReserveStockForOrder", "DeductStock"]
    assert [t for t, _ in _applied(view, "orders")] == ["CheckoutStarted", "ConfirmOrder"]
    timeline = view["timeline"]
    saga_sent = [
        e["message_type"] for e in timeline if e["service"] == "saga" and e["direction"] == "out"
    ]
    assert saga_sent == [
        "ReserveStockForOrder",
        "PaymentRequested",
        "ConfirmOrder",
        "DeductStock",
        "ClearCart",
    ]
    assert _causal(timeline) == []
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
    assert {e["kind"] for e in timeline} == {"message"}


async def test_a_vendor_order_id_finds_its_whole_group(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, client: httpx.AsyncClient
) -> None:
    skus = {vendor: f"{vendor.upper()}-{uuid.uuid4().hex[:10]}" for vendor in ("acme", "globex")}
    for sku in skus.values():
        await stack.set_stock(sku, 5)
    group = CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id=f"buyer-{uuid.uuid4().hex[:8]}",
        currency="EUR",
        items=[
            LineItem(sku=sku, quantity=1, unit_price=Decimal("3.00"), vendor_id=vendor)
            for vendor, sku in skus.items()
        ],
    )
    await publish(producer, group)

    by_group = await _finished(client, group.order_id, "DeductStock")
    vendor_orders = {o["order_id"] for o in by_group["orders"]}
    assert len(vendor_orders) == 2
    assert str(group.order_id) not in vendor_orders
    # Each vendor order's own events (keyed by its id) are in the group's timeline.
    keys = {e["correlation_id"] for e in by_group["timeline"]}
    assert keys == {str(group.order_id), *vendor_orders}

    by_vendor_order = (await client.get(f"/admin/v1/checkouts/{min(vendor_orders)}")).json()
    assert by_vendor_order["group_id"] == str(group.order_id)
    assert by_vendor_order["saga"]["id"] == str(group.order_id)


async def test_an_unknown_checkout_is_a_404_with_a_sentence(client: httpx.AsyncClient) -> None:
    unknown = uuid.uuid4()
    answer = await client.get(f"/admin/v1/checkouts/{unknown}")
    assert answer.status_code == 404
    assert answer.json() == {"detail": f"nothing is known about checkout {unknown}"}
    assert (await client.get("/admin/v1/checkouts/not-a-uuid")).status_code == 422


async def test_the_cli_prints_the_timeline_as_aligned_text(
    stack: Stack,
    payer: ScriptedPayer,
    producer: AIOKafkaProducer,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 5)
    start = checkout_started(items=[(sku, 1, "2.00")], buyer_id="buyer-timeline-cli")
    await publish(producer, start)
    await _finished(client, start.order_id, "DeductStock")
    monkeypatch.setenv("CHECKOUT_DATABASE_URL", stack.settings.database_url.get_secret_value())

    # The command runs its own event loop, so it runs on a thread of its own here.
    shown = await asyncio.to_thread(CliRunner().invoke, saga_app, ["timeline", str(start.order_id)])

    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"checkout {start.order_id}")
    rows = [line for line in lines if "create_saga: (none) → Submitted" in line]
    assert len(rows) == 1
    assert "saga" in rows[0]
    assert "CheckoutStarted" in rows[0]
    unknown = await asyncio.to_thread(CliRunner().invoke, saga_app, ["timeline", str(uuid.uuid4())])
    assert unknown.exit_code == 1
