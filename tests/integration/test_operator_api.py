"""Operator actions and stuck sagas on the live stack: the admin API, the CLI, the token, Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr
from typer.testing import CliRunner

from contracts import MessageHeaders, ReserveStockForOrder
from contracts.topics import topic_for
from ops.cli.main import cli
from saga.deadline_gate import partition_of
from services.platform.settings import AdminSettings
from tests.support.builders import checkout_started
from tests.support.payer import ScriptedPayer, eventually, publish
from tests.support.stack import Admin, Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
TOKEN = "operator-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Opener = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def admin(admin_client: Admin) -> Opener:
    """An admin API client with a token, on the stack's database."""
    return lambda: admin_client(admin=AdminSettings(token=SecretStr(TOKEN)))


async def test_the_token_guards_actions_and_the_stuck_list(admin: Opener) -> None:
    order = uuid.uuid4()
    body = {"reason": "testing the guard"}
    async with admin() as client:
        for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
            for action in ("abort", "retry"):
                refused = await client.post(
                    f"/admin/v1/sagas/{order}/{action}", json=body, headers=wrong
                )
                assert refused.status_code == 401, (action, wrong)
            assert (await client.get("/admin/v1/sagas/stuck", headers=wrong)).status_code == 401
        assert (await client.get("/admin/v1/sagas/stuck", headers=AUTH)).status_code == 200
        unknown = await client.post(f"/admin/v1/sagas/{order}/abort", json=body, headers=AUTH)
        assert (unknown.status_code, unknown.json()) == (404, {"detail": f"no saga {order}"})
        for bad in (
            {},
            {"reason": ""},
            {"reason": "  "},
            {"reason": "x" * 501},
            {"reason": "a\x00b"},
        ):
            answer = await client.post(f"/admin/v1/sagas/{order}/retry", json=bad, headers=AUTH)
            assert answer.status_code == 422, bad


async def _published_ids(bootstrap: str, order_id: uuid.UUID) -> list[str]:
    """Message ids of every ReserveStockForOrder record of this order on the broker."""
    topic, key = topic_for(ReserveStockForOrder), str(order_id)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        tp = TopicPartition(topic, partition_of(key, len(partitions)))
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        ids = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                for record in records:
                    if record.key == key.encode():
                        headers = dict(record.headers)
                        ids.append(headers[MessageHeaders.MESSAGE_ID].decode())
        return ids
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def test_retry_and_abort_while_inventory_is_away(
    stack: Stack,
    payer: ScriptedPayer,
    producer: AIOKafkaProducer,
    admin: Opener,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sku_a, sku_b = (f"SKU-{uuid.uuid4().hex[:10]}" for _ in range(2))
    await stack.set_stock(sku_a, 5)
    await stack.set_stock(sku_b, 5)
    retried = checkout_started(items=[(sku_a, 2, "4.50")], buyer_id="buyer-operator")
    aborted = checkout_started(items=[(sku_b, 2, "4.50")], buyer_id="buyer-operator")
    await stack.stop_inventory()
    try:
        await publish(producer, retried)
        await publish(producer, aborted)

        async def both_waiting() -> bool:
            states = [await stack.saga_state(s.order_id) for s in (retried, aborted)]
            sent = await stack.sent("saga", "ReserveStockForOrder", retried.order_id)
            return states == ["Submitted", "Submitted"] and bool(sent) and bool(sent[0]["sent_at"])

        await eventually(both_waiting, timeout=TIMEOUT)
        [request] = await stack.sent("saga", "ReserveStockForOrder", retried.order_id)
        async with admin() as client:
            body = {"reason": "inventory was down", "operator": "carol"}
            answer = await client.post(
                f"/admin/v1/sagas/{retried.order_id}/retry", json=body, headers=AUTH
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["transition"] == "reservation_retried"
            assert answer.json()["message_ids"] == [str(request["message_id"])]
            answer = await client.post(
                f"/admin/v1/sagas/{aborted.order_id}/abort",
                json={"reason": "buyer asked"},
                headers={**AUTH, "X-Operator": "dave"},
            )
            assert answer.status_code == 200, answer.text
            assert (answer.json()["operator"], answer.json()["to_state"]) == ("dave", "Failed")

        async def published_twice() -> bool:
            rows = await stack.sent("saga", "ReserveStockForOrder", retried.order_id)
            return len(rows) == 1 and rows[0]["sent_at"] is not None
    finally:
        await stack.restart_inventory()

    await eventually(published_twice, timeout=TIMEOUT)
    ids = await _published_ids(kafka_bootstrap, retried.order_id)
    assert ids == [str(request["message_id"])] * 2, "the same command, published again"

    async def settled() -> bool:
        # Confirmed is the saga's commit; inventory deducts when it consumes DeductStock, later.
        stock_a, stock_b = await stack.stock(sku_a), await stack.stock(sku_b)
        return (
            await stack.saga_state(retried.order_id) == "Confirmed"
            and stock_a["deducted"] == 2
            and await stack.saga_state(aborted.order_id) == "Failed"
            and (stock_b["available"], stock_b["reserved"]) == (5, 0)
            and bool(await stack.sent("saga", "ReleaseStockReservations", aborted.order_id))
        )

    await eventually(settled, timeout=TIMEOUT)
    stock_a = await stack.stock(sku_a)
    assert (stock_a["available"], stock_a["reserved"], stock_a["deducted"]) == (3, 0, 2)
    failed = await stack.rows(
        "SELECT status, failure_reason FROM orders.orders WHERE order_id = :o", o=aborted.order_id
    )
    assert failed == [{"status": "failed", "failure_reason": "aborted by dave: buyer asked"}]
    actions = await stack.rows(
        "SELECT order_id, action, actor, reason, outcome FROM saga.operator_actions "
        "WHERE order_id = ANY(:ids) ORDER BY id",
        ids=[retried.order_id, aborted.order_id],
    )
    assert [(a["action"], a["actor"], a["outcome"]) for a in actions] == [
        ("retry", "carol", "applied"),
        ("abort", "dave", "applied"),
    ]
    await _final_sagas_are_refused(admin, retried.order_id, monkeypatch, stack)


async def _final_sagas_are_refused(
    admin: Opener, order_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch, stack: Stack
) -> None:
    async with admin() as client:
        refused = await client.post(
            f"/admin/v1/sagas/{order_id}/abort", json={"reason": "too late"}, headers=AUTH
        )
    assert refused.status_code == 409
    assert refused.json() == {"detail": "the saga is final (Confirmed): nothing to abort"}
    monkeypatch.setenv("CHECKOUT_DATABASE_URL", stack.settings.database_url.get_secret_value())
    monkeypatch.setenv("USER", "erin")
    args = ["saga", "retry", str(order_id), "--reason", "from the terminal"]
    result: Any = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 1, result.output
    assert "nothing to retry" in result.output
    recorded = await stack.rows(
        "SELECT actor, outcome FROM saga.operator_actions WHERE order_id = :o ORDER BY id",
        o=order_id,
    )
    assert recorded[-2:] == [
        {"actor": "admin-api", "outcome": "refused"},
        {"actor": "erin", "outcome": "refused"},
    ]
    listed = await asyncio.to_thread(CliRunner().invoke, cli, ["saga", "stuck", "--json"])
    assert listed.exit_code == 0, listed.output
