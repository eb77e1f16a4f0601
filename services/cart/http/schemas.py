"""Request and response bodies of the cart API's cart routes and problems (orders: order_schemas)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.types import Sku
from services.cart.checkout_rules import Difference, PriceChange
from services.cart.domain import MAX_DISTINCT_ITEMS, MAX_ITEM_QUANTITY, CartLine, ShoppingCart
from services.cart.http.pricing_schemas import (
    BlockerOut,
    CouponOut,
    DeliveryOut,
    TotalsOut,
    blockers_of,
)
from services.cart.quote import CartQuote

Qty = Annotated[int, Field(strict=True, ge=1, le=MAX_ITEM_QUANTITY, description="Units, 1..20.")]


class RequestBody(BaseModel):
    """Base of request bodies: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class AddItem(RequestBody):
    """Put units of a product in the cart (added to the line's units when it has one)."""

    sku: Sku
    qty: Qty


class SetQuantity(RequestBody):
    """The new quantity of a cart line."""

    qty: Qty


class ReplaceCart(RequestBody):
    """The whole new content of the cart: one entry per product."""

    items: Annotated[list[AddItem], Field(max_length=MAX_DISTINCT_ITEMS)]


class SnapshotOut(BaseModel):
    """A line's price as captured when it was put in the cart."""

    offer_id: uuid.UUID | None
    unit_price: Decimal
    currency: str
    vendor_id: str = Field(description="The vendor selling the product at this offer.")
    captured_at: datetime


class ItemOut(BaseModel):
    """One cart line."""

    id: uuid.UUID
    sku: str
    qty: int
    snapshot: SnapshotOut
    line_total: Decimal

    @classmethod
    def of(cls, line: CartLine) -> ItemOut:
        """The API shape of a domain line."""
        s = line.snapshot
        return cls(
            id=line.item_id,
            sku=line.sku,
            qty=line.quantity,
            snapshot=SnapshotOut(
                offer_id=s.offer_id,
                unit_price=s.unit_price,
                currency=s.currency,
                vendor_id=s.vendor_id,
                captured_at=s.captured_at,
            ),
            line_total=line.total,
        )


class CartOut(BaseModel):
    """The buyer's active cart; `version` is also its ETag, for If-Match."""

    cart_id: uuid.UUID
    status: str
    currency: str
    version: int
    items: list[ItemOut]
    item_count: int = Field(description="Distinct lines.")
    total: Decimal = Field(description="The lines at their snapshot prices (totals: the price).")
    created_at: datetime
    updated_at: datetime
    totals: TotalsOut = Field(description="What checkout charges, as priced now.")
    coupons: list[CouponOut] = Field(description="The codes entered, in entry order.")
    delivery: DeliveryOut
    checkout_blockers: list[BlockerOut] = Field(
        description="What to settle before checking out (empty: ready)."
    )

    @classmethod
    def of(cls, cart: ShoppingCart, quote: CartQuote) -> CartOut:
        """The API shape of a domain cart and its quote."""
        return cls(
            cart_id=cart.cart_id,
            status=cart.status.value,
            currency=cart.currency,
            version=cart.version,
            items=[ItemOut.of(line) for line in cart.lines],
            item_count=len(cart.lines),
            total=cart.total,
            created_at=cart.created_at,
            updated_at=cart.updated_at,
            totals=TotalsOut.of(quote.totals),
            coupons=[CouponOut.of(state) for state in quote.coupons],
            delivery=DeliveryOut.of(quote.delivery, cart.delivery.method_id),
            checkout_blockers=blockers_of(quote),
        )


class PriceDifference(BaseModel):
    """A line whose snapshot no longer matches the current offer."""

    item_id: uuid.UUID
    sku: str
    qty: int
    change: PriceChange
    snapshot_unit_price: Decimal
    snapshot_currency: str
    current_unit_price: Decimal | None = Field(description="None when no longer sold.")
    current_currency: str | None
    snapshot_vendor_id: str
    current_vendor_id: str | None

    @classmethod
    def of(cls, difference: Difference) -> PriceDifference:
        """The API shape of a domain difference."""
        line, offer = difference.line, difference.current
        sold = offer is not None and difference.change is not PriceChange.UNAVAILABLE
        return cls(
            item_id=line.item_id,
            sku=line.sku,
            qty=line.quantity,
            change=difference.change,
            snapshot_unit_price=line.snapshot.unit_price,
            snapshot_currency=line.snapshot.currency,
            current_unit_price=offer.unit_price if sold and offer else None,
            current_currency=offer.currency if sold and offer else None,
            snapshot_vendor_id=line.snapshot.vendor_id,
            current_vendor_id=offer.vendor_id if sold and offer else None,
        )


class TotalDifference(BaseModel):
    """One part of the totals that is not what the buyer saw (None: absent on that side)."""

    field: str = Field(description="subtotal, discount:<promotion id>, shipping, tax, ...")
    was: Decimal | str | bool | None
    now: Decimal | str | bool | None


class FieldError(BaseModel):
    """Why one request field was refused."""

    field: str = Field(description="Dotted path: qty, items.3.sku, Idempotency-Key, ...")
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem detail (application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] = []
    differences: list[PriceDifference] | None = Field(
        default=None, description="Checkout refused because prices changed: how."
    )
    total_differences: list[TotalDifference] | None = Field(
        default=None, description="Checkout refused because the totals changed: which parts."
    )


def dump(model: BaseModel) -> Any:
    """A response model as JSON-ready data (money as decimal strings)."""
    return model.model_dump(mode="json", exclude_none=False)
