"""The base of every wire model: strict, immutable, later additions left off the wire while unset.

Pure: imports only the standard library and pydantic.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class WireModel(BaseModel):
    """Base of every wire model: strict and immutable; later additions stay off the wire unset.

    `ADDITIONS` names the fields added after schema version 1 was published. Each is optional,
    and left out of the JSON while it holds its default, so a plain single-vendor checkout
    still reads, byte for byte, as a version-1 consumer (which forbids unknown fields) expects.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    ADDITIONS: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _drop_unset_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        if self.ADDITIONS and isinstance(dumped, dict):
            fields = type(self).model_fields
            for name in self.ADDITIONS:
                if name in dumped and getattr(self, name) == fields[name].default:
                    del dumped[name]
        return dumped
