"""The saga orchestrator as the runtime runs it: subscriptions, commands it sends, timeout poller."""

from __future__ import annotations

from datetime import timedelta

from contracts import (
    CheckoutStarted,
    ClearCart,
    ConfirmOrder,
    DeductStock,
    OrderFailed,
    PaymentCompleted,
    PaymentFailed,
    PaymentRequested,
    RefundPayment,
    ReleaseStockReservations,
    ReserveStockForOrder,
    StockReservationCompleted,
    StockReservationFailed,
)
from saga import tables
from saga.handlers import SagaHandler, policy_of
from saga.timeouts import timeout_loop
from services.platform.broker import group_id
from services.platform.service import ServiceSpec, Subscription, mailbox
from services.platform.settings import Settings

NAME = "saga"

CONSUMES = (
    CheckoutStarted,
    StockReservationCompleted,
    StockReservationFailed,
    PaymentCompleted,
    PaymentFailed,
)


def create_service(settings: Settings) -> ServiceSpec:
    """The saga orchestrator bound to its schema."""
    policy = policy_of(settings.saga.payment_timeout_s)
    handler = SagaHandler(policy, timedelta(seconds=settings.saga.orphan_grace_s))
    box = mailbox(tables.SCHEMA, tables.outbox, tables.inbox, settings.relay.lanes)
    return ServiceSpec(
        name=NAME,
        mailbox=box,
        subscriptions=tuple(Subscription(cls, handler, hooks=handler) for cls in CONSUMES),
        publishes=(
            ReserveStockForOrder,
            PaymentRequested,
            ConfirmOrder,
            OrderFailed,
            DeductStock,
            ReleaseStockReservations,
            ClearCart,
            RefundPayment,
        ),
        background=(timeout_loop(box, policy, settings.saga, settings.kafka, group_id(NAME)),),
    )
