"""The cart service as the runtime runs it: its subscription (it publishes nothing yet)."""

from __future__ import annotations

from contracts import ClearCart
from services.cart import handlers, tables
from services.platform.service import ServiceSpec, Subscription, mailbox
from services.platform.settings import Settings

NAME = "cart"


def create_service(settings: Settings) -> ServiceSpec:
    """The cart service bound to its schema."""
    return ServiceSpec(
        name=NAME,
        mailbox=mailbox(tables.SCHEMA, tables.outbox, tables.inbox, settings.relay.lanes),
        subscriptions=(Subscription(ClearCart, handlers.clear_cart),),
        publishes=(),
    )
