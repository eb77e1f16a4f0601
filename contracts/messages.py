"""Every message payload: commands (VerbNoun) and events (NounPastParticiple) of the checkout."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.envelope import SCHEMA_VERSION, Envelope, utcnow
from contracts.types import (
    MAX_LINE_ITEMS,
    BuyerId,
    Currency,
    Email,
    Money,
    Quantity,
    Reason,
    Sku,
)


class Message(BaseModel):
    """Base of every payload: strict, immutable, keyed by the order it belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    message_type: ClassVar[str]

    order_id: uuid.UUID

    def to_envelope(
        self,
        message_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        """Wrap this payload in an envelope; the correlation id is always the order id."""
        return Envelope(
            message_id=message_id or uuid.uuid4(),
            message_type=self.message_type,
            correlation_id=self.order_id,
            causation_id=causation_id,
            occurred_at=occurred_at or utcnow(),
            schema_version=SCHEMA_VERSION,
            payload=self.model_dump(mode="json"),
        )


def _unique_skus(skus: list[str]) -> None:
    if len(set(skus)) != len(skus):
        raise ValueError("each sku may appear only once; merge the quantities")


class LineItem(BaseModel):
    """One product line of a checkout: sku, quantity and the unit price the buyer saw."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Sku
    quantity: Quantity
    unit_price: Money


class StockItem(BaseModel):
    """One product line to reserve: sku and quantity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Sku
    quantity: Quantity


class Reservation(BaseModel):
    """One held reservation: its id, product and quantity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reservation_id: uuid.UUID
    sku: Sku
    quantity: Quantity


class StockShortage(BaseModel):
    """Why one line could not be reserved: requested versus available (None: unknown sku)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Sku
    requested: Quantity
    available: Annotated[int, Field(ge=0)] | None


class CheckoutStarted(Message):
    """Upstream or the cart API -> saga and orders: a buyer submitted a checkout; start its saga."""

    message_type: ClassVar[str] = "CheckoutStarted"

    buyer_id: BuyerId
    buyer_email: Email | None = None
    cart_id: uuid.UUID | None = None
    currency: Currency
    items: Annotated[list[LineItem], Field(min_length=1, max_length=MAX_LINE_ITEMS)]

    @field_validator("items")
    @classmethod
    def _skus_unique(cls, items: list[LineItem]) -> list[LineItem]:
        _unique_skus([item.sku for item in items])
        return items

    @property
    def total(self) -> Decimal:
        """Order total: sum of quantity x unit price."""
        return sum((i.unit_price * i.quantity for i in self.items), Decimal("0.00"))


class ReserveStockForOrder(Message):
    """Saga -> inventory: reserve every line of the order, all or nothing."""

    message_type: ClassVar[str] = "ReserveStockForOrder"

    items: Annotated[list[StockItem], Field(min_length=1, max_length=MAX_LINE_ITEMS)]

    @field_validator("items")
    @classmethod
    def _skus_unique(cls, items: list[StockItem]) -> list[StockItem]:
        _unique_skus([item.sku for item in items])
        return items


class StockReservationCompleted(Message):
    """Inventory -> saga: every line of the order is held; here are the reservations."""

    message_type: ClassVar[str] = "StockReservationCompleted"

    reservations: Annotated[list[Reservation], Field(min_length=1, max_length=MAX_LINE_ITEMS)]


class StockReservationFailed(Message):
    """Inventory -> saga: the order could not be reserved; nothing is held for it."""

    message_type: ClassVar[str] = "StockReservationFailed"

    reason: Reason
    shortages: Annotated[list[StockShortage], Field(max_length=MAX_LINE_ITEMS)] = []


class PaymentRequested(Message):
    """Saga -> payment provider: charge the buyer this amount for the order."""

    message_type: ClassVar[str] = "PaymentRequested"

    buyer_id: BuyerId
    amount: Money
    currency: Currency


class PaymentCompleted(Message):
    """Payment provider -> saga: the buyer was charged."""

    message_type: ClassVar[str] = "PaymentCompleted"

    payment_id: uuid.UUID
    amount: Money
    currency: Currency


class PaymentFailed(Message):
    """Payment provider -> saga: the charge was declined or could not be made."""

    message_type: ClassVar[str] = "PaymentFailed"

    payment_id: uuid.UUID | None = None
    reason: Reason


class RefundPayment(Message):
    """Saga -> payment provider: give back a payment that arrived for a failed order."""

    message_type: ClassVar[str] = "RefundPayment"

    payment_id: uuid.UUID
    amount: Money
    currency: Currency
    reason: Reason


class PaymentRefunded(Message):
    """Payment provider -> saga and analytics: a payment was refunded."""

    message_type: ClassVar[str] = "PaymentRefunded"

    payment_id: uuid.UUID
    amount: Money
    currency: Currency


class ConfirmOrder(Message):
    """Saga -> orders: the order is paid and stock is held; mark it confirmed."""

    message_type: ClassVar[str] = "ConfirmOrder"

    payment_id: uuid.UUID


class OrderFailed(Message):
    """Saga -> orders (a command): mark the order failed with this reason."""

    message_type: ClassVar[str] = "OrderFailed"

    reason: Reason


class DeductStock(Message):
    """Saga -> inventory: turn the order's held reservations into sold stock."""

    message_type: ClassVar[str] = "DeductStock"


class ReleaseStockReservations(Message):
    """Saga -> inventory: give back held stock (the listed reservations, or all when empty)."""

    message_type: ClassVar[str] = "ReleaseStockReservations"

    reservation_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_LINE_ITEMS)] = []
    reason: Reason


class ClearCart(Message):
    """Saga -> cart: the order is confirmed; empty the cart it was checked out from."""

    message_type: ClassVar[str] = "ClearCart"

    buyer_id: BuyerId
    cart_id: uuid.UUID | None = None


class OrderCreated(Message):
    """Orders -> analytics (event type `order_created`): an order exists, pending payment."""

    message_type: ClassVar[str] = "order_created"

    buyer_id: BuyerId
    currency: Currency
    total: Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
    items: Annotated[list[LineItem], Field(min_length=1, max_length=MAX_LINE_ITEMS)]


class OrderConfirmed(Message):
    """Orders -> analytics (event type `order_confirmed`): the order was paid and confirmed."""

    message_type: ClassVar[str] = "order_confirmed"

    payment_id: uuid.UUID


class OrderMarkedFailed(Message):
    """Orders -> analytics (event type `order_marked_failed`): the order failed, with why."""

    message_type: ClassVar[str] = "order_marked_failed"

    reason: Reason
