"""The contracts' fields as data: kind and constraints of every field, read from pydantic.

Strategies are built from these shapes, not from a copy of the contracts kept by hand, so a
field added to or tightened in `contracts/` is fuzzed as it is the day it changes. The reader
knows the constraint types the contracts use (string patterns and lengths, integer and decimal
bounds, decimal digits, list lengths, strict booleans, enums, literals, nested models); a field
of a kind it does
not know fails loudly, so the fuzz tier cannot silently skip a new field.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import types
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any

import annotated_types
from pydantic import AwareDatetime, BaseModel, StringConstraints
from pydantic.fields import FieldInfo

Kind = typing.Literal["uuid", "str", "int", "bool", "decimal", "datetime", "enum", "list", "model"]


@dataclass(frozen=True)
class Shape:
    """One value's kind and the constraints pydantic enforces on it."""

    kind: Kind
    nullable: bool = False
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    ge: int | decimal.Decimal | None = None
    gt: int | decimal.Decimal | None = None
    le: int | decimal.Decimal | None = None
    strict: bool = False
    max_digits: int | None = None
    decimal_places: int | None = None
    choices: tuple[str, ...] = ()
    item: Shape | None = None
    model: type[BaseModel] | None = None


@dataclass(frozen=True)
class FieldShape:
    """A named field of a model: its shape, and whether the model needs it."""

    name: str
    shape: Shape
    required: bool


@dataclass(frozen=True)
class ModelShape:
    """A model's fields in declaration order."""

    model: type[BaseModel]
    fields: tuple[FieldShape, ...] = field(default=())


@functools.cache
def model_shape(model: type[BaseModel]) -> ModelShape:
    """Every field of a wire model (class variables such as message_type are not fields)."""
    return ModelShape(
        model,
        tuple(
            FieldShape(name, field_shape(info), info.is_required())
            for name, info in model.model_fields.items()
        ),
    )


def field_shape(info: FieldInfo) -> Shape:
    """The shape of one pydantic field, its metadata included."""
    return _shape(info.annotation, list(info.metadata))


def _shape(annotation: Any, metadata: list[Any]) -> Shape:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _shape(args[0], [*metadata, *args[1:]])
    if origin in (typing.Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if len(present) != 1:
            raise TypeError(f"the fuzz tier reads no union of {present}")
        inner = _shape(present[0], metadata)
        return _with(inner, nullable=type(None) in args)
    if origin is list:
        return _with(Shape("list", item=_shape(args[0], [])), **_bounds(metadata))
    if origin is typing.Literal:
        return Shape("enum", choices=tuple(str(a) for a in args))
    return _with(_scalar(annotation), **_bounds(metadata))


def _scalar(annotation: Any) -> Shape:
    if annotation is uuid.UUID:
        return Shape("uuid")
    if annotation is str:
        return Shape("str")
    if annotation is int:
        return Shape("int")
    if annotation is bool:
        return Shape("bool")
    if annotation is decimal.Decimal:
        return Shape("decimal")
    if annotation in (AwareDatetime, datetime.datetime):
        return Shape("datetime")
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return Shape("enum", choices=tuple(str(m.value) for m in annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return Shape("model", model=annotation)
    raise TypeError(f"the fuzz tier does not know how to build a {annotation!r}")


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    """Constraints from pydantic's metadata objects, as Shape keyword arguments."""
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):  # Annotated[X, Field(...)] inside an Optional
            found.update(_bounds(list(item.metadata)))
        elif isinstance(item, StringConstraints):
            found.update(
                pattern=item.pattern, min_length=item.min_length, max_length=item.max_length
            )
        elif isinstance(item, annotated_types.Ge):
            found["ge"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            found["gt"] = item.gt
        elif isinstance(item, annotated_types.Le):
            found["le"] = item.le
        elif isinstance(item, annotated_types.MinLen):
            found["min_length"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            found["max_length"] = item.max_length
        else:
            found.update(_general(item))
    return {k: v for k, v in found.items() if v is not None}


def _general(item: Any) -> dict[str, Any]:
    """pydantic's own metadata: strictness and decimal digits (internal classes, read by name)."""
    names = ("strict", "max_digits", "decimal_places")
    known = {name: getattr(item, name) for name in names if getattr(item, name, None) is not None}
    if not known:
        raise TypeError(f"the fuzz tier does not know the constraint {item!r}")
    return known


def _with(shape: Shape, **changes: Any) -> Shape:
    return dataclasses.replace(shape, **changes)
