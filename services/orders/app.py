"""The orders service as the runtime runs it: its subscriptions and what it publishes."""

from __future__ import annotations

from contracts import (
    CheckoutGroupCompleted,
    CheckoutStarted,
    ConfirmOrder,
    OrderConfirmed,
    OrderCreated,
    OrderFailed,
    OrderMarkedFailed,
)
from services.orders import handlers, tables
from services.platform.service import ServiceSpec, Subscription, mailbox
from services.platform.settings import Settings

NAME = "orders"


def create_service(settings: Settings) -> ServiceSpec:
    """The orders service bound to its schema."""
    return ServiceSpec(
        name=NAME,
        mailbox=mailbox(tables.SCHEMA, tables.outbox, tables.inbox, settings.relay.lanes),
        subscriptions=(
            Subscription(CheckoutStarted, handlers.create_order),
            Subscription(ConfirmOrder, handlers.confirm_order),
            Subscription(OrderFailed, handlers.mark_order_failed),
        ),
        publishes=(OrderCreated, OrderConfirmed, OrderMarkedFailed, CheckoutGroupCompleted),
    )
