"""The admin API on the live stack: every endpoint, the token, readiness with a broken database."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from contracts import CheckoutStarted
from contracts.topics import topic_for
from ops.cli.admin import saga_app
from services.platform.settings import AdminSettings, KafkaSettings, Settings
from tests.support.builders import checkout_started
from tests.support.payer import ScriptedPayer, eventually, publish
from tests.support.stack import Admin, Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
TOKEN = "s3cret-admin-token"


async def _confirmed_checkout(stack: Stack, producer: AIOKafkaProducer) -> CheckoutStarted:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 5)
    start = checkout_started(items=[(sku, 2, "4.50")], buyer_id="buyer-admin")
    await publish(producer, start)

    async def confirmed() -> bool:
        rows = await stack.rows(
            "SELECT 1 FROM orders.orders WHERE order_id = :o AND status = 'confirmed'",
            o=start.order_id,
        )
        return bool(rows) and await stack.saga_state(start.order_id) == "Confirmed"

    await eventually(confirmed, timeout=TIMEOUT)
    return start


async def test_sagas_orders_and_stock_are_readable(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, admin_client: Admin
) -> None:
    start = await _confirmed_checkout(stack, producer)
    sku = start.items[0].sku
    async with admin_client() as client:
        listed = await client.get("/admin/v1/sagas", params={"state": "Confirmed", "limit": 10_000})
        assert listed.status_code == 200
        assert str(start.order_id) in {saga["id"] for saga in listed.json()}
        assert {saga["state"] for saga in listed.json()} == {"Confirmed"}
        assert len((await client.get("/admin/v1/sagas", params={"limit": 1})).json()) == 1
        assert (await client.get("/admin/v1/sagas", params={"state": "Lost"})).status_code == 422

        saga = (await client.get(f"/admin/v1/sagas/{start.order_id}")).json()
        assert saga["state"] == "Confirmed"
        assert saga["data"]["amount"] == "9.00"
        assert saga["created_at"] <= saga["updated_at"]
        assert (await client.get(f"/admin/v1/sagas/{uuid.uuid4()}")).status_code == 404

        order = (await client.get(f"/admin/v1/orders/{start.order_id}")).json()
        assert order["status"] == "confirmed"
        assert Decimal(order["total"]) == Decimal("9.00")
        assert (await client.get(f"/admin/v1/orders/{uuid.uuid4()}")).status_code == 404
        assert (await client.get("/admin/v1/orders/not-a-uuid")).status_code == 422

        # Confirmed is the saga's commit; inventory deducts when it consumes DeductStock, later.
        async def deducted() -> bool:
            return (await stack.stock(sku))["deducted"] == 2

        await eventually(deducted, timeout=60)
        stock = (await client.get("/admin/v1/stock", params={"sku": sku})).json()
        assert stock == [{"sku": sku, "available": 3, "reserved": 0, "deducted": 2}]
        everything = (await client.get("/admin/v1/stock")).json()
        assert sku in {row["sku"] for row in everything}


async def test_stock_can_be_set(stack: Stack, admin_client: Admin) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    async with admin_client() as client:
        created = await client.put(f"/admin/v1/stock/{sku}", json={"available": 7})
        assert created.status_code == 200
        assert created.json() == {"sku": sku, "available": 7, "reserved": 0, "deducted": 0}
        changed = await client.put(f"/admin/v1/stock/{sku}", json={"available": 2})
        assert changed.json()["available"] == 2
        assert (
            await client.put(f"/admin/v1/stock/{sku}", json={"available": -1})
        ).status_code == 422
        assert (
            await client.put("/admin/v1/stock/bad%20sku", json={"available": 1})
        ).status_code == 422
    assert (await stack.stock(sku))["available"] == 2


async def test_sku_filters_that_are_no_skus_are_refused(admin_client: Admin) -> None:
    """A NUL (PostgreSQL cannot even compare one) used to escape as a 500; fuzzing found it."""
    async with admin_client() as client:
        for bad in ("\x00", "a\x00b", "-", " SKU-1", "x" * 65):
            answer = await client.get("/admin/v1/stock", params={"sku": ["SKU-1", bad]})
            assert answer.status_code == 422, bad
            assert answer.json()["detail"][0]["loc"] == ["query", "sku", 1]


async def test_stock_counts_must_be_json_integers(stack: Stack, admin_client: Admin) -> None:
    """pydantic alone took "5" and true as 5 and 1; an unknown field was silently dropped."""
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    async with admin_client() as client:
        assert (await client.put(f"/admin/v1/stock/{sku}", json={"available": 3})).is_success
        for body in (
            {"available": "5"},
            {"available": True},
            {"available": 2.5},
            {"available": 5, "reserved": 1},
        ):
            answer = await client.put(f"/admin/v1/stock/{sku}", json=body)
            assert answer.status_code == 422, body
            assert answer.json()["detail"], body
        assert (await stack.stock(sku))["available"] == 3
        as_float = await client.put(f"/admin/v1/stock/{sku}", json={"available": 4.0})
        assert as_float.json()["available"] == 4  # JSON Schema's integer: 4.0 is one


async def test_non_finite_numbers_are_refused_not_a_server_error(
    stack: Stack, admin_client: Admin
) -> None:
    """FastAPI's 422 echoes the input, and JSON has no infinity: 1e400 used to be a 500."""
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    json_body = {"content-type": "application/json"}
    async with admin_client() as client:
        await client.put(f"/admin/v1/stock/{sku}", json={"available": 3})
        for raw in (b'{"available": 1e400}', b'{"available": NaN}', b'{"available": [-Infinity]}'):
            answer = await client.put(f"/admin/v1/stock/{sku}", content=raw, headers=json_body)
            assert answer.status_code == 422, raw
            assert answer.json()["detail"][0]["loc"] == ["body", "available"], raw
        unreadable = await client.put(f"/admin/v1/stock/{sku}", content=b"\xff", headers=json_body)
        assert unreadable.status_code == 400
        assert unreadable.json()["detail"]
    assert (await stack.stock(sku))["available"] == 3


async def test_every_refusal_is_documented(admin_client: Admin) -> None:
    """401 on every guarded path (as JSON, even where success is HTML), 404s and 400 where due."""
    async with admin_client() as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    for path, operations in paths.items():
        for operation in operations.values():
            responses = operation["responses"]
            if path.startswith("/health/"):
                assert "401" not in responses, path
                continue
            assert operation["security"] == [{"HTTPBearer": []}], path
            assert set(responses["401"]["content"]) == {"application/json"}, path
    assert "404" in paths["/admin/v1/dead-letters"]["get"]["responses"]
    assert "400" in paths["/admin/v1/stock/{sku}"]["put"]["responses"]


async def test_dead_letters_are_listed_with_why(
    stack: Stack, producer: AIOKafkaProducer, admin_client: Admin
) -> None:
    order_id = uuid.uuid4()
    await producer.send_and_wait(
        topic_for(CheckoutStarted), b'{"not json', key=str(order_id).encode()
    )
    async with admin_client() as client:

        async def listed() -> list[dict[str, object]]:
            letters = (await client.get("/admin/v1/dead-letters", params={"limit": 1000})).json()
            mine = [letter for letter in letters if letter["key"] == str(order_id)]
            # Both consumers of the topic reject it, each in its own time: wait for both.
            return mine if {letter["schema_name"] for letter in mine} == {"saga", "orders"} else []

        letters = await eventually(listed, timeout=TIMEOUT)
        assert isinstance(letters, list)
        assert len(letters) == 2
        letter = letters[0]
        assert letter["original_topic"] == topic_for(CheckoutStarted)
        assert letter["error"]
        assert letter["payload"] == '{"not json'
        one = await client.get("/admin/v1/dead-letters", params={"schema": "orders"})
        assert {letter["schema_name"] for letter in one.json()} == {"orders"}
        assert (
            await client.get("/admin/v1/dead-letters", params={"schema": "x"})
        ).status_code == 404


async def test_health_metrics_and_documents(admin_client: Admin) -> None:
    async with admin_client() as client:
        assert (await client.get("/health/live")).json() == {"status": "live"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "kafka": "ok"}}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert 'checkout_sagas{state="Submitted"}' in metrics.text
        assert 'checkout_outbox_backlog{schema="saga"}' in metrics.text
        page = await client.get("/asyncapi")
        assert page.status_code == 200
        assert "AsyncApiStandalone" in page.text
        document = (await client.get("/asyncapi.json")).json()
        assert document["asyncapi"].startswith("3.")
        assert "checkout.checkout_started" in str(document["channels"])
        assert (await client.get("/docs")).status_code == 200
        openapi = (await client.get("/openapi.json")).json()
        assert {"/admin/v1/sagas", "/admin/v1/stock/{sku}", "/admin/v1/dead-letters"} <= set(
            openapi["paths"]
        )
        assert "HTTPBearer" in openapi["components"]["securitySchemes"]


async def test_a_token_guards_everything_but_health(admin_client: Admin) -> None:
    async with admin_client(admin=AdminSettings(token=SecretStr(TOKEN))) as client:
        good = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/admin/v1/sagas", "/metrics", "/docs", "/openapi.json", "/asyncapi.json"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401, path
            assert (await client.get(path, headers=good)).status_code == 200, path
        assert (await client.put("/admin/v1/stock/X-1", json={"available": 1})).status_code == 401
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200


async def test_without_a_token_nothing_is_asked(admin_client: Admin) -> None:
    async with admin_client(admin=AdminSettings(token=None)) as client:
        assert (await client.get("/admin/v1/sagas", params={"limit": 1})).status_code == 200


async def test_readiness_fails_when_the_database_or_broker_is_unreachable(
    stack: Stack, admin_client: Admin
) -> None:
    url = make_url(stack.settings.database_url.get_secret_value())
    missing = url.set(database=f"missing_{uuid.uuid4().hex[:8]}")
    wrong_db = SecretStr(missing.render_as_string(hide_password=False))
    async with admin_client(database_url=wrong_db) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not ready"
        assert body["checks"]["database"] != "ok"
        assert body["checks"]["kafka"] == "ok"
        assert (await client.get("/health/live")).status_code == 200
    nowhere = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    async with admin_client(kafka=nowhere) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {
            "database": "ok",
            "kafka": ready.json()["checks"]["kafka"],
        }
        assert ready.json()["checks"]["kafka"] != "ok"


def test_settings_read_the_admin_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHECKOUT_ADMIN__TOKEN", TOKEN)
    monkeypatch.setenv("CHECKOUT_ADMIN__HTTP_PORT", "9181")
    settings = Settings()
    assert settings.admin.token is not None
    assert settings.admin.token.get_secret_value() == TOKEN
    assert settings.admin.http_port == 9181


async def test_saga_list_shows_live_sagas(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a second terminal's `checkout-saga saga list` shows while the stack runs."""
    start = await _confirmed_checkout(stack, producer)
    monkeypatch.setenv("CHECKOUT_DATABASE_URL", stack.settings.database_url.get_secret_value())
    result = await asyncio.to_thread(
        CliRunner().invoke, saga_app, ["list", "--state", "Confirmed", "--limit", "10000", "--json"]
    )
    assert result.exit_code == 0, result.output
    listed = {saga["id"]: saga["state"] for saga in json.loads(result.stdout)}
    assert listed[str(start.order_id)] == "Confirmed"


async def test_refused_requests_are_counted(admin_client: Admin) -> None:
    async with admin_client(admin=AdminSettings(token=SecretStr(TOKEN))) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/admin/v1/stock")).status_code == 401
        bad = await client.put("/admin/v1/stock/SKU-1", json={"available": -1}, headers=auth)
        assert bad.status_code == 422
        metrics = (await client.get("/metrics", headers=auth)).text
    assert 'checkout_http_refusals_total{api="admin",status="401"} 1.0' in metrics
    assert 'checkout_http_refusals_total{api="admin",status="422"} 1.0' in metrics


async def test_the_console_says_when_the_broker_holding_the_dead_letters_does_not_answer(
    admin_client: Admin,
) -> None:
    # Before: a 500 "Internal Server Error" (aiokafka's error escaped the page).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    kafka = KafkaSettings(bootstrap_servers=closed)
    async with admin_client(kafka=kafka) as client:
        answer = await client.get("/console/dead-letters")
    assert answer.status_code == 503
    assert f"the broker at {closed}" in answer.text
    assert "checkout.dead_letter" in answer.text
