"""How a checkout splits into vendor orders: one per vendor, with deterministic ids and totals.

The cart API and the orders service both split a checkout; this one rule keeps them agreeing.
A priced checkout's vendor order costs its lines' charges plus a share of the shipping charge,
split over the vendor orders in proportion to their lines' charges (`allocate`), so the vendor
orders' totals add up to the grand total exactly.
Pure: imports only the standard library and the other contract modules.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from contracts.messages import CheckoutStarted, LineItem
from contracts.pricing import ZERO, LineCharge
from contracts.types import CheckoutPolicy

VENDOR_ORDER_NAMESPACE = uuid.UUID("0b6c3f1e-5a7d-4e2b-8c9f-2d4e6a8b0c13")


@dataclass(frozen=True, slots=True)
class VendorOrder:
    """The part of a checkout one vendor fulfils: its own order id, lines and total."""

    order_id: uuid.UUID
    vendor_id: str | None
    items: tuple[LineItem, ...]
    charges: tuple[LineCharge, ...] = ()
    """Its lines' charges, in item order, when the checkout is priced (else empty)."""
    shipping_share: Decimal = ZERO
    """Its share of the priced checkout's shipping charge."""

    @property
    def total(self) -> Decimal:
        """Its share of what the buyer pays: the charges plus shipping share, or the lines' sum."""
        if self.charges:
            return sum((c.charge for c in self.charges), self.shipping_share)
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
    orders = [
        VendorOrder(
            order_id=vendor_order_id(started.order_id, vendor, alone=alone),
            vendor_id=vendor,
            items=tuple(by_vendor[vendor]),
        )
        for vendor in vendors
    ]
    return tuple(orders) if started.pricing is None else _priced(orders, started)


def _priced(orders: list[VendorOrder], started: CheckoutStarted) -> tuple[VendorOrder, ...]:
    """The vendor orders with their lines' charges and their shares of the shipping charge."""
    assert started.pricing is not None
    by_sku = {line.sku: line for line in started.pricing.lines}
    charges = [tuple(by_sku[item.sku] for item in order.items) for order in orders]
    weights = [sum((c.charge for c in mine), ZERO) for mine in charges]
    shares = allocate(started.pricing.shipping_charge, weights)
    return tuple(
        VendorOrder(o.order_id, o.vendor_id, o.items, mine, share)
        for o, mine, share in zip(orders, charges, shares, strict=True)
    )


def allocate(amount: Decimal, weights: Sequence[Decimal]) -> tuple[Decimal, ...]:
    """Whole cents of `amount` over positions, in proportion to weights, summing exactly.

    Largest remainder: each position gets its exact share rounded down to the cent, and the
    cents left over go one each to the largest remainders, ties to the earlier position. When
    every weight is zero the positions weigh the same. Deterministic: same input, same cents.
    """
    cents, parts = _cents(amount), [_cents(w) for w in weights]
    if any(part < 0 for part in parts) or cents < 0:
        raise ValueError("allocate takes no negative amount or weight")
    if not parts:
        if cents:
            raise ValueError(f"nowhere to allocate {amount}")
        return ()
    if not any(parts):
        parts = [1] * len(parts)
    whole = sum(parts)
    shares = [cents * part // whole for part in parts]
    left = cents - sum(shares)
    # Each remainder is under one cent's worth, so the cents left go to as many positions.
    by_remainder = sorted(range(len(parts)), key=lambda i: (-(cents * parts[i] % whole), i))
    for i in by_remainder[:left]:
        shares[i] += 1
    return tuple(Decimal(share).scaleb(-2) for share in shares)


def shipping_after_rejections(
    shares: Sequence[Decimal], accepted: Sequence[Decimal | None]
) -> tuple[Decimal, ...]:
    """The vendor orders' shipping shares once some lost lines (None: it kept no line at all).

    The buyer pays the shipping while any line is accepted: a vendor order left with no line
    ships nothing, so its share goes to the vendor orders that kept lines, by `allocate` over
    their accepted lines' charges. The others keep their own share.
    """
    kept = [i for i, value in enumerate(accepted) if value is not None]
    if not kept:
        return tuple(ZERO for _ in shares)
    pooled = sum((s for s, value in zip(shares, accepted, strict=True) if value is None), ZERO)
    extra = allocate(pooled, [accepted[i] or ZERO for i in kept])
    moved = dict(zip(kept, extra, strict=True))
    return tuple(
        ZERO if value is None else share + moved[i]
        for i, (share, value) in enumerate(zip(shares, accepted, strict=True))
    )


def _cents(amount: Decimal) -> int:
    """Whole cents of an amount that must be in whole cents (refused otherwise, never rounded)."""
    scaled = amount.scaleb(2)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of cents")
    return int(scaled)


def is_marketplace(started: CheckoutStarted) -> bool:
    """Whether a checkout uses marketplace features (vendors or the partial policy).

    Only such checkouts put the marketplace fields on the order events, so that consumers of
    schema version 1 keep reading plain checkouts unchanged.
    """
    return started.policy is not CheckoutPolicy.ALL_OR_NOTHING or any(
        i.vendor_id for i in started.items
    )
