"""Structured logs: JSON lines carrying the message being handled, with e-mail addresses masked.

The consumer sets the message context (order id, message id, causation id) around each message;
every record logged meanwhile carries it, in either format.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
_context: ContextVar[Mapping[str, str] | None] = ContextVar("checkout_log_context", default=None)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def mask_emails(text: str) -> str:
    """Hide the local part of every e-mail address: buyer@example.com -> b***@example.com."""
    return _EMAIL.sub(r"\1***@\2", text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_emails(value)
    if isinstance(value, Mapping):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_emails(str(value))


@contextmanager
def message_context(**fields: str | None) -> Iterator[None]:
    """Attach these fields (None ones left out) to every record logged inside the block."""
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def context_fields() -> Mapping[str, str]:
    """The message context of the current task (empty outside a message)."""
    return _context.get() or {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, message context, extras, error."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line, e-mail addresses masked everywhere."""
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context_fields(),
        }
        document.update(_extras(record))
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_masked(document), default=str)


class MaskingTextFormatter(logging.Formatter):
    """The plain text format, plus the message context, with e-mail addresses masked."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as text: `... message [order_id=... message_id=...]`."""
        text = super().format(record)
        # The extras too: a rejection's or an anomaly's reason travels in `extra=`, and a text
        # log without it says that something was refused but not why.
        fields = {**context_fields(), **_extras(record)}
        if fields:
            text += " [" + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items()) + "]"
        return mask_emails(text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record got from `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _text_value(value: Any) -> str:
    """A field's value for the text format: quoted when it holds a space, a quote or a bracket."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if re.search(r'[\s"\[\]=]', text) else text


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of a log format."""
    return JsonFormatter() if log_format == "json" else MaskingTextFormatter(_TEXT_FORMAT)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Send the root logger to stderr in the chosen format (replacing earlier handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
