"""What a service hands the runtime: its name, mailbox, subscriptions and background loops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import Message
from services.platform.consumer import BatchHooks, Handler, Mailbox

BackgroundLoop = Callable[[AsyncEngine, asyncio.Event], Awaitable[None]]
"""A loop that runs until the event is set (e.g. the saga's payment-timeout poller)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One message type a service consumes and the use case that applies it."""

    message_cls: type[Message]
    handler: Handler
    hooks: BatchHooks | None = None
    """Called around each batch's steps (e.g. to read every row the batch touches at once)."""


@dataclass(frozen=True)
class ServiceSpec:
    """A service, ready for the runtime to bind to a broker and run."""

    name: str
    mailbox: Mailbox
    subscriptions: Sequence[Subscription]
    publishes: Sequence[type[Message]] = ()
    background: Sequence[BackgroundLoop] = field(default_factory=tuple)


def mailbox(schema: str, outbox: Table, inbox: Table, lanes: int) -> Mailbox:
    """A service's mailbox from its tables."""
    return Mailbox(schema=schema, outbox=outbox, inbox=inbox, lanes=lanes)
