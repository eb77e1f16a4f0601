"""OpenTelemetry traces across Kafka hops: the W3C trace context rides in message headers.

A consumer continues the trace of the message's `traceparent` header and stamps the same
context on the outbox rows it writes; the relay copies headers to Kafka, so the next consumer
continues it. A message without one (e.g. a CheckoutStarted from upstream) continues a trace
whose id is its order id, so every hop of one checkout shares one trace id even then.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
"""The W3C trace context header (and `tracestate` beside it when there is one)."""

_propagator = TraceContextTextMapPropagator()
_SPAN_ID_MASK = (1 << 64) - 1


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def order_trace_context(order_id: str | None, cause_id: str | None = None) -> Context:
    """A remote parent whose trace id is the order id (a new root when it is no UUID)."""
    order = _uuid(order_id)
    if order is None:
        return Context()
    cause = _uuid(cause_id)
    span_id = (cause.int & _SPAN_ID_MASK) if cause else (order.int & _SPAN_ID_MASK)
    parent = SpanContext(
        trace_id=order.int,
        span_id=span_id or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def parent_context(
    headers: Mapping[str, str], order_id: str | None, message_id: str | None
) -> Context:
    """The trace a message continues: its traceparent header, else its order's trace."""
    extracted = _propagator.extract(dict(headers))
    if trace.get_current_span(extracted).get_span_context().is_valid:
        return extracted
    return order_trace_context(order_id, message_id)


def trace_headers() -> dict[str, str]:
    """The current trace context as message headers (empty when there is no span)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def current_ids() -> dict[str, str]:
    """trace_id and span_id of the current span, for logs (empty when there is none)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class Tracing:
    """Starts the spans of one process on a tracer provider (the global one unless given)."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.provider = provider or trace.get_tracer_provider()
        self.tracer = self.provider.get_tracer("checkout_saga")

    @property
    def recording(self) -> bool:
        """Whether spans go anywhere: False for the API's default (no SDK provider set)."""
        provider = self.provider
        if isinstance(provider, trace.ProxyTracerProvider):
            # The global one: real once an SDK provider was set globally, even after we started.
            provider = trace.get_tracer_provider()
        return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)

    @contextmanager
    def continuing(self, parent: Context) -> Iterator[None]:
        """Make parent the current trace context inside the block, without a span of ours."""
        token = context.attach(parent)
        try:
            yield
        finally:
            context.detach(token)

    @contextmanager
    def consuming(
        self, name: str, parent: Context, attributes: Mapping[str, str | int]
    ) -> Iterator[Span]:
        """A CONSUMER span for handling one message, current inside the block."""
        with self.tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=dict(attributes)
        ) as span:
            yield span

    @contextmanager
    def internal(
        self, name: str, parent: Context | None, attributes: Mapping[str, str | int]
    ) -> Iterator[Span]:
        """An INTERNAL span (e.g. a payment deadline firing), current inside the block."""
        with self.tracer.start_as_current_span(
            name, context=parent, attributes=dict(attributes)
        ) as span:
            yield span
