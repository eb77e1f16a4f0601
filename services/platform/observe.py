"""Per-record observability of a consumer: log fields, the trace it continues, rejection lines.

Imports no service and not the saga.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from opentelemetry.trace import Span

from contracts import MessageHeaders
from services.platform.delivery import Delivery, span_attributes
from services.platform.telemetry import Telemetry
from services.platform.telemetry.logs import message_context
from services.platform.telemetry.tracing import current_ids, parent_context

log = logging.getLogger("checkout_saga.consumer")


@contextmanager
def observed(
    telemetry: Telemetry, service: str, delivery: Delivery, message_type: str
) -> Iterator[Span | None]:
    """Logs carry the message's ids and a span continues the message's trace."""
    headers = delivery.headers
    order_id = headers.get(MessageHeaders.CORRELATION_ID) or delivery.key
    message_id = headers.get(MessageHeaders.MESSAGE_ID)
    with ExitStack() as stack:
        stack.enter_context(
            message_context(
                service=service,
                message_type=message_type,
                order_id=order_id,
                message_id=message_id,
                causation_id=headers.get(MessageHeaders.CAUSATION_ID),
            )
        )
        parent = parent_context(headers, order_id, message_id)
        if not telemetry.tracing.recording:
            # No tracer records spans: only carry the trace on to what this record causes
            # (its outbox rows' traceparent), without the cost of a span per record.
            stack.enter_context(telemetry.tracing.continuing(parent))
            yield None
            return
        span = stack.enter_context(
            telemetry.tracing.consuming(
                f"{service} process {message_type}",
                parent,
                span_attributes(delivery, service, order_id, message_id),
            )
        )
        stack.enter_context(message_context(**current_ids()))
        yield span


def log_rejected(service: str, delivery: Delivery, message_type: str, reason: str) -> None:
    """The one WARNING line of a record that is dead-lettered: where it was, what, and why."""
    log.warning(
        "rejected message",
        extra={
            "service": service,
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
            "message_type": message_type,
            "reason": reason,
        },
    )
