"""Unit tests of the pure saga machine, and the message builders they share (no I/O library)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    LineItem,
    Message,
    PaymentCompleted,
    PaymentFailed,
    Reservation,
    StockReservationCompleted,
    StockReservationFailed,
    StockShortage,
)
from saga.machine import PaymentDeadlinePassed, SagaEvent, SagaPolicy, StepResult, start, step

ORDER = UUID("00000000-0000-4000-8000-0000000000a1")
CART = UUID("00000000-0000-4000-8000-0000000000c1")
BUYER = "buyer-1"
TOTAL = Decimal("25.00")  # 2 x 5.00 + 1 x 15.00
R1 = UUID("00000000-0000-4000-8000-000000000001")
R2 = UUID("00000000-0000-4000-8000-000000000002")
R3 = UUID("00000000-0000-4000-8000-000000000003")
P1 = UUID("00000000-0000-4000-8000-0000000000f1")
P2 = UUID("00000000-0000-4000-8000-0000000000f2")
P3 = UUID("00000000-0000-4000-8000-0000000000f3")
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = SagaPolicy(payment_timeout=timedelta(seconds=30))


PARTIAL = CheckoutPolicy.PARTIAL
ADJUSTED = Decimal("10.00")  # the partial total once SKU-B (1 x 15.00) is rejected


def checkout_started(
    order_id: UUID = ORDER, policy: CheckoutPolicy = CheckoutPolicy.ALL_OR_NOTHING
) -> CheckoutStarted:
    """A checkout of two lines, 25.00 EUR in total."""
    return CheckoutStarted(
        order_id=order_id,
        buyer_id=BUYER,
        cart_id=CART,
        currency="EUR",
        policy=policy,
        items=[
            LineItem(sku="SKU-A", quantity=2, unit_price=Decimal("5.00")),
            LineItem(sku="SKU-B", quantity=1, unit_price=Decimal("15.00")),
        ],
    )


def reservation(reservation_id: UUID, sku: str = "SKU-A", quantity: int = 2) -> Reservation:
    """One held reservation."""
    return Reservation(reservation_id=reservation_id, sku=sku, quantity=quantity)


def stock_reserved(*ids: UUID) -> StockReservationCompleted:
    """Inventory's success; by default both lines held as R1 and R2."""
    held = [reservation(i, sku=f"SKU-{n}") for n, i in enumerate(ids or (R1, R2))]
    return StockReservationCompleted(order_id=ORDER, reservations=held)


def reserved_in_part(held: UUID = R1) -> StockReservationCompleted:
    """Inventory's partial success: SKU-A held, SKU-B (1 x 15.00) rejected for want of stock."""
    return StockReservationCompleted(
        order_id=ORDER,
        reservations=[reservation(held, sku="SKU-A", quantity=2)],
        rejected=[StockShortage(sku="SKU-B", requested=1, available=0)],
    )


def stock_failed(reason: str = "out of stock") -> StockReservationFailed:
    """Inventory's refusal."""
    return StockReservationFailed(order_id=ORDER, reason=reason)


def paid(payment_id: UUID = P1, amount: Decimal = TOTAL, currency: str = "EUR") -> PaymentCompleted:
    """A payment; by default P1 for exactly the order total."""
    return PaymentCompleted(order_id=ORDER, payment_id=payment_id, amount=amount, currency=currency)


def declined(payment_id: UUID | None = None, reason: str = "card declined") -> PaymentFailed:
    """A payment failure."""
    return PaymentFailed(order_id=ORDER, payment_id=payment_id, reason=reason)


def deadline_passed(deadline: datetime) -> PaymentDeadlinePassed:
    """The poller's event for this deadline."""
    return PaymentDeadlinePassed(order_id=ORDER, deadline=deadline)


def advance(
    *events: SagaEvent,
    now: datetime = NOW,
    policy: CheckoutPolicy = CheckoutPolicy.ALL_OR_NOTHING,
) -> StepResult:
    """A saga started by `checkout_started(policy=...)` and stepped through `events`."""
    result = start(checkout_started(policy=policy), now, POLICY)
    for event in events:
        result = step(result.state, result.data, event, now, POLICY)
        assert result.outcome != "rejected", result.reason
    return result


def sent(result: StepResult) -> list[Message]:
    """The messages a step sends, in order."""
    return [c.message for c in result.commands]
