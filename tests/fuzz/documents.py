"""JSON text the standard library will not write: repeated keys and raw tokens (1e400, NaN).

A document is built from plain values plus `Obj` (an object whose keys may repeat, in order)
and `Raw` (a token written as is), then written by `dumps`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Raw:
    """A JSON token written verbatim: a number no float holds, NaN, a nested blob."""

    text: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as ordered pairs, so a key may appear twice (the last one wins)."""

    pairs: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, mapping: dict[str, Any]) -> Obj:
        """The pairs of a dict, in its order."""
        return cls(tuple(mapping.items()))

    def plus(self, key: str, value: Any) -> Obj:
        """This object with one more pair at its end (a repeated key overrides when read)."""
        return Obj((*self.pairs, (key, value)))

    def without(self, key: str) -> Obj:
        """This object without any pair of that key."""
        return Obj(tuple(p for p in self.pairs if p[0] != key))

    def replaced(self, key: str, value: Any) -> Obj:
        """This object with the value of that key replaced in place (added when missing)."""
        if all(k != key for k, _ in self.pairs):
            return self.plus(key, value)
        return Obj(tuple((k, value if k == key else v) for k, v in self.pairs))

    def get(self, key: str) -> Any:
        """The value a reader sees for the key: the last one."""
        found = [v for k, v in self.pairs if k == key]
        return found[-1] if found else None


def dumps(value: Any) -> str:
    """The document as compact JSON text."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return dumps(Obj.of(value))
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def to_obj(value: Any) -> Any:
    """Plain dicts (e.g. a model's JSON dump) as Obj, recursively, so fields can be edited."""
    if isinstance(value, dict):
        return Obj(tuple((k, to_obj(v)) for k, v in value.items()))
    if isinstance(value, list):
        return [to_obj(v) for v in value]
    return value
