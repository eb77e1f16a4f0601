"""JSON wire format: encode an envelope to bytes and headers, decode bytes back with reasons."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.envelope import MAX_MESSAGE_BYTES, Envelope, MessageHeaders
from contracts.messages import Message
from contracts.topics import message_class_for_type

_KEY_SHOWN = 80
"""Characters of a refused key quoted in the reason (a hostile key may be huge)."""


class InvalidMessageError(ValueError):
    """A message that can never be processed: its reason is safe to log and to dead-letter."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A validated envelope and its typed payload."""

    envelope: Envelope
    message: Message


def encode(envelope: Envelope) -> bytes:
    """Serialize an envelope as compact UTF-8 JSON."""
    return envelope.model_dump_json().encode()


def headers_for(envelope: Envelope) -> dict[str, str]:
    """The Kafka headers that mirror the envelope, for routing without parsing."""
    headers = {
        MessageHeaders.MESSAGE_ID: str(envelope.message_id),
        MessageHeaders.MESSAGE_TYPE: envelope.message_type,
        MessageHeaders.CORRELATION_ID: str(envelope.correlation_id),
        MessageHeaders.SCHEMA_VERSION: str(envelope.schema_version),
        MessageHeaders.CONTENT_TYPE: "application/json",
    }
    if envelope.causation_id is not None:
        headers[MessageHeaders.CAUSATION_ID] = str(envelope.causation_id)
    return headers


def _short(error: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()[:5]
    ]
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode(raw: bytes, expected_type: str | None = None) -> Decoded:
    """Parse and validate wire bytes; raise InvalidMessageError saying exactly what is wrong."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessageError(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        # pydantic-core parses the bytes itself: no json.loads and a second walk of a dict.
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as exc:
        malformed = [e for e in exc.errors() if e["type"] == "json_invalid"]
        if malformed:
            raise InvalidMessageError(f"malformed JSON: {malformed[0]['msg']}") from None
        raise InvalidMessageError(f"invalid envelope: {_short(exc)}") from None
    cls = message_class_for_type(envelope.message_type)
    if cls is None:
        raise InvalidMessageError(f"unknown message_type {envelope.message_type!r}")
    if expected_type is not None and envelope.message_type != expected_type:
        raise InvalidMessageError(
            f"message_type {envelope.message_type!r} does not belong on the topic of {expected_type}"
        )
    try:
        message = cls.model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidMessageError(f"invalid {cls.message_type} payload: {_short(exc)}") from None
    if envelope.correlation_id != message.order_id:
        raise InvalidMessageError("correlation_id must equal payload.order_id")
    _refuse_repeated_keys(raw)
    return Decoded(envelope=envelope, message=message)


class _RepeatedKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        keys = [k for k, _ in pairs]
        raise _RepeatedKeyError(next(k for k in keys if keys.count(k) > 1))
    return found


def _refuse_repeated_keys(raw: bytes) -> None:
    """Raise InvalidMessageError when an object of the document repeats a key.

    pydantic-core reads the last of repeated keys, another parser may read the first: one
    record would be two messages. Checked last, so only records valid otherwise pay for the
    second parse (about 7 µs for a checkout; pydantic-core has already refused nesting deeper
    than this parser could follow).
    """
    try:
        json.loads(raw, object_pairs_hook=_unique_pairs)
    except _RepeatedKeyError as exc:
        shown = exc.key if len(exc.key) <= _KEY_SHOWN else exc.key[:_KEY_SHOWN] + "..."
        raise InvalidMessageError(f"repeated JSON key {shown!r}") from None


def check_key(envelope: Envelope, key: str | None) -> None:
    """Raise InvalidMessageError unless the Kafka key is the correlation id, as text.

    The key picks the partition: per-order ordering and the saga's payment-deadline gate (which
    computes an order's partition from its id) hold only when every message of an order is
    keyed by the canonical text of its id, so another key (or none) is refused, not applied.
    """
    expected = str(envelope.correlation_id)
    if key is None:
        raise InvalidMessageError(f"no Kafka key: the key must be the correlation_id {expected}")
    if key != expected:
        shown = key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "..."
        raise InvalidMessageError(
            f"Kafka key {shown!r} is not the correlation_id {expected} "
            "(lowercase, hyphenated: the key must be the order id's text)"
        )


def check_headers(envelope: Envelope, headers: Mapping[str, str]) -> None:
    """Raise InvalidMessageError when a header that mirrors the envelope says something else.

    Headers are for routing without parsing (headers_for), so a reader that trusts them must see
    the message the envelope is: a record whose headers disagree is refused, not applied as the
    envelope says. A header left out is fine (a plain client may send none).
    """
    for name, expected in headers_for(envelope).items():
        given = headers.get(name)
        # content-type describes the bytes, not the envelope: "; charset=utf-8" is no conflict.
        if given is not None and given != expected and name != MessageHeaders.CONTENT_TYPE:
            shown = given if len(given) <= _KEY_SHOWN else given[:_KEY_SHOWN] + "..."
            raise InvalidMessageError(
                f"header {name} {shown!r} disagrees with the envelope, which says {expected!r}"
            )
    if envelope.causation_id is None and MessageHeaders.CAUSATION_ID in headers:
        raise InvalidMessageError(
            f"header {MessageHeaders.CAUSATION_ID} names a cause the envelope does not have"
        )
