"""Every message payload: commands (VerbNoun) and events (NounPastParticiple) of the checkout."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.envelope import SCHEMA_VERSION, Envelope, utcnow
from contracts.pricing import (
    MAX_DISCOUNTS,
    AppliedDiscount,
    CheckoutPricing,
    LineCharge,
    disagreements,
)
from contracts.types import (
    MAX_LINE_ITEMS,
    BuyerId,
    CheckoutPolicy,
    Currency,
    Email,
    Money,
    Quantity,
    Reason,
    RejectionReason,
    Sku,
    TotalAmount,
    VendorId,
)
from contracts.wire_model import WireModel


class Message(WireModel):
    """Base of every payload: strict, immutable, keyed by the order it belongs to."""

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


class LineItem(WireModel):
    """One product line of a checkout: sku, quantity, the unit price the buyer saw, the vendor."""

    ADDITIONS = frozenset({"vendor_id"})

    sku: Sku
    quantity: Quantity
    unit_price: Money
    vendor_id: VendorId | None = Field(
        default=None,
        description="The vendor selling this line (marketplaces); lines without one form "
        "one vendor order of their own.",
    )


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

    @property
    def reason(self) -> RejectionReason:
        """Unavailable (no such product) or insufficient stock."""
        if self.available is None:
            return RejectionReason.UNAVAILABLE
        return RejectionReason.INSUFFICIENT_STOCK


class RejectedLine(BaseModel):
    """One line a partial checkout went on without: the product, its quantity and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Sku
    quantity: Quantity
    reason: RejectionReason


class CheckoutStarted(Message):
    """Upstream or the cart API -> saga and orders: a buyer submitted a checkout; start its saga."""

    message_type: ClassVar[str] = "CheckoutStarted"

    buyer_id: BuyerId
    buyer_email: Email | None = None
    cart_id: uuid.UUID | None = None
    currency: Currency
    items: Annotated[list[LineItem], Field(min_length=1, max_length=MAX_LINE_ITEMS)]
    policy: CheckoutPolicy = Field(
        default=CheckoutPolicy.ALL_OR_NOTHING,
        description="all_or_nothing (default): any short line fails the whole checkout. "
        "partial: short lines are rejected and the rest goes on, vendor order by vendor order.",
    )
    pricing: CheckoutPricing | None = Field(
        default=None,
        description="The promotions, shipping and tax the checkout was priced with; the buyer "
        "is charged pricing.grand_total. Absent: the sum of quantity x unit_price is charged.",
    )

    ADDITIONS = frozenset({"policy", "pricing"})

    @field_validator("items")
    @classmethod
    def _skus_unique(cls, items: list[LineItem]) -> list[LineItem]:
        _unique_skus([item.sku for item in items])
        return items

    @model_validator(mode="after")
    def _not_from_own_store(self) -> CheckoutStarted:
        own = sorted(i.sku for i in self.items if i.vendor_id == self.buyer_id)
        if own:
            raise ValueError(f"a buyer cannot buy from their own vendor store: {', '.join(own)}")
        return self

    @model_validator(mode="after")
    def _pricing_fits_the_items(self) -> CheckoutStarted:
        if self.pricing is not None:
            amounts = {i.sku: i.unit_price * i.quantity for i in self.items}
            problem = next(iter(disagreements(self.pricing, amounts)), None)
            if problem is not None:
                raise ValueError(problem)
        return self

    @property
    def total(self) -> Decimal:
        """What the buyer is charged: pricing.grand_total when priced, else the lines' sum.

        The lines' sum is quantity x unit price over the items.
        """
        if self.pricing is not None:
            return self.pricing.grand_total
        return sum((i.unit_price * i.quantity for i in self.items), Decimal("0.00"))


class ReserveStockForOrder(Message):
    """Saga -> inventory: reserve every line of the order, all or nothing."""

    message_type: ClassVar[str] = "ReserveStockForOrder"

    items: Annotated[list[StockItem], Field(min_length=1, max_length=MAX_LINE_ITEMS)]
    policy: CheckoutPolicy = Field(
        default=CheckoutPolicy.ALL_OR_NOTHING,
        description="partial: hold the lines that can be held and reject the others.",
    )

    ADDITIONS = frozenset({"policy"})

    @field_validator("items")
    @classmethod
    def _skus_unique(cls, items: list[StockItem]) -> list[StockItem]:
        _unique_skus([item.sku for item in items])
        return items


class StockReservationCompleted(Message):
    """Inventory -> saga: the order's lines are held (a partial one: all but the rejected)."""

    message_type: ClassVar[str] = "StockReservationCompleted"

    reservations: Annotated[list[Reservation], Field(min_length=1, max_length=MAX_LINE_ITEMS)]
    rejected: Annotated[list[StockShortage], Field(max_length=MAX_LINE_ITEMS)] = Field(
        default=[],
        description="Lines a partial reservation could not hold; nothing is held for them.",
    )

    ADDITIONS = frozenset({"rejected"})


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
    rejected: Annotated[list[RejectedLine], Field(max_length=MAX_LINE_ITEMS)] = Field(
        default=[],
        description="Lines of a partial checkout that were not reserved: the vendor orders go "
        "on without them, and a vendor order left with no line fails.",
    )

    ADDITIONS = frozenset({"rejected"})


class OrderFailed(Message):
    """Saga -> orders (a command): mark the order failed with this reason."""

    message_type: ClassVar[str] = "OrderFailed"

    reason: Reason
    rejected: Annotated[list[RejectedLine], Field(max_length=MAX_LINE_ITEMS)] = Field(
        default=[], description="Lines of a partial checkout that were not reserved."
    )

    ADDITIONS = frozenset({"rejected"})


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


_GROUP = "The checkout group (the CheckoutStarted's order_id) this vendor order belongs to."
_VENDOR = "The vendor of this order; absent for lines that name no vendor."
_MARKETPLACE = frozenset({"checkout_group_id", "vendor_id"})


class OrderCreated(Message):
    """Orders -> analytics (event type `order_created`): a vendor order exists, pending payment."""

    message_type: ClassVar[str] = "order_created"

    buyer_id: BuyerId
    currency: Currency
    total: TotalAmount
    items: Annotated[list[LineItem], Field(min_length=1, max_length=MAX_LINE_ITEMS)]
    checkout_group_id: uuid.UUID | None = Field(default=None, description=_GROUP)
    vendor_id: VendorId | None = Field(default=None, description=_VENDOR)
    charges: Annotated[list[LineCharge], Field(max_length=MAX_LINE_ITEMS)] = Field(
        default=[],
        description="A priced checkout's lines of this order, with what each costs the buyer; "
        "total is their charges plus shipping.",
    )
    shipping: TotalAmount | None = Field(
        default=None,
        description="This order's share of a priced checkout's shipping charge (split over the "
        "vendor orders in proportion to their lines' charges).",
    )
    discounts: Annotated[list[AppliedDiscount], Field(max_length=MAX_DISCOUNTS)] = Field(
        default=[],
        description="The promotions the whole checkout applied (the same on each vendor order "
        "of a group: count them once per checkout_group_id, or per order when there is none).",
    )

    ADDITIONS = _MARKETPLACE | {"charges", "shipping", "discounts"}


class _OrderOutcome(Message):
    """The fields a final order event adds for marketplaces (all optional)."""

    checkout_group_id: uuid.UUID | None = Field(default=None, description=_GROUP)
    vendor_id: VendorId | None = Field(default=None, description=_VENDOR)
    currency: Currency | None = None
    total: TotalAmount | None = Field(
        default=None, description="The order total after rejected lines (what is paid for)."
    )
    items: Annotated[list[LineItem], Field(max_length=MAX_LINE_ITEMS)] = Field(
        default=[], description="The lines accepted (reserved)."
    )
    rejected: Annotated[list[RejectedLine], Field(max_length=MAX_LINE_ITEMS)] = Field(
        default=[], description="The lines rejected by a partial checkout, with why."
    )

    ADDITIONS = _MARKETPLACE | {"currency", "total", "items", "rejected"}


class OrderConfirmed(_OrderOutcome):
    """Orders -> analytics (event type `order_confirmed`): the order was paid and confirmed."""

    message_type: ClassVar[str] = "order_confirmed"

    payment_id: uuid.UUID


class OrderMarkedFailed(_OrderOutcome):
    """Orders -> analytics (event type `order_marked_failed`): the order failed, with why."""

    message_type: ClassVar[str] = "order_marked_failed"

    reason: Reason


class GroupOutcome(StrEnum):
    """How a checkout group ended, from its vendor orders' final states."""

    COMPLETED = "completed"
    """Every vendor order confirmed."""
    PARTIALLY_COMPLETED = "partially_completed"
    """Some vendor orders confirmed, the others failed."""
    FAILED = "failed"
    """Every vendor order failed."""


class VendorOrderResult(BaseModel):
    """One vendor order of a finished group: its id, vendor, final status, lines and total."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: uuid.UUID
    vendor_id: VendorId | None = None
    status: Literal["confirmed", "failed"]
    total: TotalAmount
    items: Annotated[list[LineItem], Field(max_length=MAX_LINE_ITEMS)]
    rejected: Annotated[list[RejectedLine], Field(max_length=MAX_LINE_ITEMS)] = []
    failure_reason: Reason | None = None


class CheckoutGroupCompleted(Message):
    """Orders -> downstream (`checkout_group_completed`): a group's vendor orders are all final."""

    # Keyed by the checkout group id (the CheckoutStarted's order_id); emitted once per group.

    message_type: ClassVar[str] = "checkout_group_completed"

    buyer_id: BuyerId
    currency: Currency
    outcome: GroupOutcome
    balance_due: TotalAmount = Field(
        description="What the buyer pays: the sum of the confirmed vendor orders' totals."
    )
    orders: Annotated[list[VendorOrderResult], Field(min_length=1, max_length=MAX_LINE_ITEMS)]
