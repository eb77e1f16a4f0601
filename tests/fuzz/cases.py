"""Wire cases: Kafka records (topic, key, headers, bytes) built from the contracts by Hypothesis.

Every case but a sandbox one is refused by construction: it breaks a field's own constraint,
the envelope, the key rule, the size limit or JSON itself, whatever else it says. A sandbox case
is valid on the wire, with values at the contracts' edges, aimed at an order nobody else uses:
a consumer may apply it or refuse it, but must do one or the other, once, and not stall.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from typing import Any

from hypothesis import strategies as st

from contracts import message_class_for_type
from contracts.codec import InvalidMessageError, check_headers, decode
from contracts.envelope import MAX_MESSAGE_BYTES
from tests.fuzz.documents import Raw, dumps
from tests.fuzz.records import (
    Case,
    Targets,
    another,
    envelope,
    for_order,
    model_of,
    other_fields,
    record,
    valid_payload,
)
from tests.fuzz.shapes import Shape
from tests.fuzz.values import fresh_id, invalid, invalid_model_values, model_values, valid

ENVELOPE_FIELDS = ("message_id", "message_type", "correlation_id", "occurred_at", "payload")
BAD_VERSIONS: list[Any] = [0, 2, -1, "x", 1.5, 10**30, None, []]
"""schema_version values refused (true and "1" are read as 1 by pydantic's lax rules)."""
SANDBOX = uuid.UUID("5a2d0b4e-7c61-4f3a-9e08-3b1f6c2d9a47")
"""Namespace of sandbox order ids."""
KINDS: dict[str, int] = {
    "field": 30,
    "envelope": 14,
    "key": 10,
    "duplicate_key": 10,
    "wrong_type": 6,
    "nested": 5,
    "garbage": 6,
    "oversized": 1,
    "sandbox": 10,
}
"""Kinds of structured case, with their weights."""


@st.composite
def cases(draw: st.DrawFn, targets: Targets) -> Case:
    """One structured case of a kind drawn by weight."""
    kind, message_type = draw(_KIND), draw(_message_types(targets))
    order_id = draw(_order_ids(targets))
    case: Case = draw(_BUILDERS[kind](targets, message_type, order_id))
    if draw(_NOISE) < 3:
        headers = {**case.headers, **draw(_HEADER_NOISE)}
        refused = case.refused or _disagree(case.value, headers)
        case = dataclasses.replace(case, headers=headers, refused=refused)
    return case


def _disagree(value: bytes, headers: dict[str, str]) -> bool:
    """Whether headers of a valid record contradict its envelope (which refuses it)."""
    try:
        check_headers(decode(value).envelope, headers)
    except InvalidMessageError:
        return True
    return False


_KIND = st.sampled_from([k for k, weight in KINDS.items() for _ in range(weight)])
_NOISE = st.integers(min_value=0, max_value=9)


@functools.cache
def _message_types(targets: Targets) -> st.SearchStrategy[str]:
    return st.sampled_from(targets.consumed)


@functools.cache
def _order_ids(targets: Targets) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(targets.order_ids), fresh_id())


# -- the kinds ----------------------------------------------------------------------------------


@st.composite
def _field(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    bad = invalid_model_values(model_of(message_type), frozenset({"order_id"}))
    payload = for_order(draw(bad), order_id)
    return record(
        "field", message_type, envelope(draw, message_type, order_id, payload), order_id, order_id
    )


@st.composite
def _envelope(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    payload = for_order(draw(model_values(model_of(message_type))), order_id)
    document = envelope(draw, message_type, order_id, payload)
    broken = draw(_BROKEN_PART)
    if broken == "not_an_object":
        return record("envelope", message_type, draw(_NOT_OBJECTS), order_id, order_id)
    if broken == "missing":
        document = document.without(draw(_ENVELOPE_FIELD))
    elif broken == "other_correlation_id":
        document = document.replaced("correlation_id", another(order_id, draw(fresh_id())))
    else:
        document = document.replaced(broken, draw(_BAD_ENVELOPE[broken]))
    return record("envelope", message_type, document, order_id, order_id)


_UNKNOWN_TYPES = st.text(max_size=80).filter(lambda t: message_class_for_type(t) is None)
_BAD_ENVELOPE: dict[str, st.SearchStrategy[Any]] = {
    "message_id": invalid(Shape("uuid")),
    "correlation_id": invalid(Shape("uuid")),
    "message_type": st.one_of(_UNKNOWN_TYPES, st.just(""), st.just("x" * 65)),
    # Not a number: pydantic reads one as seconds since 1970, in UTC.
    "occurred_at": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.just("now")),
    "payload": st.sampled_from([[], "payload", 1, None, True]),
    "schema_version": st.sampled_from(BAD_VERSIONS),
}
_BROKEN_PART = st.sampled_from([*_BAD_ENVELOPE, "other_correlation_id", "missing", "not_an_object"])
_ENVELOPE_FIELD = st.sampled_from(ENVELOPE_FIELDS)
_NOT_OBJECTS: st.SearchStrategy[Any] = st.sampled_from([[], "x", 1, None])


@st.composite
def _key(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    document = envelope(draw, message_type, order_id, valid_payload(draw, message_type, order_id))
    variant = draw(_KEY_VARIANTS)
    variants = {
        "missing": None,
        "upper case": order_id.upper(),
        "braced": "{" + order_id + "}",
        "no hyphens": order_id.replace("-", ""),
        "padded": f" {order_id}",
        "another order's": another(order_id, draw(fresh_id())),
    }
    key = variants[variant] if variant in variants else draw(_TEXT_KEYS)
    return record("key", message_type, document, key if key != order_id else key + "x", order_id)


_KEY_VARIANTS = st.sampled_from(
    ["missing", "upper case", "braced", "no hyphens", "padded", "another order's", "text"]
)
_TEXT_KEYS = st.text(max_size=40)


@st.composite
def _duplicate_key(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    payload = valid_payload(draw, message_type, order_id)
    document = envelope(draw, message_type, order_id, payload)
    # The last occurrence of a key is the one read: make that one wrong.
    if draw(st.booleans()):
        name = draw(_REPEATED_ENVELOPE_FIELD)
        other = another(order_id, draw(fresh_id()))
        bad = other if name == "correlation_id" else draw(_BAD_ENVELOPE[name])
        document = document.plus(name, bad)
    else:
        chosen = draw(other_fields(message_type))
        if chosen is None:  # repeat order_id itself, with another order's id
            payload = payload.plus("order_id", another(order_id, draw(fresh_id())))
        else:
            payload = payload.plus(chosen.name, draw(invalid(chosen.shape)))
        document = document.replaced("payload", payload)
    return record("duplicate_key", message_type, document, order_id, order_id)


_REPEATED_ENVELOPE_FIELD = st.sampled_from(
    ["message_id", "correlation_id", "occurred_at", "payload"]
)


@st.composite
def _wrong_type(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    """A valid message of another type on this topic (its own type in the envelope)."""
    types = targets.consumed
    drawn = draw(_message_types(targets))
    other = drawn if drawn != message_type else types[(types.index(drawn) + 1) % len(types)]
    document = envelope(draw, other, order_id, valid_payload(draw, other, order_id))
    return record("wrong_type", message_type, document, order_id, order_id)


@st.composite
def _nested(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    depth = draw(_DEPTHS)
    opener, closer = draw(_BRACKETS)
    blob = Raw(opener * depth + "1" + closer * depth)
    payload = for_order(draw(model_values(model_of(message_type))), order_id)
    # An unknown payload field, or a known one that holds no such structure: refused either way.
    chosen = draw(other_fields(message_type))
    name = "deep" if chosen is None else chosen.name
    document = envelope(draw, message_type, order_id, payload.replaced(name, blob))
    return record("nested", message_type, document, order_id, order_id)


_DEPTHS = st.integers(min_value=1, max_value=60_000)
_BRACKETS = st.sampled_from([("[", "]"), ('{"a":', "}")])


@st.composite
def _garbage(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    return Case("garbage", message_type, draw(_GARBAGE), order_id, {}, True, order_id)


def _nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner) | st.dictionaries(st.text(), inner)


_JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.text(), _nest, max_leaves=20)
_GARBAGE = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", errors="surrogatepass")),
    _JSON.map(lambda v: json.dumps(v).encode()),
)


@st.composite
def _oversized(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    document = envelope(draw, message_type, order_id, valid_payload(draw, message_type, order_id))
    size = len(dumps(document))
    # Unknown envelope fields are ignored: the size alone refuses this one.
    padded = document.replaced("padding", "x" * (MAX_MESSAGE_BYTES - size + draw(_EXCESS)))
    return record("oversized", message_type, padded, order_id, order_id)


_EXCESS = st.integers(min_value=1, max_value=40_000)


@st.composite
def _sandbox(draw: st.DrawFn, targets: Targets, message_type: str, order_id: str) -> Case:
    # An id no other field of any case can hold (Hypothesis repeats the ids it draws), so
    # the rows that name it are this order's.
    sandbox_id = str(uuid.uuid5(SANDBOX, draw(fresh_id())))
    payload = valid_payload(draw, message_type, sandbox_id)
    occurred = draw(valid(Shape("datetime")))  # any year, any offset
    document = envelope(draw, message_type, sandbox_id, payload, occurred_at=occurred)
    return record("sandbox", message_type, document, sandbox_id, sandbox_id, refused=False)


_BUILDERS = {
    "field": _field,
    "envelope": _envelope,
    "key": _key,
    "duplicate_key": _duplicate_key,
    "wrong_type": _wrong_type,
    "nested": _nested,
    "garbage": _garbage,
    "oversized": _oversized,
    "sandbox": _sandbox,
}


_HEADER_NOISE = st.dictionaries(
    st.sampled_from(["message_id", "message_type", "correlation_id", "x-\u0000", "ключ", ""])
    | st.text(max_size=10),
    st.text(max_size=30) | st.just("\u0000") | st.just("v" * 10_000),
    max_size=4,
)
"""Headers that disagree with the envelope, carry control characters or are huge."""
