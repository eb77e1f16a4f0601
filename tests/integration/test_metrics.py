"""`/metrics` moves while checkouts run, and one checkout's spans share one trace across hops."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from contracts import CheckoutStarted, LineItem
from ops.admin.app import create_admin_app
from tests.support.payer import Answer, ScriptedPayer, eventually, publish
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
async def admin(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The admin API over the stack's main runtime (its metrics, its engine)."""
    app = create_admin_app(stack.settings, stack.main.engine, stack.main)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        yield client


async def scrape(client: httpx.AsyncClient) -> Samples:
    """Every sample of /metrics by (name, labels)."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a labelled counter appears on first use)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def has(samples: Samples, name: str, **labels: str) -> bool:
    """Whether a sample with these labels is exposed."""
    return (name, frozenset(labels.items())) in samples


def _checkout(sku: str) -> CheckoutStarted:
    return CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id=f"buyer-{uuid.uuid4().hex[:8]}",
        buyer_email="someone@example.com",
        currency="EUR",
        items=[LineItem(sku=sku, quantity=1, unit_price=Decimal("10.00"))],
    )


async def _finish(stack: Stack, order_ids: list[uuid.UUID]) -> None:
    await eventually(lambda: stack.final(order_ids), timeout=TIMEOUT)


async def test_metrics_change_while_checkouts_run(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, admin: httpx.AsyncClient
) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 10)
    before = await scrape(admin)
    confirmed, declined = _checkout(sku), _checkout(sku)
    payer.script[declined.order_id] = Answer.DECLINE
    for start in (confirmed, declined):
        await publish(producer, start)
    await _finish(stack, [confirmed.order_id, declined.order_id])
    after = await scrape(admin)

    def grew(name: str, by: float = 1, **labels: str) -> bool:
        return value(after, name, **labels) - value(before, name, **labels) >= by

    assert grew("checkout_saga_transitions_total", 2, transition="create_saga", outcome="applied")
    assert grew(
        "checkout_saga_transitions_total", transition="payment_completed", outcome="applied"
    )
    assert grew("checkout_saga_transitions_total", transition="payment_failed", outcome="applied")
    assert grew("checkout_saga_duration_seconds_count", outcome="Confirmed")
    assert grew("checkout_saga_duration_seconds_count", outcome="Failed")
    assert grew("checkout_saga_time_in_state_seconds_count", 2, state="Submitted")
    assert grew("checkout_saga_time_in_state_seconds_count", 2, state="StockReserved")
    assert grew(
        "checkout_messages_total",
        2,
        service="saga",
        message_type="CheckoutStarted",
        outcome="applied",
    )
    assert grew("checkout_relay_published_total", 2)
    assert value(after, "checkout_sagas", state="Confirmed") >= 1
    assert value(after, "checkout_sagas", state="Failed") >= 1
    assert (
        sum(value(after, "checkout_sagas", state=s) for s in ("Confirmed", "Failed"))
        >= sum(value(before, "checkout_sagas", state=s) for s in ("Confirmed", "Failed")) + 2
    )
    for schema in ("saga", "inventory", "orders", "cart", "payments"):
        assert has(after, "checkout_outbox_backlog", schema=schema)
        assert has(after, "checkout_outbox_oldest_unsent_age_seconds", schema=schema)
    assert has(after, "checkout_consumer_lag", service="saga", topic="checkout.checkout_started")
    assert value(after, "checkout_metrics_refresh_failures_total", probe="consumer_lag") == 0


async def test_duplicates_and_rejections_are_counted(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, admin: httpx.AsyncClient
) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 10)
    start = _checkout(sku)
    message_id = await publish(producer, start)
    await _finish(stack, [start.order_id])
    before = await scrape(admin)
    await publish(producer, start, message_id)  # redelivered: the inbox recognises it

    async def counted() -> bool:
        now = await scrape(admin)
        labels = {"service": "saga", "message_type": "CheckoutStarted", "outcome": "duplicate"}
        return value(now, "checkout_messages_total", **labels) > value(
            before, "checkout_messages_total", **labels
        )

    await eventually(counted, timeout=TIMEOUT)


async def test_one_checkout_shares_one_trace_across_every_hop(
    stack: Stack,
    payer: ScriptedPayer,
    producer: AIOKafkaProducer,
    spans: InMemorySpanExporter,
) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 10)
    start = _checkout(sku)
    upstream_trace = uuid.uuid4().int
    await publish(producer, start, headers={"traceparent": f"00-{upstream_trace:032x}-{1:016x}-01"})
    await _finish(stack, [start.order_id])

    def hops() -> set[str]:
        return {
            str(span.attributes.get("checkout.service")) + ":" + span.name.rsplit(" ", 1)[-1]
            for span in spans.get_finished_spans()
            if span.attributes and span.attributes.get("checkout.order_id") == str(start.order_id)
        }

    expected = {
        "saga:CheckoutStarted",
        "orders:CheckoutStarted",
        "inventory:ReserveStockForOrder",
        "saga:StockReservationCompleted",
        "saga:PaymentCompleted",
        "orders:ConfirmOrder",
        "inventory:DeductStock",
        "cart:ClearCart",
    }
    await eventually(lambda: expected <= hops(), timeout=TIMEOUT)
    mine = [
        span
        for span in spans.get_finished_spans()
        if span.attributes and span.attributes.get("checkout.order_id") == str(start.order_id)
    ]
    assert {span.context.trace_id for span in mine} == {upstream_trace}
    by_id = {span.context.span_id: span for span in mine}
    reservation = next(s for s in mine if s.name.endswith("ReserveStockForOrder"))
    assert reservation.parent is not None
    assert by_id[reservation.parent.span_id].name == "saga process CheckoutStarted"


async def test_a_checkout_without_a_trace_is_traced_under_its_order_id(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, spans: InMemorySpanExporter
) -> None:
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 10)
    start = _checkout(sku)
    await publish(producer, start)
    await _finish(stack, [start.order_id])

    def traces() -> set[int]:
        return {
            span.context.trace_id
            for span in spans.get_finished_spans()
            if span.attributes and span.attributes.get("checkout.order_id") == str(start.order_id)
        }

    await eventually(lambda: len(traces()) > 0, timeout=TIMEOUT)
    assert traces() == {start.order_id.int}
