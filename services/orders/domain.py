"""Order rules, pure: the snapshot a checkout becomes, and which status changes a command may make.

Imports no I/O library; the repository stores what these functions decide.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from contracts import CheckoutStarted, ConfirmOrder, LineItem, OrderFailed


class OrderStatus(StrEnum):
    """Life of an order: created, then confirmed or failed (both final)."""

    CREATED = "created"
    CONFIRMED = "confirmed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewOrder:
    """What a checkout becomes: the buyer, a line-item snapshot and its total."""

    order_id: uuid.UUID
    buyer_id: str
    currency: str
    total: Decimal
    items: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Order:
    """The part of a stored order the transition rules look at."""

    order_id: uuid.UUID
    status: OrderStatus
    payment_id: uuid.UUID | None
    failure_reason: str | None


@dataclass(frozen=True, slots=True)
class Confirm:
    """The saga's ConfirmOrder, as a rule input: the order was paid by this payment."""

    payment_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Fail:
    """The saga's OrderFailed, as a rule input: the order failed for this reason."""

    reason: str


Command = Confirm | Fail


@dataclass(frozen=True, slots=True)
class Change:
    """Apply this: the new status and what it records."""

    status: OrderStatus
    payment_id: uuid.UUID | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The command repeats a final state the order already has: nothing to do."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The command contradicts the order's final state and can never apply: this is why."""

    reason: str


def order_total(items: list[LineItem]) -> Decimal:
    """Sum of quantity x unit price over the lines, in the currency's cents."""
    return sum((i.unit_price * i.quantity for i in items), Decimal("0.00"))


def new_order(event: CheckoutStarted) -> NewOrder:
    """The order a checkout creates: its lines as the buyer saw them, frozen as JSON."""
    return NewOrder(
        order_id=event.order_id,
        buyer_id=event.buyer_id,
        currency=event.currency,
        total=order_total(event.items),
        items=[item.model_dump(mode="json") for item in event.items],
    )


def command_of(message: ConfirmOrder | OrderFailed) -> Command:
    """The rule input of a saga command."""
    if isinstance(message, ConfirmOrder):
        return Confirm(payment_id=message.payment_id)
    return Fail(reason=message.reason)


def decide(order: Order, command: Command) -> Change | Unchanged | Rejected:
    """What a command does to an order; confirmed and failed are final."""
    if order.status is OrderStatus.CREATED:
        if isinstance(command, Confirm):
            return Change(OrderStatus.CONFIRMED, payment_id=command.payment_id)
        return Change(OrderStatus.FAILED, failure_reason=command.reason)
    if order.status is OrderStatus.CONFIRMED:
        if isinstance(command, Fail):
            return Rejected(
                f"order {order.order_id} is confirmed (payment {order.payment_id});"
                f" it cannot be marked failed ({command.reason})"
            )
        if command.payment_id != order.payment_id:
            return Rejected(
                f"order {order.order_id} is confirmed with payment {order.payment_id};"
                f" it cannot be confirmed again with payment {command.payment_id}"
            )
        return Unchanged()
    if isinstance(command, Confirm):
        return Rejected(
            f"order {order.order_id} failed ({order.failure_reason});"
            f" it cannot be confirmed with payment {command.payment_id}"
        )
    # A second failure keeps the first reason: the order failed once, for that.
    return Unchanged()
