"""Hypothesis strategies of field values from their shapes: ones a field takes, ones it refuses.

`valid(shape)` draws JSON values inside the shape's constraints, reaching for their edges
(bounds, the longest strings, unicode and control characters, any year and offset).
`invalid(shape)` draws values that break them under pydantic's lax JSON rules, which coerce
more than one expects ("5" is an int, 1700000000 a datetime, true a 1): each is refused by
construction, whatever the rest of the message says.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

from tests.fuzz.documents import Obj, Raw
from tests.fuzz.shapes import FieldShape, Shape, model_shape

LIST_SIZE = 4
"""Most items a generated list holds, except when it is drawn at its limit."""
CONTAINERS: list[Any] = [[], {}, [1, "a"], {"a": 1}]
"""JSON values of no scalar kind: every scalar field refuses them."""
NUMERIC = ("int", "decimal")
"""Kinds that take true and false as 1 and 0 when not strict."""
TAKES_BOOLEANS = (*NUMERIC, "bool")
"""Kinds for which true and false are no wrong JSON type."""
DISAGREEING_SPACES = frozenset("\x1c\x1d\x1e\x1f")
"""Python's `\\s` matches these, pydantic's regex engine does not: left out of pattern misses."""


@functools.cache
def valid(shape: Shape) -> st.SearchStrategy[Any]:
    """Values the shape accepts (null too, when it may be null); built once per shape."""
    drawn = _VALID[shape.kind](shape)
    return st.one_of(st.none(), drawn) if shape.nullable else drawn


@functools.cache
def invalid(shape: Shape) -> st.SearchStrategy[Any]:
    """Values the shape refuses: wrong JSON types, out of bounds, null when it may not be."""
    refused = _INVALID[shape.kind](shape)
    others = CONTAINERS if shape.kind in TAKES_BOOLEANS else [True, False, *CONTAINERS]
    wrong = st.sampled_from(others) if shape.kind not in ("list", "model") else refused
    choices = [refused, refused, wrong]
    if not shape.nullable:
        choices.append(st.none())
    return st.one_of(*choices)


# -- valid --------------------------------------------------------------------------------------


def _uuid(_: Shape) -> st.SearchStrategy[Any]:
    return st.uuids().map(str)


def _text(shape: Shape) -> st.SearchStrategy[Any]:
    low, high = shape.min_length or 0, shape.max_length
    if shape.pattern is not None:
        # Patterns in the contracts bound their own length; max_length may cut further.
        drawn = st.from_regex(shape.pattern, fullmatch=True)
        return drawn.filter(lambda s: low <= len(s) <= (high or len(s)))
    longest = st.integers(min_value=max(low, 1), max_value=high).map(lambda n: "é" * n)
    return st.one_of(st.text(min_size=low, max_size=min(high or 40, 40)), longest)


def _int(shape: Shape) -> st.SearchStrategy[Any]:
    low = shape.ge if shape.ge is not None else (shape.gt + 1 if shape.gt is not None else None)
    high = shape.le
    return st.integers(
        min_value=None if low is None else int(low), max_value=None if high is None else int(high)
    )


def _bool(_: Shape) -> st.SearchStrategy[Any]:
    return st.booleans()


def _decimal(shape: Shape) -> st.SearchStrategy[Any]:
    places = shape.decimal_places or 0
    step = Decimal(1).scaleb(-places)
    top = Decimal(10) ** ((shape.max_digits or 18) - places) - step
    low = shape.ge if shape.ge is not None else step if shape.gt is not None else -top
    drawn = st.decimals(min_value=Decimal(low), max_value=top, places=places, allow_nan=False)
    edges = st.sampled_from([Decimal(low), top])
    return st.one_of(drawn, edges).map(lambda d: str(d.quantize(step)))


def _datetime(_: Shape) -> st.SearchStrategy[Any]:
    # Any year, any offset: a payment from the year 9999 or 0001 is valid on the wire.
    offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
        lambda m: datetime.timezone(datetime.timedelta(minutes=m))
    )
    return st.datetimes(timezones=offsets).map(lambda d: d.isoformat())


def _enum(shape: Shape) -> st.SearchStrategy[Any]:
    return st.sampled_from(shape.choices)


def _list(shape: Shape) -> st.SearchStrategy[Any]:
    assert shape.item is not None
    low, high = shape.min_length or 0, shape.max_length or LIST_SIZE
    return st.lists(valid(shape.item), min_size=low, max_size=max(low, min(high, LIST_SIZE)))


def _model(shape: Shape) -> st.SearchStrategy[Any]:
    assert shape.model is not None
    return model_values(shape.model)


@functools.cache
def model_values(model: type[BaseModel]) -> st.SearchStrategy[Obj]:
    """An object of the model's fields: the required ones, optional ones at random.

    Custom validators (unique SKUs, a buyer not buying from their own store) are not read
    from shapes: callers who need a valid object check it with the model.
    """
    fields = model_shape(model).fields
    required = {f.name: valid(f.shape) for f in fields if f.required}
    optional = {f.name: valid(f.shape) for f in fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional).map(Obj.of)


_VALID = {
    "uuid": _uuid,
    "str": _text,
    "int": _int,
    "bool": _bool,
    "decimal": _decimal,
    "datetime": _datetime,
    "enum": _enum,
    "list": _list,
    "model": _model,
}


# -- invalid ------------------------------------------------------------------------------------


def _bad_uuid(_: Shape) -> st.SearchStrategy[Any]:
    cut = st.uuids().map(lambda u: str(u)[:-1])
    extra = st.uuids().map(lambda u: str(u) + "0")
    words = st.sampled_from(["", "not-a-uuid", "null", "00000000-0000-0000-0000", "g" * 32])
    return st.one_of(cut, extra, words, st.integers(), st.floats(allow_nan=False))


def _bad_text(shape: Shape) -> st.SearchStrategy[Any]:
    choices: list[st.SearchStrategy[Any]] = [st.integers(), st.floats(allow_nan=False)]
    if shape.pattern is not None:
        pattern = re.compile(shape.pattern)
        misses = st.text(max_size=70).filter(
            lambda s: pattern.fullmatch(s) is None and not DISAGREEING_SPACES & set(s)
        )
        choices.append(misses)
    if shape.max_length is not None:
        over = st.integers(min_value=shape.max_length + 1, max_value=shape.max_length * 4)
        choices.append(over.map(lambda n: "\u0000x" * (n // 2 + 1)))
    if shape.min_length:
        choices.append(st.just("x" * (shape.min_length - 1)))
    return st.one_of(*choices)


def _bad_int(shape: Shape) -> st.SearchStrategy[Any]:
    choices: list[st.SearchStrategy[Any]] = [
        st.text(alphabet="abcxyz ", min_size=1, max_size=8),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
        st.just(Raw("1e400")),
        st.just(Raw("NaN")),
    ]
    if shape.strict:
        choices += [st.just("1"), st.just(True), st.just(1.0)]
    floor = shape.ge if shape.ge is not None else (shape.gt + 1 if shape.gt is not None else None)
    if floor is not None:
        choices += [st.integers(max_value=int(floor) - 1), st.just(-(10**30))]
    if shape.le is not None:
        choices += [st.integers(min_value=int(shape.le) + 1), st.just(10**30)]
    return st.one_of(*choices)


def _bad_bool(shape: Shape) -> st.SearchStrategy[Any]:
    # Lax mode reads "yes", "on", "1", 1 and 0 as booleans: only a strict field refuses them.
    lax = ["true", "false", "yes", "1", 1, 0] if shape.strict else []
    return st.sampled_from([*lax, "maybe", 2, -1, 0.5, ""])


def _bad_decimal(shape: Shape) -> st.SearchStrategy[Any]:
    places, digits = shape.decimal_places or 0, shape.max_digits or 18
    choices: list[st.SearchStrategy[Any]] = [
        st.sampled_from(["abc", "", "1,00", "NaN", "Infinity", "-Infinity", "sNaN"]),
        st.just(Raw("1e400")),
        st.just(Raw("NaN")),
        # One digit too many behind the point, or in all: tiny and huge ones.
        st.integers(min_value=1, max_value=9).map(lambda d: f"1.{'0' * places}{d}"),
        st.sampled_from([f"1E-{places + 1}", "1E-30", "0.000000000000000000000001"]),
        st.just("9" * (digits + 1)),
        st.sampled_from([f"1E+{digits}", "1E+400", "1" + "0" * 40]),
    ]
    if shape.gt is not None:
        choices.append(st.sampled_from([str(shape.gt), "-0.01", "-1E+30"]))
    if shape.ge is not None:
        choices.append(st.sampled_from(["-0.01", "-1", "-1E+30"]))
    return st.one_of(*choices)


def _bad_datetime(_: Shape) -> st.SearchStrategy[Any]:
    naive = st.datetimes().map(lambda d: d.isoformat())  # no zone: AwareDatetime refuses it
    words = st.sampled_from(["", "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T10:00:00Z"])
    return st.one_of(naive, words, st.just(10**30))


def _bad_enum(shape: Shape) -> st.SearchStrategy[Any]:
    upper = st.sampled_from([c.upper() for c in shape.choices if c.upper() != c] or ["X"])
    other = st.text(max_size=20).filter(lambda s: s not in shape.choices)
    return st.one_of(upper, other, st.integers())


def _bad_list(shape: Shape) -> st.SearchStrategy[Any]:
    assert shape.item is not None
    one_bad = st.tuples(st.lists(valid(shape.item), max_size=2), invalid(shape.item)).map(
        lambda pair: [*pair[0], pair[1]]
    )
    choices: list[st.SearchStrategy[Any]] = [one_bad, st.sampled_from(["[]", 1, {"a": []}])]
    if shape.max_length is not None:
        over = shape.max_length + 1
        choices.append(valid(shape.item).map(lambda item: [item] * over))
    if shape.min_length:
        choices.append(st.just([]))
    return st.one_of(*choices)


def _bad_model(shape: Shape) -> st.SearchStrategy[Any]:
    assert shape.model is not None
    return invalid_model_values(shape.model)


@functools.cache
def invalid_model_values(
    model: type[BaseModel], keep: frozenset[str] = frozenset()
) -> st.SearchStrategy[Any]:
    """An object of the model that it refuses: one field broken, one missing, or one unknown.

    Fields named in `keep` are never the broken or missing one.
    """
    fields = model_shape(model).fields
    base = model_values(model)
    breakable = [f for f in fields if f.name not in keep]
    required = [f.name for f in fields if f.required and f.name not in keep]
    choices: list[st.SearchStrategy[Any]] = [st.sampled_from(["", 0, [], None])]
    if breakable:
        choices += [_broken(base, breakable)] * 3
    if required:
        missing = st.tuples(base, st.sampled_from(required))
        choices.append(missing.map(lambda p: p[0].without(p[1])))
    names = {f.name for f in fields}
    unknown = st.tuples(base, st.text(min_size=1, max_size=20).filter(lambda k: k not in names))
    choices.append(unknown.map(lambda p: p[0].plus(p[1], 1)))
    return st.one_of(*choices)


def _broken(base: st.SearchStrategy[Obj], fields: list[FieldShape]) -> st.SearchStrategy[Obj]:
    """The base object with one of these fields set to a value its shape refuses."""
    return st.one_of(*(st.tuples(base, invalid(f.shape)).map(_setting(f.name)) for f in fields))


def _setting(name: str) -> Callable[[tuple[Obj, Any]], Obj]:
    def replaced(pair: tuple[Obj, Any]) -> Obj:
        return pair[0].replaced(name, pair[1])

    return replaced


_INVALID = {
    "uuid": _bad_uuid,
    "str": _bad_text,
    "int": _bad_int,
    "bool": _bad_bool,
    "decimal": _bad_decimal,
    "datetime": _bad_datetime,
    "enum": _bad_enum,
    "list": _bad_list,
    "model": _bad_model,
}


def fresh_id() -> st.SearchStrategy[str]:
    """A random order id: one nobody uses."""
    return st.uuids().map(str)
