"""Ambient metrics for code that is handed none (the saga's handler), and metrics kept until commit.

A consumer binds its process's Metrics around each message and opens a transaction scope around
each attempt: what a handler observes inside counts only if that transaction commits, so a
conflict that re-handles the message does not count its transition twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from services.platform.telemetry.metrics import Metrics

Observation = Callable[[Metrics], None]
"""Something to record, e.g. `lambda m: m.transitions.labels(...).inc()`."""

_current: ContextVar[Metrics | None] = ContextVar("checkout_metrics", default=None)
_pending: ContextVar[list[Observation] | None] = ContextVar("checkout_pending", default=None)
_trial: ContextVar[bool] = ContextVar("checkout_trial", default=False)


def current() -> Metrics | None:
    """The Metrics bound in this context, if any."""
    return _current.get()


@contextmanager
def bound(metrics: Metrics | None) -> Iterator[None]:
    """Make metrics the ambient Metrics inside the block (None leaves the current one)."""
    if metrics is None:
        yield
        return
    token = _current.set(metrics)
    try:
        yield
    finally:
        _current.reset(token)


def bind(metrics: Metrics) -> None:
    """Make metrics ambient for the rest of this context (e.g. before spawning a task)."""
    _current.set(metrics)


def observe(observation: Observation, *, on_commit: bool = True) -> None:
    """Record now, or when the enclosing transaction scope commits; dropped with no Metrics."""
    pending = _pending.get()
    if (on_commit or _trial.get()) and pending is not None:
        pending.append(observation)
        return
    metrics = _current.get()
    if metrics is not None:
        observation(metrics)


@contextmanager
def transaction(*, trial: bool = False) -> Iterator[None]:
    """Observations made inside are recorded only if the block ends without an exception.

    A trial (a batch whose records are re-run one by one if it fails) holds back even those
    made to count at once, such as a rejection: the re-run makes them again, and they would
    count twice.
    """
    pending: list[Observation] = []
    token, trial_token = _pending.set(pending), _trial.set(trial)
    try:
        yield
    finally:
        _trial.reset(trial_token)
        _pending.reset(token)
    metrics = _current.get()
    if metrics is not None:
        for observation in pending:
            observation(metrics)
