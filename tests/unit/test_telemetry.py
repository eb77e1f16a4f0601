"""Telemetry without I/O: e-mail masking, JSON log fields, trace headers, metrics kept until commit."""

from __future__ import annotations

import json
import logging
import sys
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.platform.consumer import traced
from services.platform.outbox import OutboxMessage
from services.platform.telemetry import Metrics, Telemetry, scope
from services.platform.telemetry.logs import (
    JsonFormatter,
    MaskingTextFormatter,
    mask_emails,
    message_context,
)
from services.platform.telemetry.tracing import (
    Tracing,
    current_ids,
    order_trace_context,
    parent_context,
    trace_headers,
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("buyer@example.com", "b***@example.com"),
        ("mail jane.doe+shop@mail.example.org now", "mail j***@mail.example.org now"),
        ("a@b.co and zed@x.io", "a***@b.co and z***@x.io"),
        ("no address here @ all", "no address here @ all"),
    ],
)
def test_email_addresses_are_masked(text: str, masked: str) -> None:
    assert mask_emails(text) == masked


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "checkout_saga.test", logging.WARNING, __file__, 1, message, (), None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_logs_carry_the_message_context_and_extras_masked() -> None:
    order_id, message_id, cause = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    outer = message_context(order_id=str(order_id), message_id=str(message_id), causation_id=None)
    with outer, message_context(causation_id=str(cause)):
        line = JsonFormatter().format(
            _record("checkout by buyer@example.com", payload={"email": "ann@shop.example"})
        )
    document = json.loads(line)
    assert document["message"] == "checkout by b***@example.com"
    assert document["order_id"] == str(order_id)
    assert document["message_id"] == str(message_id)
    assert document["causation_id"] == str(cause)
    assert document["payload"] == {"email": "a***@shop.example"}
    assert document["level"] == "WARNING"
    assert document["logger"] == "checkout_saga.test"
    assert document["time"].endswith("+00:00")


def test_json_logs_outside_a_message_have_no_message_ids_and_keep_errors() -> None:
    try:
        raise ValueError("bad input from x@y.org")
    except ValueError:
        record = logging.LogRecord("n", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    document = json.loads(JsonFormatter().format(record))
    assert "order_id" not in document
    assert "ValueError: bad input from x***@y.org" in document["error"]


def test_text_logs_are_masked_and_show_the_context() -> None:
    with message_context(order_id="o-1", message_id=None):
        text = MaskingTextFormatter("%(levelname)s %(message)s").format(
            _record("to bob@example.com")
        )
    assert text == "WARNING to b***@example.com [order_id=o-1]"


def test_text_logs_say_why_a_message_was_rejected() -> None:
    # The reason travels in `extra=`: the text format dropped it, so a text log said that a
    # record was refused but not why (the reason was only in the dead letter).
    record = _record("rejected message")
    record.reason = "malformed JSON: Expecting value"
    record.topic = "checkout.checkout_started"
    with message_context(service="saga"):
        text = MaskingTextFormatter("%(levelname)s %(message)s").format(record)
    assert text == (
        'WARNING rejected message [service=saga reason="malformed JSON: Expecting value" '
        "topic=checkout.checkout_started]"
    )


def _tracing() -> tuple[Tracing, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return Tracing(provider), spans


def test_a_consumer_span_continues_the_traceparent_and_stamps_it_on_what_it_writes() -> None:
    tracing, spans = _tracing()
    trace_id, parent_span = uuid.uuid4().int, 0x1234
    headers = {"traceparent": f"00-{trace_id:032x}-{parent_span:016x}-01"}
    message = OutboxMessage(uuid.uuid4(), "checkout.x", "key", b"{}", {"message_id": "m"})
    with tracing.consuming("saga process X", parent_context(headers, None, None), {}) as span:
        [stamped] = traced([message])
        ids = current_ids()
    context = span.get_span_context()
    assert context.trace_id == trace_id
    assert spans.get_finished_spans()[0].parent.span_id == parent_span  # type: ignore[union-attr]
    assert stamped.headers["message_id"] == "m"
    assert stamped.headers["traceparent"] == f"00-{trace_id:032x}-{context.span_id:016x}-01"
    assert ids == {"trace_id": f"{trace_id:032x}", "span_id": f"{context.span_id:016x}"}
    extracted = parent_context(stamped.headers, None, None)
    assert trace.get_current_span(extracted).get_span_context().span_id == context.span_id


def test_without_an_sdk_no_span_is_made_but_the_trace_still_travels_on() -> None:
    tracing = Tracing(trace.NoOpTracerProvider())
    trace_id = uuid.uuid4().int
    traceparent = f"00-{trace_id:032x}-{0x99:016x}-01"
    message = OutboxMessage(uuid.uuid4(), "checkout.x", "key", b"{}", {})
    assert not tracing.recording
    with tracing.continuing(parent_context({"traceparent": traceparent}, None, None)):
        [stamped] = traced([message])
    # The upstream's trace goes on to the next hop unchanged: a process that does record
    # spans downstream still joins it.
    assert stamped.headers["traceparent"] == traceparent
    assert _tracing()[0].recording


def test_a_message_without_a_trace_continues_its_orders_trace() -> None:
    tracing, _ = _tracing()
    order_id, message_id = uuid.uuid4(), uuid.uuid4()
    parent = parent_context({"traceparent": "garbage"}, str(order_id), str(message_id))
    with tracing.consuming("orders process X", parent, {}) as span:
        assert span.get_span_context().trace_id == order_id.int
    remote = trace.get_current_span(order_trace_context(str(order_id))).get_span_context()
    assert remote.trace_id == order_id.int
    assert remote.is_remote


def test_nothing_is_stamped_outside_a_span_or_for_a_key_that_is_no_uuid() -> None:
    message = OutboxMessage(uuid.uuid4(), "checkout.x", "key", b"{}", {})
    assert trace_headers() == {}
    assert traced([message]) == [message]
    no_trace = trace.get_current_span(order_trace_context("not-a-uuid")).get_span_context()
    assert not no_trace.is_valid


def _transitions(metrics: Metrics) -> float:
    return float(metrics.transitions.labels("t", "applied")._value.get())


def _conflicting_transaction() -> None:
    with scope.transaction():
        scope.observe(lambda m: m.transitions.labels("t", "applied").inc())
        scope.observe(lambda m: m.rejections.labels("S", "e").inc(), on_commit=False)
        raise RuntimeError("conflict")


def test_observations_count_only_when_the_transaction_commits() -> None:
    metrics = Metrics()
    with scope.bound(metrics):
        with scope.transaction():
            scope.observe(lambda m: m.transitions.labels("t", "applied").inc())
            assert _transitions(metrics) == 0
        assert _transitions(metrics) == 1
        with pytest.raises(RuntimeError):
            _conflicting_transaction()
        assert _transitions(metrics) == 1
        assert metrics.rejections.labels("S", "e")._value.get() == 1
    scope.observe(lambda m: m.transitions.labels("t", "applied").inc())  # no metrics bound
    assert _transitions(metrics) == 1


def test_each_telemetry_has_its_own_registry_and_relay_sums() -> None:
    first, second = Telemetry(), Telemetry()
    first.metrics.messages.labels("saga", "X", "applied").inc()
    first.metrics.relays.add(lambda: {"published": 2})
    first.metrics.relays.add(lambda: {"published": 3})
    text = first.metrics.render().decode()
    assert 'checkout_messages_total{message_type="X",outcome="applied",service="saga"} 1.0' in text
    assert "checkout_relay_published_total 5.0" in text
    assert "checkout_messages_total{" not in second.metrics.render().decode()


class _FailingProbe:
    async def __call__(self, metrics: Metrics) -> None:
        raise OSError("database down")

    async def close(self) -> None:
        """Nothing held."""


async def test_a_failing_probe_is_counted_and_does_not_fail_the_scrape() -> None:
    telemetry = Telemetry()
    telemetry.add_probe("sagas", _FailingProbe())
    text = (await telemetry.scrape()).decode()
    assert 'checkout_metrics_refresh_failures_total{probe="sagas"} 1.0' in text
    await telemetry.close()
