"""The payment simulator as the runtime runs it; switched off, it subscribes to nothing.

With `settings.payments.enabled` false a real or scripted payer answers PaymentRequested
and RefundPayment instead, so the simulator must consume neither (two answers per charge,
or a refund made by a provider that never took the payment, would be wrong).
"""

from __future__ import annotations

from contracts import (
    PaymentCompleted,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
    RefundPayment,
)
from services.payments import handlers, tables
from services.platform.service import ServiceSpec, Subscription, mailbox
from services.platform.settings import Settings

NAME = "payments"


def create_service(settings: Settings) -> ServiceSpec:
    """The payment simulator bound to its schema (no subscriptions when disabled)."""
    box = mailbox(tables.SCHEMA, tables.outbox, tables.inbox, settings.relay.lanes)
    if not settings.payments.enabled:
        return ServiceSpec(name=NAME, mailbox=box, subscriptions=(), publishes=())
    simulator = handlers.PaymentSimulator(settings.payments)
    return ServiceSpec(
        name=NAME,
        mailbox=box,
        subscriptions=(
            Subscription(PaymentRequested, simulator.take_payment),
            Subscription(RefundPayment, handlers.refund_payment),
        ),
        publishes=(PaymentCompleted, PaymentFailed, PaymentRefunded),
    )
