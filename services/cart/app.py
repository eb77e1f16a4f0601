"""The cart service as the runtime runs it: its subscriptions, the events it sends, its job."""

from __future__ import annotations

from contracts import ClearCart, OrderConfirmed, OrderCreated, OrderMarkedFailed
from contracts.cart_events import CART_EVENTS
from contracts.messages import CheckoutStarted
from services.cart import handlers, tables
from services.cart.abandon import abandon_loop
from services.platform.service import ServiceSpec, Subscription, mailbox
from services.platform.settings import Settings

NAME = "cart"


def create_service(settings: Settings) -> ServiceSpec:
    """The cart service bound to its schema."""
    return ServiceSpec(
        name=NAME,
        mailbox=mailbox(tables.SCHEMA, tables.outbox, tables.inbox, settings.relay.lanes),
        subscriptions=(
            Subscription(ClearCart, handlers.clear_cart),
            # The order view (GET /orders/{id}) follows the order service's events.
            Subscription(OrderCreated, handlers.record_order_created),
            Subscription(OrderConfirmed, handlers.record_order_confirmed),
            Subscription(OrderMarkedFailed, handlers.record_order_failed),
        ),
        # The HTTP API's checkouts, and the cart events for downstream consumers.
        publishes=(CheckoutStarted, *CART_EVENTS),
        background=(abandon_loop(settings.cart, settings.relay.lanes),),
    )
