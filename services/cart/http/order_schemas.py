"""Bodies of the checkout, order and checkout-group routes, and their conversion from the views."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from contracts import CheckoutPolicy, LineItem
from contracts.pricing import CheckoutPricing
from contracts.types import Email
from contracts.vendor_orders import VendorOrder
from services.cart.checkout_rules import GroupStatus, OrderProgress
from services.cart.groups import GroupView
from services.cart.http.pricing_requests import TotalsIn
from services.cart.http.schemas import RequestBody
from services.cart.order_view import OrderView
from services.cart.shopping import Checkout


class CheckoutRequest(RequestBody):
    """Optional checkout details."""

    buyer_email: Email | None = None
    policy: CheckoutPolicy = Field(
        default=CheckoutPolicy.ALL_OR_NOTHING,
        description="all_or_nothing (default): a line that cannot be reserved fails every "
        "vendor order. partial: such lines are rejected with a reason and each vendor order "
        "goes on with the rest (one whose every line is rejected fails).",
    )
    expected_totals: TotalsIn | None = Field(
        default=None,
        description="The cart's `totals` as shown to the buyer: when the re-priced totals differ "
        "(a promotion ended, a rate or shipping price changed) the checkout is refused with 409 "
        "and the differences. Without it the checkout charges the totals as priced now.",
    )


@dataclass(frozen=True, slots=True)
class Links:
    """How the API names an order and a checkout group (paths, for `*_url` fields)."""

    order: Callable[[uuid.UUID], str]
    group: Callable[[uuid.UUID], str]


class OrderLineOut(BaseModel):
    """One line of an order, at the price snapshot it was checked out with."""

    sku: str
    quantity: int
    unit_price: Decimal


class RejectedLineOut(BaseModel):
    """A line a partial checkout went on without, and why."""

    sku: str
    quantity: int
    reason: str = Field(description="insufficient_stock or unavailable.")


def _lines(items: Sequence[dict[str, Any]] | Sequence[LineItem]) -> list[OrderLineOut]:
    return [
        OrderLineOut.model_validate(i if isinstance(i, dict) else i.model_dump()) for i in items
    ]


class VendorOrderSummary(BaseModel):
    """One vendor order a checkout made, as the checkout answers it."""

    order_id: uuid.UUID
    vendor_id: str | None
    items: list[OrderLineOut]
    total: Decimal
    state: str = "Submitted"
    order_url: str

    @classmethod
    def of(cls, order: VendorOrder, links: Links) -> VendorOrderSummary:
        """The summary of a vendor order just split off a checkout."""
        return cls(
            order_id=order.order_id,
            vendor_id=order.vendor_id,
            items=_lines(order.items),
            total=order.total,
            order_url=links.order(order.order_id),
        )


class CheckoutAccepted(BaseModel):
    """The cart became a checkout group of one order per vendor; follow it at `group_url`."""

    order_id: uuid.UUID = Field(description="The checkout group's id (kept for older clients).")
    cart_id: uuid.UUID
    state: str = "Submitted"
    order_url: str = Field(
        description="The order for a single-vendor cart (its only order has the group's id), "
        "else the group; also the Location header."
    )
    checkout_group_id: uuid.UUID
    group_url: str
    policy: CheckoutPolicy
    currency: str
    total: Decimal
    orders: list[VendorOrderSummary]

    @classmethod
    def of(cls, done: Checkout, links: Links) -> CheckoutAccepted:
        """The answer to a checkout."""
        group_url = links.group(done.group_id)
        alone = len(done.orders) == 1
        return cls(
            order_id=done.group_id,
            cart_id=done.cart_id,
            order_url=links.order(done.group_id) if alone else group_url,
            checkout_group_id=done.group_id,
            group_url=group_url,
            policy=done.policy,
            currency=done.currency,
            total=done.total,
            orders=[VendorOrderSummary.of(order, links) for order in done.orders],
        )


class VendorOrderOut(BaseModel):
    """A (vendor) order as the saga moves it: Submitted, then Confirmed or Failed."""

    order_id: uuid.UUID
    vendor_id: str | None
    state: str = Field(description="Submitted (pending or created), Confirmed or Failed.")
    status: OrderProgress = Field(description="pending, created, confirmed or failed.")
    failure_reason: str | None
    currency: str
    total: Decimal = Field(description="As checked out.")
    adjusted_total: Decimal = Field(
        description="After rejected lines (what a confirmed order is paid for)."
    )
    items: list[OrderLineOut] = Field(description="As checked out.")
    accepted: list[OrderLineOut] = Field(description="The lines going ahead.")
    rejected: list[RejectedLineOut]
    order_url: str

    @classmethod
    def fields_of(cls, order: OrderView, links: Links) -> dict[str, Any]:
        """The fields of a vendor order, by name."""
        return {
            "order_id": order.order_id,
            "vendor_id": order.vendor_id,
            "state": order.state,
            "status": order.progress,
            "failure_reason": order.failure_reason,
            "currency": order.currency,
            "total": order.total,
            "adjusted_total": order.adjusted_total,
            "items": _lines(order.items),
            "accepted": _lines(order.accepted),
            "rejected": [RejectedLineOut.model_validate(r) for r in order.rejected],
            "order_url": links.order(order.order_id),
        }

    @classmethod
    def of(cls, order: OrderView, links: Links) -> VendorOrderOut:
        """The API shape of a vendor order in its group."""
        return cls(**cls.fields_of(order, links))


class OrderOut(VendorOrderOut):
    """An order on its own: a vendor order and the checkout group it belongs to."""

    cart_id: uuid.UUID
    checkout_group_id: uuid.UUID | None
    group_url: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: OrderView, links: Links) -> OrderOut:
        """The API shape of the cart's order view."""
        group = order.checkout_group_id
        return cls(
            **cls.fields_of(order, links),
            cart_id=order.cart_id,
            checkout_group_id=group,
            group_url=links.group(group) if group else None,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class CheckoutGroupOut(BaseModel):
    """A checkout group: its vendor orders, how far they are, and what the buyer pays."""

    checkout_group_id: uuid.UUID
    cart_id: uuid.UUID
    policy: CheckoutPolicy
    currency: str
    created_at: datetime
    status: GroupStatus = Field(
        description="processing (a vendor order is not final), completed (every one "
        "confirmed), partially_completed (some confirmed, some failed) or failed (every one)."
    )
    total: Decimal = Field(description="As checked out: the grand total when priced.")
    balance_due: Decimal = Field(description="The confirmed vendor orders' adjusted totals.")
    orders: list[VendorOrderOut]
    pricing: CheckoutPricing | None = Field(
        default=None,
        description="How the total was made (discounts, shipping, tax, each line's charge); "
        "null when the checkout was charged its lines' amounts only.",
    )

    @classmethod
    def of(cls, group: GroupView, links: Links) -> CheckoutGroupOut:
        """The API shape of a checkout group."""
        return cls(
            checkout_group_id=group.group_id,
            cart_id=group.cart_id,
            policy=group.policy,
            currency=group.currency,
            created_at=group.created_at,
            status=group.status,
            total=group.total,
            balance_due=group.balance_due,
            orders=[VendorOrderOut.of(order, links) for order in group.orders],
            pricing=group.pricing,
        )
