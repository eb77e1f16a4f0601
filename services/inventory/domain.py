"""Inventory rules, pure: reservation plans (all or nothing, or partial), and what may change.

Imports no I/O library; the repository applies what these functions decide.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from contracts import Reservation, StockItem, StockShortage

_RESERVATION_NAMESPACE = uuid.UUID("4a7d0d2e-0c55-4c39-9f8e-1f5f3e2b9a61")


class ReservationStatus(StrEnum):
    """Life of a reservation row: held, then deducted (sold) or released (given back)."""

    HELD = "held"
    DEDUCTED = "deducted"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Reserved:
    """These lines can be held (all of them, or a partial plan's reservable ones)."""

    reservations: tuple[Reservation, ...]
    rejected: tuple[StockShortage, ...] = ()
    """The lines a partial plan goes on without; nothing is held for them."""


@dataclass(frozen=True, slots=True)
class Refused:
    """At least one line cannot be held: nothing is, and this is why."""

    reason: str
    shortages: tuple[StockShortage, ...]


def reservation_id(order_id: uuid.UUID, sku: str) -> uuid.UUID:
    """Deterministic id, so re-reserving an order names the same reservations."""
    return uuid.uuid5(_RESERVATION_NAMESPACE, f"{order_id}:{sku}")


def plan_reservation(
    order_id: uuid.UUID,
    items: Sequence[StockItem],
    available: Mapping[str, int],
    *,
    partial: bool = False,
) -> Reserved | Refused:
    """Decide a reservation against the (locked) available counts.

    All or nothing: any short line refuses the whole order. Partial: the short lines are
    rejected and the others held; an order with no line left is refused all the same.
    """
    shortages = tuple(
        StockShortage(sku=i.sku, requested=i.quantity, available=available.get(i.sku))
        for i in items
        if available.get(i.sku, -1) < i.quantity
    )
    short_skus = {s.sku for s in shortages}
    holdable = [i for i in items if i.sku not in short_skus]
    if shortages and not (partial and holdable):
        return Refused(reason=_refusal(shortages), shortages=shortages)
    reservations = tuple(
        Reservation(reservation_id=reservation_id(order_id, i.sku), sku=i.sku, quantity=i.quantity)
        for i in sorted(holdable, key=lambda i: i.sku)
    )
    return Reserved(reservations, rejected=shortages)


def _refusal(shortages: Sequence[StockShortage]) -> str:
    unknown = [s.sku for s in shortages if s.available is None]
    short = [s.sku for s in shortages if s.available is not None]
    parts = ([f"unknown product(s): {', '.join(unknown)}"] if unknown else []) + (
        [f"insufficient stock for: {', '.join(short)}"] if short else []
    )
    return "; ".join(parts)


def releasable(
    statuses: Mapping[uuid.UUID, ReservationStatus], requested: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Held reservations among those asked for (all held ones when none are named).

    A deducted reservation is sold and is never released; a released one is already back.
    """
    wanted = set(requested) if requested else set(statuses)
    return sorted(rid for rid in wanted if statuses.get(rid) is ReservationStatus.HELD)


def deductible(statuses: Mapping[uuid.UUID, ReservationStatus]) -> list[uuid.UUID]:
    """Held reservations of an order that a DeductStock turns into sold stock."""
    return sorted(rid for rid, s in statuses.items() if s is ReservationStatus.HELD)
