"""One saga instance: its stored state and data, and the small types a step exchanges.

Pure: imports only the standard library, pydantic and contracts (no I/O library, no service).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    Message,
    PaymentCompleted,
    PaymentFailed,
    RejectedLine,
    Reservation,
    StockItem,
)
from contracts.types import BuyerId, Currency, Money, Sku, TotalAmount

MAX_ANOMALIES = 100
"""Anomalies kept per saga (the newest): a flood of bogus messages must not grow the row forever."""


class SagaState(StrEnum):
    """Where a checkout saga is; the values are stored in the database."""

    SUBMITTED = "Submitted"
    STOCK_RESERVED = "StockReserved"
    CONFIRMED = "Confirmed"
    FAILED = "Failed"


FINAL_STATES: frozenset[SagaState] = frozenset({SagaState.CONFIRMED, SagaState.FAILED})
"""States a saga never leaves; only duplicate, late and anomaly rows apply in them."""


class SagaData(BaseModel):
    """Everything a saga remembers between messages; stored as JSON, changed by model_copy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: UUID
    buyer_id: BuyerId
    cart_id: UUID | None = None
    currency: Currency
    # Money, not Decimal: a total no payment can carry fails the saga's start, not its payment
    # request after stock is already held. A partial reservation lowers it to the held lines.
    amount: Money
    items: Annotated[list[StockItem], Field(min_length=1)]
    policy: CheckoutPolicy = CheckoutPolicy.ALL_OR_NOTHING
    # Only a partial checkout keeps its prices: they price the lines inventory may reject.
    unit_prices: dict[Sku, Money] = {}
    # A priced partial checkout also keeps each line's charge (its discounted, taxed share of
    # the grand total: what a rejection takes off) and the shipping charge, which stays due
    # while any line is accepted. Empty and None in sagas stored before pricing existed.
    # Not Money: a line discounted to nothing, or free shipping, is charged 0.00.
    line_charges: dict[Sku, TotalAmount] = {}
    shipping_charge: TotalAmount | None = None
    rejected: list[RejectedLine] = []
    reservations: list[Reservation] = []
    early_payment: PaymentCompleted | None = None
    early_payment_failure: PaymentFailed | None = None
    payment_id: UUID | None = None
    refunded_payment_ids: list[UUID] = []
    failure_reason: str | None = None
    anomalies: list[str] = []
    payment_deadline: AwareDatetime | None = None
    reservation_requests: Annotated[int, Field(ge=0)] = 0
    # The row that sent the PaymentRequested being waited on: its id derives from that row, so
    # an operator's retry re-sends it under the same id. None in sagas stored before the field.
    payment_requested_by: str | None = None

    @field_validator("payment_deadline")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @classmethod
    def from_checkout(cls, event: CheckoutStarted) -> SagaData:
        """The data of a saga that this checkout is starting (its amount: the grand total)."""
        return cls(
            order_id=event.order_id,
            buyer_id=event.buyer_id,
            cart_id=event.cart_id,
            currency=event.currency,
            amount=event.total,
            items=[StockItem(sku=i.sku, quantity=i.quantity) for i in event.items],
            policy=event.policy,
            **kept_prices(event),
        )


def kept_prices(event: CheckoutStarted) -> dict[str, Any]:
    """What a saga keeps to price rejected lines: nothing unless the checkout is partial."""
    if event.policy is not CheckoutPolicy.PARTIAL:
        return {"unit_prices": {}, "line_charges": {}, "shipping_charge": None}
    pricing = event.pricing
    return {
        "unit_prices": {i.sku: i.unit_price for i in event.items},
        "line_charges": {} if pricing is None else pricing.charges(),
        "shipping_charge": None if pricing is None else pricing.shipping_charge,
    }


@dataclass(frozen=True)
class PaymentDeadlinePassed:
    """Timeout poller -> saga (internal, never on the wire): this payment deadline is due."""

    order_id: UUID
    deadline: datetime


@dataclass(frozen=True)
class OperatorAbort:
    """Operator -> saga (internal, never on the wire): fail this checkout now, with compensation."""

    order_id: UUID
    actor: str
    reason: str


@dataclass(frozen=True)
class OperatorRetry:
    """Operator -> saga (internal, never on the wire): re-send the command the saga waits on."""

    order_id: UUID
    actor: str
    reason: str


OperatorEvent = OperatorAbort | OperatorRetry
SagaEvent = Message | PaymentDeadlinePassed | OperatorAbort | OperatorRetry


@dataclass(frozen=True)
class Outgoing:
    """A command to write to the outbox, with its deterministic message id."""

    message: Message
    message_id: UUID


class Outcome(StrEnum):
    """What a step did: applied a row, recognised a duplicate, or rejected an unlisted pair."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class SagaPolicy:
    """Tunables of the saga's behaviour."""

    payment_timeout: timedelta = timedelta(seconds=30)
