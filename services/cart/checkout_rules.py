"""Checkout rules, pure: when a cart must be re-priced or is refused, and what a group adds up to.

A checkout re-prices every line against its product's current offer (409 when the terms
changed), then refuses lines the offer's terms forbid (422: own vendor store, below the minimum
order quantity, above the cap). A checkout group's status and balance due follow from its
vendor orders' progress alone. Imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from services.cart.domain import CartLine, Offer, Violation, own_store_reason


class PriceChange(StrEnum):
    """Why a line's snapshot no longer matches its product's offer."""

    PRICE_CHANGED = "price_changed"
    CURRENCY_CHANGED = "currency_changed"
    VENDOR_CHANGED = "vendor_changed"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Difference:
    """A line whose price snapshot differs from the current offer, and how."""

    line: CartLine
    change: PriceChange
    current: Offer | None


class PriceChangedError(Exception):
    """Checkout refused: some snapshots no longer match the current offers."""

    def __init__(self, differences: Sequence[Difference]) -> None:
        super().__init__(f"{len(differences)} line(s) changed price")
        self.differences = tuple(differences)


def reprice(lines: Sequence[CartLine], offers: Mapping[str, Offer]) -> list[Difference]:
    """Lines whose snapshot no longer matches the current offer (empty: the cart may check out)."""
    differences = []
    for line in lines:
        offer = offers.get(line.sku)
        if offer is None or not offer.active:
            differences.append(Difference(line, PriceChange.UNAVAILABLE, offer))
        elif offer.currency != line.snapshot.currency:
            differences.append(Difference(line, PriceChange.CURRENCY_CHANGED, offer))
        elif offer.vendor_id != line.snapshot.vendor_id:
            differences.append(Difference(line, PriceChange.VENDOR_CHANGED, offer))
        elif offer.unit_price != line.snapshot.unit_price:
            differences.append(Difference(line, PriceChange.PRICE_CHANGED, offer))
    return differences


def checkout_violations(
    lines: Sequence[CartLine], offers: Mapping[str, Offer], buyer_id: str
) -> list[Violation]:
    """Why lines of a re-priced cart cannot be checked out: at most one reason per line.

    The field is the line's place in the cart as GET /cart lists it (`items.<i>.qty`). A
    quantity within the cap when added may exceed a cap lowered since, and MOQ is only checked
    here, so a buyer can build a line up to it one add at a time.
    """
    violations = []
    for i, line in enumerate(lines):
        offer = offers[line.sku]  # reprice() refused lines without a current offer
        reason = _checkout_refusal(line, offer, buyer_id)
        if reason is not None:
            field = "sku" if line.snapshot.vendor_id == buyer_id else "qty"
            violations.append(Violation(f"items.{i}.{field}", reason))
    return violations


def _checkout_refusal(line: CartLine, offer: Offer, buyer_id: str) -> str | None:
    if line.snapshot.vendor_id == buyer_id:
        return own_store_reason(line.sku)
    if line.quantity < offer.moq:
        return (
            f"{line.sku!r} sells at least {offer.moq} units per order (minimum order "
            f"quantity); the cart holds {line.quantity}"
        )
    if line.quantity > offer.limit:
        return f"at most {offer.limit} of {line.sku!r} per cart; the cart holds {line.quantity}"
    return None


class OrderProgress(StrEnum):
    """What the cart knows of a (vendor) order: checked out, created by orders, then final."""

    PENDING = "pending"
    CREATED = "created"
    CONFIRMED = "confirmed"
    FAILED = "failed"


FINAL = frozenset({OrderProgress.CONFIRMED, OrderProgress.FAILED})


class GroupStatus(StrEnum):
    """Where a checkout group stands, from its vendor orders."""

    PROCESSING = "processing"
    """Some vendor order is not final yet."""
    COMPLETED = "completed"
    """Every vendor order confirmed."""
    PARTIALLY_COMPLETED = "partially_completed"
    """Every vendor order final, some confirmed and some failed."""
    FAILED = "failed"
    """Every vendor order failed."""


class VendorOrderState(Protocol):
    """What the group rules read of a vendor order."""

    @property
    def progress(self) -> OrderProgress:
        """How far the order is."""

    @property
    def adjusted_total(self) -> Decimal:
        """Its total after rejected lines (what a confirmed order is paid for)."""


def group_status(orders: Sequence[VendorOrderState]) -> GroupStatus:
    """The group's status: processing until every vendor order is final, then how they ended."""
    if not orders or any(o.progress not in FINAL for o in orders):
        return GroupStatus.PROCESSING
    confirmed = sum(o.progress is OrderProgress.CONFIRMED for o in orders)
    if confirmed == len(orders):
        return GroupStatus.COMPLETED
    return GroupStatus.PARTIALLY_COMPLETED if confirmed else GroupStatus.FAILED


def balance_due(orders: Sequence[VendorOrderState]) -> Decimal:
    """What the buyer pays: the confirmed vendor orders' adjusted totals (failed ones: nothing)."""
    confirmed = (o.adjusted_total for o in orders if o.progress is OrderProgress.CONFIRMED)
    return sum(confirmed, Decimal("0.00"))
