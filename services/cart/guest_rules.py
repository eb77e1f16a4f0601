"""Guest rules, pure: guest identities and tokens, and how a guest cart merges into a buyer's.

A guest is a buyer id of its own (`guest:<session id>`) that no signed-in buyer may send. On
sign-in `plan_merge` decides, line by line, what of the guest cart the buyer's cart takes and
what it leaves out and why; the merge use case applies the plan. Imports no I/O library.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.cart.domain import (
    MAX_DISTINCT_ITEMS,
    CartLine,
    Offer,
    ShoppingCart,
    Snapshot,
    own_store_reason,
)

GUEST_PREFIX = "guest:"
"""Buyer ids of guests start with it; a signed-in buyer's id never does (the API refuses it)."""


def guest_buyer_id(session_id: uuid.UUID) -> str:
    """The buyer id a guest session's carts and orders belong to."""
    return f"{GUEST_PREFIX}{session_id}"


def is_guest(buyer_id: str) -> bool:
    """Whether a buyer id is a guest's."""
    return buyer_id.startswith(GUEST_PREFIX)


def session_of(buyer_id: str) -> uuid.UUID:
    """The guest session of a guest buyer id (ValueError for any other id)."""
    if not is_guest(buyer_id):
        raise ValueError(f"{buyer_id!r} is not a guest")
    return uuid.UUID(buyer_id.removeprefix(GUEST_PREFIX))


def token_digest(token: str) -> str:
    """What is stored of a guest token: its SHA-256 (a leaked table yields no usable token)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Misfit(StrEnum):
    """Why a guest line was left out of the buyer's cart."""

    UNAVAILABLE = "unavailable"
    OWN_STORE = "own_store"
    CURRENCY = "currency_mismatch"
    OVER_LIMIT = "over_limit"
    TOO_MANY_PRODUCTS = "too_many_products"


@dataclass(frozen=True, slots=True)
class MergedLine:
    """A line of the buyer's cart after the merge: summed quantity and the newer snapshot."""

    sku: str
    added: int
    quantity: int
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A guest line the merge did not take, and why (the buyer's own line is unchanged)."""

    sku: str
    quantity: int
    reason: Misfit
    detail: str


@dataclass(frozen=True, slots=True)
class MergePlan:
    """What the buyer's cart becomes: its currency, the lines written, the lines left out."""

    currency: str | None
    merged: tuple[MergedLine, ...]
    left_out: tuple[LeftOut, ...]


def plan_merge(
    guest: Sequence[CartLine],
    cart: ShoppingCart | None,
    offers: Mapping[str, Offer],
    buyer_id: str,
) -> MergePlan:
    """Merge guest lines (by SKU) into the buyer's cart under the rules an add follows.

    A line whose product is no longer sold, is sold by the buyer's own store, is priced in
    another currency than the cart's, would pass its cap summed, or would be one product too
    many is left out whole. The MOQ is a checkout rule (a cart may hold fewer) and a merge
    never lowers a quantity, so it refuses nothing for it.
    """
    currency = cart.currency if cart and cart.lines else None
    distinct = len(cart.lines) if cart else 0
    merged: list[MergedLine] = []
    left_out: list[LeftOut] = []
    for line in sorted(guest, key=lambda ln: ln.sku):
        own = cart.line(line.sku) if cart else None
        misfit = _misfit(line, own, offers.get(line.sku), currency, distinct, buyer_id)
        if misfit is not None:
            left_out.append(LeftOut(line.sku, line.quantity, *misfit))
            continue
        currency = currency or line.snapshot.currency
        distinct += own is None
        merged.append(_sum(line, own))
    return MergePlan(currency, tuple(merged), tuple(left_out))


def _misfit(
    line: CartLine,
    own: CartLine | None,
    offer: Offer | None,
    currency: str | None,
    distinct: int,
    buyer_id: str,
) -> tuple[Misfit, str] | None:
    sku = line.sku
    if offer is None or not offer.active:
        return Misfit.UNAVAILABLE, f"product {sku!r} is not available"
    if buyer_id in (offer.vendor_id, line.snapshot.vendor_id):
        return Misfit.OWN_STORE, own_store_reason(sku)
    if currency is not None and line.snapshot.currency != currency:
        return Misfit.CURRENCY, (
            f"{sku!r} is priced in {line.snapshot.currency}; the cart holds {currency}"
        )
    total = line.quantity + (own.quantity if own else 0)
    if total > offer.limit:
        return Misfit.OVER_LIMIT, f"at most {offer.limit} of {sku!r} per cart; summed {total}"
    if own is None and distinct >= MAX_DISTINCT_ITEMS:
        return Misfit.TOO_MANY_PRODUCTS, f"a cart holds at most {MAX_DISTINCT_ITEMS} products"
    return None


def _sum(line: CartLine, own: CartLine | None) -> MergedLine:
    if own is None:
        return MergedLine(line.sku, line.quantity, line.quantity, line.snapshot)
    # The newer snapshot is the price the shopper saw last; a tie keeps the buyer's own.
    newer = own.snapshot.captured_at >= line.snapshot.captured_at
    snapshot = own.snapshot if newer else line.snapshot
    return MergedLine(line.sku, line.quantity, own.quantity + line.quantity, snapshot)
