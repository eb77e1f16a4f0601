"""Order rules without I/O: the snapshot a checkout becomes and every status transition."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from contracts import CheckoutStarted, ConfirmOrder, LineItem, OrderFailed
from services.orders.domain import (
    Change,
    Command,
    Confirm,
    Fail,
    Order,
    OrderStatus,
    Rejected,
    Unchanged,
    command_of,
    decide,
    new_order,
    order_total,
)

ORDER = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
PAID = uuid.UUID("00000000-0000-4000-8000-0000000000bb")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000cc")


def _order(status: OrderStatus) -> Order:
    return Order(
        order_id=ORDER,
        status=status,
        payment_id=PAID if status is OrderStatus.CONFIRMED else None,
        failure_reason="out of stock" if status is OrderStatus.FAILED else None,
    )


def test_a_checkout_becomes_a_snapshot_with_its_total() -> None:
    event = CheckoutStarted(
        order_id=ORDER,
        buyer_id="b-1",
        currency="EUR",
        items=[
            LineItem(sku="A", quantity=3, unit_price=Decimal("0.10")),
            LineItem(sku="B", quantity=1, unit_price=Decimal("19.99")),
        ],
    )

    order = new_order(event)

    assert (order.order_id, order.buyer_id, order.currency) == (ORDER, "b-1", "EUR")
    assert order.total == Decimal("20.29")
    assert order.items == [
        {"sku": "A", "quantity": 3, "unit_price": "0.10"},
        {"sku": "B", "quantity": 1, "unit_price": "19.99"},
    ]


def test_the_total_is_exact_decimal_arithmetic() -> None:
    items = [LineItem(sku=f"S{i}", quantity=3, unit_price=Decimal("0.10")) for i in range(10)]

    assert order_total(items) == Decimal("3.00")


def test_commands_become_rule_inputs() -> None:
    assert command_of(ConfirmOrder(order_id=ORDER, payment_id=PAID)) == Confirm(PAID)
    assert command_of(OrderFailed(order_id=ORDER, reason="timeout")) == Fail("timeout")


@pytest.mark.parametrize(
    ("status", "command", "expected"),
    [
        (OrderStatus.CREATED, Confirm(PAID), Change(OrderStatus.CONFIRMED, payment_id=PAID)),
        (
            OrderStatus.CREATED,
            Fail("declined"),
            Change(OrderStatus.FAILED, failure_reason="declined"),
        ),
        (OrderStatus.CONFIRMED, Confirm(PAID), Unchanged()),
        (OrderStatus.FAILED, Fail("out of stock"), Unchanged()),
        (OrderStatus.FAILED, Fail("payment timeout"), Unchanged()),
    ],
)
def test_allowed_transitions(
    status: OrderStatus, command: Command, expected: Change | Unchanged
) -> None:
    assert decide(_order(status), command) == expected


@pytest.mark.parametrize(
    ("status", "command", "says"),
    [
        (OrderStatus.CONFIRMED, Fail("timeout"), "cannot be marked failed"),
        (OrderStatus.CONFIRMED, Confirm(OTHER), "cannot be confirmed again"),
        (OrderStatus.FAILED, Confirm(PAID), "cannot be confirmed"),
    ],
)
def test_contradicting_a_final_state_is_rejected(
    status: OrderStatus, command: Command, says: str
) -> None:
    outcome = decide(_order(status), command)

    assert isinstance(outcome, Rejected)
    assert says in outcome.reason
    assert str(ORDER) in outcome.reason
