"""Cart rules, pure: which cart a ClearCart empties and whose it may be.

Imports no I/O library; the repository applies what these functions decide.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from contracts import LineItem


class CartStatus(StrEnum):
    """Life of a cart: active, checked out into an order, then cleared (or abandoned)."""

    ACTIVE = "active"
    CHECKED_OUT = "checked_out"
    CLEARED = "cleared"
    ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class Cart:
    """A buyer's cart with its item snapshots (unit prices as the buyer saw them)."""

    cart_id: uuid.UUID
    buyer_id: str
    status: CartStatus
    currency: str
    order_id: uuid.UUID | None
    items: tuple[LineItem, ...]


@dataclass(frozen=True, slots=True)
class ClearIt:
    """Empty this cart and mark it cleared."""

    cart_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class NothingToClear:
    """No cart here for the order (it came from an upstream without a cart): record that."""


@dataclass(frozen=True, slots=True)
class NotTheBuyers:
    """The cart belongs to another buyer; it must not be touched."""

    reason: str


def plan_clearance(
    cart: Cart | None, order_id: uuid.UUID, buyer_id: str
) -> ClearIt | NothingToClear | NotTheBuyers:
    """What a ClearCart for this order and buyer does to the cart that was found for it."""
    if cart is None:
        return NothingToClear()
    if cart.buyer_id != buyer_id:
        return NotTheBuyers(
            f"cart {cart.cart_id} belongs to another buyer than {buyer_id!r}"
            f" (order {order_id}); it is left untouched"
        )
    return ClearIt(cart.cart_id)
