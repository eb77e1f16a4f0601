"""Cart rules, pure: what a cart may hold, which buyer may buy an offer, and what ClearCart empties.

Imports no I/O library; the repository applies what these functions decide.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from contracts import LineItem


class CartStatus(StrEnum):
    """Life of a cart: active, checked out into an order, then cleared (or abandoned, merged)."""

    ACTIVE = "active"
    CHECKED_OUT = "checked_out"
    CLEARED = "cleared"
    ABANDONED = "abandoned"
    MERGED = "merged"
    """A guest cart taken into a buyer's cart on sign-in (`merged_into` names it)."""


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


MAX_ITEM_QUANTITY = 20
"""Units of one SKU a cart may hold (a product's offer may allow fewer)."""

MAX_DISTINCT_ITEMS = 50
"""Distinct SKUs a cart may hold."""

HOUSE_VENDOR = "house"
"""The vendor of offers that name none (every offer from before the catalog knew vendors)."""


@dataclass(frozen=True, slots=True)
class Offer:
    """The current offer of a product: price, currency, whether it sells, vendor, MOQ, cap, attributes."""

    sku: str
    offer_id: uuid.UUID
    unit_price: Decimal
    currency: str
    active: bool
    max_qty: int
    vendor_id: str = HOUSE_VENDOR
    moq: int = 1
    # What promotions select by, tax rates vary by and shipping weighs; not part of the terms.
    category: str | None = None
    brand: str | None = None
    weight_grams: int = 0

    @property
    def limit(self) -> int:
        """Units of this product one cart may hold."""
        return min(self.max_qty, MAX_ITEM_QUANTITY)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A line's price as the buyer saw it: the offer, unit price, currency, vendor, and when."""

    offer_id: uuid.UUID | None
    unit_price: Decimal
    currency: str
    captured_at: datetime
    vendor_id: str = HOUSE_VENDOR


@dataclass(frozen=True, slots=True)
class Attributes:
    """What pricing reads of a product besides its price: category, brand, unit weight."""

    category: str | None = None
    brand: str | None = None
    weight_grams: int = 0


@dataclass(frozen=True, slots=True)
class CartLine:
    """One line of a cart: its public id, product, quantity, price snapshot and attributes."""

    item_id: uuid.UUID
    sku: str
    quantity: int
    snapshot: Snapshot
    # The product's current attributes, read with the line; not part of what a line is.
    attributes: Attributes = field(default_factory=lambda: Attributes(), compare=False)

    @property
    def total(self) -> Decimal:
        """Quantity x snapshot unit price."""
        return self.snapshot.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the buyer wants the cart shipped and how; each part None until chosen."""

    country: str | None = None
    region: str | None = None
    method_id: str | None = None


@dataclass(frozen=True, slots=True)
class ShoppingCart:
    """A buyer's cart as the API shows it: header, version and lines (ordered by SKU)."""

    cart_id: uuid.UUID
    buyer_id: str
    status: CartStatus
    currency: str
    version: int
    created_at: datetime
    updated_at: datetime
    lines: tuple[CartLine, ...]
    # The codes the buyer entered (normalized, in entry order) and the delivery chosen.
    coupons: tuple[str, ...] = ()
    delivery: Delivery = field(default_factory=Delivery)
    # The shop's pricing rules version read in the same statement as the cart (None: not read),
    # so pricing it needs no read of its own; not part of what the cart is.
    rules_version: int | None = field(default=None, compare=False)

    @property
    def total(self) -> Decimal:
        """Sum of the line totals."""
        return sum((line.total for line in self.lines), Decimal("0.00"))

    def line(self, sku: str) -> CartLine | None:
        """The line of a SKU, if the cart has one."""
        return next((line for line in self.lines if line.sku == sku), None)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule, named by the request field it concerns."""

    field: str
    reason: str


class CartRuleError(Exception):
    """The request breaks one or more cart rules; nothing was changed."""

    def __init__(self, *violations: Violation) -> None:
        super().__init__("; ".join(f"{v.field}: {v.reason}" for v in violations))
        self.violations = violations


class CartNotFoundError(Exception):
    """No such cart, item or order for this buyer (another buyer's looks exactly the same)."""


class StaleCartError(Exception):
    """The cart changed since the version the client last saw (If-Match)."""

    def __init__(self, current: int | None) -> None:
        super().__init__(f"the cart is at version {current}")
        self.current = current


def check_version(if_match: int | None, current: int | None) -> None:
    """Refuse a change made against another version than the current one (None: no check)."""
    if if_match is not None and if_match != current:
        raise StaleCartError(current)


def offer_violations(
    sku: str, quantity: int, offer: Offer | None, at: str = "", buyer_id: str | None = None
) -> list[Violation]:
    """Why this buyer cannot put this product in a cart in this quantity (empty: they can)."""
    if offer is None:
        return [Violation(f"{at}sku", f"unknown product {sku!r}")]
    if not offer.active:
        return [Violation(f"{at}sku", f"product {sku!r} is not available")]
    if buyer_id is not None and offer.vendor_id == buyer_id:
        return [Violation(f"{at}sku", own_store_reason(sku))]
    if quantity > offer.limit:
        return [Violation(f"{at}qty", f"at most {offer.limit} of {sku!r} per cart")]
    return []


def own_store_reason(sku: str) -> str:
    """Why a buyer cannot buy this product: their own vendor store sells it."""
    return f"{sku!r} is sold by your own vendor store; a buyer cannot buy from themselves"


def check_add(
    cart: ShoppingCart | None, sku: str, quantity: int, offer: Offer | None, buyer_id: str
) -> int:
    """The line quantity after adding units of a product; raises CartRuleError when refused."""
    line = cart.line(sku) if cart else None
    total = quantity + (line.quantity if line else 0)
    violations = offer_violations(sku, total, offer, buyer_id=buyer_id)
    if cart and line is None and len(cart.lines) >= MAX_DISTINCT_ITEMS:
        violations.append(Violation("sku", f"a cart holds at most {MAX_DISTINCT_ITEMS} products"))
    if offer and cart and cart.lines and offer.currency != cart.currency:
        violations.append(_currency_violation("sku", sku, offer.currency, cart.currency))
    if violations:
        raise CartRuleError(*violations)
    return total


def check_quantity(line: CartLine, quantity: int, offer: Offer | None) -> None:
    """Refuse a new quantity above the product's cap, or more units of a product no longer sold."""
    if quantity <= line.quantity:
        return  # fewer units are always fine, even of a product no longer sold
    violations = offer_violations(line.sku, quantity, offer)
    if violations:
        raise CartRuleError(*[Violation("qty", v.reason) for v in violations])


def check_replacement(
    items: Sequence[tuple[str, int]], offers: Mapping[str, Offer], buyer_id: str
) -> str | None:
    """The currency of a whole new cart content (None when empty); raises when refused."""
    violations: list[Violation] = []
    seen: set[str] = set()
    currency: str | None = None
    for i, (sku, quantity) in enumerate(items):
        at = f"items.{i}."
        if sku in seen:
            violations.append(Violation(f"{at}sku", f"{sku!r} appears twice; merge the lines"))
        seen.add(sku)
        offer = offers.get(sku)
        found = offer_violations(sku, quantity, offer, at, buyer_id)
        violations.extend(found)
        if offer and not found:
            currency = currency or offer.currency
            if offer.currency != currency:
                violations.append(_currency_violation(f"{at}sku", sku, offer.currency, currency))
    if len(seen) > MAX_DISTINCT_ITEMS:
        violations.append(Violation("items", f"a cart holds at most {MAX_DISTINCT_ITEMS} products"))
    if violations:
        raise CartRuleError(*violations)
    return currency


def _currency_violation(at: str, sku: str, currency: str, cart_currency: str) -> Violation:
    return Violation(
        at, f"{sku!r} is priced in {currency}; a cart holds one currency ({cart_currency})"
    )


@dataclass(frozen=True, slots=True)
class LineChange:
    """How one line's quantity moved: delta > 0 added units, delta < 0 removed them."""

    line: CartLine
    delta: int
    quantity: int


def line_changes(before: Sequence[CartLine], after: Sequence[CartLine]) -> list[LineChange]:
    """Per SKU, how the quantities moved from one cart content to the next (for cart events)."""
    old = {line.sku: line for line in before}
    new = {line.sku: line for line in after}
    changes = []
    for sku in sorted(old.keys() | new.keys()):
        was = old[sku].quantity if sku in old else 0
        now = new[sku].quantity if sku in new else 0
        if now != was:
            changes.append(LineChange(new.get(sku) or old[sku], now - was, now))
    return changes
