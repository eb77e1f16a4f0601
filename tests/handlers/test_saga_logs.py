"""What the saga's text logs say about an anomaly: the order, the row and what was odd."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutStarted, PaymentCompleted, PaymentFailed
from saga import app as saga_app
from services.platform.consumer import Outcome
from services.platform.settings import Settings
from services.platform.telemetry.logs import MaskingTextFormatter
from tests.handlers import ServiceDriver
from tests.support.builders import checkout_started, delivery, new_id


@pytest.fixture
def saga(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The saga orchestrator's consumer (its timeout poller is never started)."""
    return ServiceDriver.of(engine, saga_app.create_service(handler_settings), handler_settings)


async def test_an_anomaly_is_logged_with_its_row_and_reason(
    saga: ServiceDriver, caplog: pytest.LogCaptureFixture
) -> None:
    # The anomaly travels in the record's extras, which the text format used to drop: the
    # line said "saga anomaly" and nothing about what was odd.
    order_id = new_id()
    started = checkout_started(order_id)
    paid = PaymentCompleted(
        order_id=order_id, payment_id=uuid.uuid4(), amount=Decimal("19.98"), currency="EUR"
    )
    declined = PaymentFailed(order_id=order_id, reason="card declined")
    assert await saga.deliver(delivery(started), CheckoutStarted.message_type) == Outcome.APPLIED
    assert await saga.deliver(delivery(paid), PaymentCompleted.message_type) == Outcome.APPLIED

    with caplog.at_level(logging.WARNING, logger="checkout_saga"):
        outcome = await saga.deliver(delivery(declined), PaymentFailed.message_type)

    assert outcome == Outcome.APPLIED
    [logged] = [r for r in caplog.records if r.getMessage() == "saga anomaly"]
    text = MaskingTextFormatter("%(levelname)s %(message)s").format(logged)
    assert text.startswith("ERROR saga anomaly [")
    assert f"order_id={order_id}" in text
    assert 'anomaly="failure_after_early_payment: PaymentFailed' in text
