"""The inventory service as the runtime runs it: its subscriptions and what it publishes."""

from __future__ import annotations

from contracts import (
    DeductStock,
    ReleaseStockReservations,
    ReserveStockForOrder,
    StockReservationCompleted,
    StockReservationFailed,
)
from services.inventory import handlers, tables
from services.platform.service import ServiceSpec, Subscription, mailbox
from services.platform.settings import Settings

NAME = "inventory"


def create_service(settings: Settings) -> ServiceSpec:
    """The inventory service bound to its schema."""
    locks = handlers.LockStockFirst()
    return ServiceSpec(
        name=NAME,
        mailbox=mailbox(tables.SCHEMA, tables.outbox, tables.inbox, settings.relay.lanes),
        subscriptions=(
            Subscription(ReserveStockForOrder, handlers.reserve_stock, locks),
            Subscription(DeductStock, handlers.deduct_stock, locks),
            Subscription(ReleaseStockReservations, handlers.release_stock_reservations, locks),
        ),
        publishes=(StockReservationCompleted, StockReservationFailed),
    )
