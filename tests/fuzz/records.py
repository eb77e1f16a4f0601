"""A fuzz record (bytes, key, headers, and whether the contracts refuse it) and its envelope.

Envelopes are built as `Obj` documents with the payload last, so a case can repeat a key of
either, break a field or leave one out before the document is written.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts import CheckoutStarted, MessageHeaders, message_class_for_type
from tests.fuzz.documents import Obj, dumps
from tests.fuzz.pricing import with_drawn_pricing
from tests.fuzz.shapes import FieldShape, model_shape
from tests.fuzz.values import fresh_id, model_values


@dataclass(frozen=True)
class Case:
    """One record to deliver: on the topic of `message_type`, refused or not by construction."""

    kind: str
    message_type: str
    value: bytes
    key: str | None
    headers: dict[str, str]
    refused: bool
    order_id: str | None = None


@dataclass(frozen=True, repr=False)
class Targets:
    """What cases aim at: the topics consumed, and ids of orders that exist or are in flight."""

    consumed: tuple[str, ...]
    """Message types some service consumes (each is one topic)."""
    order_ids: tuple[str, ...]

    def __repr__(self) -> str:
        # Hypothesis shows its strategies' arguments; thousands of ids would say nothing.
        return f"Targets({len(self.consumed)} message types, {len(self.order_ids)} orders)"


def envelope(
    draw: st.DrawFn, message_type: str, order_id: str, payload: Any, occurred_at: str | None = None
) -> Obj:
    """An envelope with the payload last (its message id drawn, so a seed replays it)."""
    return Obj.of(
        {
            "message_id": draw(fresh_id()),
            "message_type": message_type,
            "correlation_id": order_id,
            "causation_id": None,
            "occurred_at": occurred_at or datetime.now(UTC).isoformat(),
            "schema_version": 1,
            "payload": payload,
        }
    )


def headers_of(document: Obj) -> dict[str, str]:
    """The headers a well-behaved producer sets, read from the envelope (as text)."""
    names = (MessageHeaders.MESSAGE_ID, MessageHeaders.MESSAGE_TYPE, MessageHeaders.CORRELATION_ID)
    found = {name: str(document.get(name)) for name in names}
    fixed = {MessageHeaders.SCHEMA_VERSION: "1", MessageHeaders.CONTENT_TYPE: "application/json"}
    return {**found, **fixed}


def record(
    kind: str,
    message_type: str,
    document: Any,
    key: str | None,
    order_id: str,
    refused: bool = True,
) -> Case:
    """The case of a document: its JSON bytes, with the headers its envelope implies."""
    headers = headers_of(document) if isinstance(document, Obj) else {}
    value = dumps(document).encode("utf-8", errors="surrogatepass")
    return Case(kind, message_type, value, key, headers, refused, order_id)


def model_of(message_type: str) -> type[BaseModel]:
    """The payload class of a message type the services consume."""
    cls = message_class_for_type(message_type)
    assert cls is not None, message_type
    return cls


def for_order(payload: Any, order_id: str) -> Any:
    """The payload aimed at this order (a payload that is no object stays as it is)."""
    return payload.replaced("order_id", order_id) if isinstance(payload, Obj) else payload


def _is_valid(message_type: str, payload: Obj) -> bool:
    try:
        model_of(message_type).model_validate_json(dumps(payload))
    except ValidationError:
        return False
    return True


@functools.cache
def _valid_payloads(message_type: str) -> st.SearchStrategy[Obj]:
    """Payloads the contracts accept, custom validators included (their order id is random).

    A checkout's pricing must add up to be valid: it is drawn from the items, or left out.
    """
    drawn = model_values(model_of(message_type))
    if message_type == CheckoutStarted.message_type:
        drawn = drawn.flatmap(with_drawn_pricing)
    return drawn.filter(lambda p: _is_valid(message_type, p))


def valid_payload(draw: st.DrawFn, message_type: str, order_id: str) -> Obj:
    """A payload the contracts accept, for this order."""
    payload: Obj = for_order(draw(_valid_payloads(message_type)), order_id)
    return payload


@functools.cache
def other_fields(message_type: str) -> st.SearchStrategy[FieldShape | None]:
    """A payload field other than order_id, or None (also when there is none)."""
    fields = [f for f in model_shape(model_of(message_type)).fields if f.name != "order_id"]
    return st.sampled_from([*fields, None])


def another(order_id: str, drawn: str) -> str:
    """A drawn id that is not this one (Hypothesis likes to draw the same simple ids)."""
    return drawn if drawn != order_id else str(uuid.UUID(int=uuid.UUID(drawn).int ^ 1))
