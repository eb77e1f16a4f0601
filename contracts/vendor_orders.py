"""How a checkout splits into vendor orders: one per vendor, with deterministic ids.

The cart API and the orders service both split a checkout; this one rule keeps them agreeing.
Pure: imports only the standard library and the other contract modules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from contracts.messages import CheckoutStarted, LineItem
from contracts.types import CheckoutPolicy

VENDOR_ORDER_NAMESPACE = uuid.UUID("0b6c3f1e-5a7d-4e2b-8c9f-2d4e6a8b0c13")


@dataclass(frozen=True, slots=True)
class VendorOrder:
    """The part of a checkout one vendor fulfils: its own order id, lines and total."""

    order_id: uuid.UUID
    vendor_id: str | None
    items: tuple[LineItem, ...]

    @property
    def total(self) -> Decimal:
        """Sum of quantity x unit price over the lines."""
        return lines_total(self.items)


def lines_total(items: tuple[LineItem, ...] | list[LineItem]) -> Decimal:
    """Sum of quantity x unit price, in the currency's cents."""
    return sum((i.unit_price * i.quantity for i in items), Decimal("0.00"))


def vendor_order_id(group_id: uuid.UUID, vendor_id: str | None, *, alone: bool) -> uuid.UUID:
    """The id of one vendor's order in a group.

    The only vendor order of a group takes the group's id: a single-vendor checkout keeps the
    order id its upstream chose, as before marketplaces existed.
    """
    if alone:
        return group_id
    return uuid.uuid5(VENDOR_ORDER_NAMESPACE, f"{group_id}:{vendor_id or ''}")


def split(started: CheckoutStarted) -> tuple[VendorOrder, ...]:
    """The vendor orders of a checkout, by vendor id (lines naming no vendor first)."""
    by_vendor: dict[str | None, list[LineItem]] = {}
    for item in started.items:
        by_vendor.setdefault(item.vendor_id, []).append(item)
    vendors = sorted(by_vendor, key=lambda v: (v is not None, v or ""))
    alone = len(vendors) == 1
    return tuple(
        VendorOrder(
            order_id=vendor_order_id(started.order_id, vendor, alone=alone),
            vendor_id=vendor,
            items=tuple(by_vendor[vendor]),
        )
        for vendor in vendors
    )


def is_marketplace(started: CheckoutStarted) -> bool:
    """Whether a checkout uses marketplace features (vendors or the partial policy).

    Only such checkouts put the marketplace fields on the order events, so that consumers of
    schema version 1 keep reading plain checkouts unchanged.
    """
    return started.policy is not CheckoutPolicy.ALL_OR_NOTHING or any(
        i.vendor_id for i in started.items
    )
