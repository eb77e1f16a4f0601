"""Events the cart service publishes for downstream consumers (analytics, recommendations).

Cart events are keyed by CART id, not order id: every event of one cart travels under one key
and so stays in order on one partition. The envelope rule `correlation_id == payload.order_id`
still holds because a cart event's `order_id` field carries the cart id (see `CartEvent`).
Pure pydantic; imports only the standard library, pydantic and the other contract modules.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from contracts.messages import Message
from contracts.types import BuyerId, Currency, Money, Quantity, Sku

CART_KEY_DESCRIPTION = (
    "The CART id. Cart events are keyed by cart (correlation_id = Kafka key = cart id), "
    "so one cart's events stay in order; the field keeps its envelope-wide name."
)

LineQuantity = Annotated[int, Field(ge=0, le=1000, strict=True)]
"""Units of one SKU left in the cart after the change (0: the line is gone)."""


class CartEvent(Message):
    """Base of the cart's events: keyed by the cart id, which travels in `order_id`."""

    order_id: uuid.UUID = Field(description=CART_KEY_DESCRIPTION)
    buyer_id: BuyerId

    @property
    def cart_id(self) -> uuid.UUID:
        """The cart this event is about (the same value as `order_id`)."""
        return self.order_id


class CartItemAdded(CartEvent):
    """Cart -> downstream (event type `cart.item.added`): units of a SKU were put in a cart."""

    message_type: ClassVar[str] = "cart.item.added"

    item_id: uuid.UUID
    sku: Sku
    quantity: Quantity = Field(description="Units added by this change.")
    line_quantity: LineQuantity = Field(description="Units of this SKU in the cart now.")
    offer_id: uuid.UUID | None = Field(description="The offer the price snapshot was taken of.")
    unit_price: Money
    currency: Currency


class CartItemRemoved(CartEvent):
    """Cart -> downstream (event type `cart.item.removed`): units of a SKU left a cart."""

    message_type: ClassVar[str] = "cart.item.removed"

    item_id: uuid.UUID
    sku: Sku
    quantity: Quantity = Field(description="Units removed by this change.")
    line_quantity: LineQuantity = Field(description="Units of this SKU left (0: line removed).")


class CartCheckedOut(CartEvent):
    """Cart -> downstream (event type `cart.checked_out`): a cart became an order."""

    message_type: ClassVar[str] = "cart.checked_out"

    placed_order_id: uuid.UUID = Field(description="The order the cart became (its saga id).")
    currency: Currency
    total: Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
    item_count: Annotated[int, Field(ge=1, le=1000)] = Field(description="Distinct lines.")


class CartAbandoned(CartEvent):
    """Cart -> downstream (event type `cart.abandoned`): an active cart sat idle past its TTL."""

    message_type: ClassVar[str] = "cart.abandoned"

    idle_since: AwareDatetime
    item_count: Annotated[int, Field(ge=0, le=1000)] = Field(description="Distinct lines.")


CART_EVENTS: tuple[type[Message], ...] = (
    CartItemAdded,
    CartItemRemoved,
    CartCheckedOut,
    CartAbandoned,
)
"""Every cart event type, in the order ALL_MESSAGES lists them."""
