"""Business figures of the cart, pure: active carts, conversion, order value, promotion usage.

The definitions are stated here once; business_queries.py only counts rows for them, and the
admin API and the Prometheus gauges both show what this module makes of the counts. Every
windowed figure covers the last `window` by the database's clock (the gauges: `WINDOW`, 24 h):

- Active carts: carts whose status is `active` now (no window), signed-in buyers' and guests'
  apart (a guest is a `guest:` buyer id, guest_rules.is_guest).
- A cart *ended* in the window when its last write (`updated_at`) falls in it and its status is
  `checked_out` or `cleared` (it converted: cleared follows a confirmed order) or `abandoned`
  (the abandon job). A `merged` guest cart did not end: it goes on in the buyer's cart, so it
  is counted apart and in neither rate.
- Conversion rate = converted / ended; abandonment rate = abandoned / ended; both None (never
  NaN) when nothing ended.
- Average order value, per currency: over the checkout groups created (checked out) in the
  window whose status (checkout_rules.group_status) is completed or partially completed, the
  sum of their balances due (checkout_rules.balance_due) over their number, rounded once with
  `to_cents`. Groups still processing count once they are final, if still in the window.
- Promotion usage: redemptions made in the window (`redeemed_at`), per promotion. A use given
  back (`returned_at` set: the group's order failed) is counted apart, and its amount is no
  discount granted. Discount total per currency: the amounts of the uses not given back.

Imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from services.cart.checkout_rules import GroupStatus, OrderProgress, group_status
from services.cart.domain import CartStatus
from services.cart.pricing_lines import to_cents

WINDOW = timedelta(hours=24)
"""The window of the gauges (the admin API takes one per request, within the bounds below)."""
MIN_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=30)

ZERO = Decimal("0.00")
CONVERTED = frozenset({CartStatus.CHECKED_OUT, CartStatus.CLEARED})
"""Statuses of a cart that checked out: cleared follows the confirmed order."""
PAID = frozenset({GroupStatus.COMPLETED, GroupStatus.PARTIALLY_COMPLETED})
"""Group statuses whose balance is an order's value."""


class BuyerKind(StrEnum):
    """Whose cart: a signed-in buyer's or a guest's (guest_rules: a `guest:` buyer id)."""

    BUYER = "buyer"
    GUEST = "guest"

    @classmethod
    def of(cls, guest: bool) -> BuyerKind:
        """The kind for a guest flag."""
        return cls.GUEST if guest else cls.BUYER


def check_window(window: timedelta) -> timedelta:
    """The window itself when within MIN_WINDOW..MAX_WINDOW (ValueError otherwise)."""
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ValueError(f"a window is {MIN_WINDOW} to {MAX_WINDOW}, not {window}")
    return window


def window_label(window: timedelta) -> str:
    """A window as Prometheus writes durations: 30d, 24h, 90m or 45s (the largest whole unit)."""
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class CartCount:
    """Carts of one status and kind: the active ones now, the others ended in the window."""

    status: CartStatus
    kind: BuyerKind
    carts: int


@dataclass(frozen=True, slots=True)
class CartFigures:
    """Active carts now, and how the carts that left `active` in the window did."""

    active: Mapping[BuyerKind, int]
    converted: int
    abandoned: int
    merged: int

    @property
    def ended(self) -> int:
        """Carts that ended: checked out or abandoned (merged ones go on in a buyer's cart)."""
        return self.converted + self.abandoned

    @property
    def conversion_rate(self) -> float | None:
        """Converted carts over ended ones; None when none ended."""
        return self.converted / self.ended if self.ended else None

    @property
    def abandonment_rate(self) -> float | None:
        """Abandoned carts over ended ones; None when none ended."""
        return self.abandoned / self.ended if self.ended else None


def cart_figures(counts: Iterable[CartCount]) -> CartFigures:
    """Sum the counts into active carts per kind and the window's endings."""
    active = dict.fromkeys(BuyerKind, 0)
    by_status = dict.fromkeys(CartStatus, 0)
    for count in counts:
        by_status[count.status] += count.carts
        if count.status is CartStatus.ACTIVE:
            active[count.kind] += count.carts
    return CartFigures(
        active=active,
        converted=sum(by_status[status] for status in CONVERTED),
        abandoned=by_status[CartStatus.ABANDONED],
        merged=by_status[CartStatus.MERGED],
    )


@dataclass(frozen=True, slots=True)
class _StandIn:
    """A vendor order of one progress, standing in for all of a group's at that progress."""

    progress: OrderProgress
    adjusted_total: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class OrderMix:
    """Which progresses a checkout group's vendor orders are at: any not final, confirmed, failed."""

    open: bool
    confirmed: bool
    failed: bool

    @property
    def status(self) -> GroupStatus:
        """The group's status, by checkout_rules.group_status (its vendor orders' mix decides it)."""
        present = (
            (self.open, OrderProgress.PENDING),
            (self.confirmed, OrderProgress.CONFIRMED),
            (self.failed, OrderProgress.FAILED),
        )
        return group_status([_StandIn(progress) for here, progress in present if here])


@dataclass(frozen=True, slots=True)
class GroupTally:
    """Checkout groups of one currency and order mix created in the window, and their balance."""

    currency: str
    mix: OrderMix
    groups: int
    balance: Decimal
    """The sum of the groups' balances due (checkout_rules.balance_due: confirmed orders)."""


@dataclass(frozen=True, slots=True)
class OrderValue:
    """Completed (or partially completed) checkouts of one currency, their sales and average."""

    currency: str
    orders: int
    sales: Decimal
    average: Decimal


def order_values(tallies: Iterable[GroupTally]) -> list[OrderValue]:
    """Per currency with any paid group, by currency: how many, how much, the average, in cents."""
    counts: dict[str, int] = {}
    sales: dict[str, Decimal] = {}
    for tally in tallies:
        if tally.mix.status in PAID and tally.groups:
            counts[tally.currency] = counts.get(tally.currency, 0) + tally.groups
            sales[tally.currency] = sales.get(tally.currency, ZERO) + tally.balance
    return [
        OrderValue(currency, n, sales[currency], to_cents(sales[currency] / n))
        for currency, n in sorted(counts.items())
    ]


@dataclass(frozen=True, slots=True)
class RedemptionTally:
    """Uses of one promotion in one currency made in the window, given back or not."""

    promotion_id: str
    currency: str
    returned: bool
    uses: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PromotionUsage:
    """A promotion's uses in the window: those that stand, and those given back."""

    promotion_id: str
    uses: int
    returned: int


@dataclass(frozen=True, slots=True)
class Discount:
    """What promotions took off in one currency (uses given back left out), and in how many uses."""

    currency: str
    amount: Decimal
    uses: int


def promotion_usage(tallies: Iterable[RedemptionTally]) -> list[PromotionUsage]:
    """Per promotion used in the window, by id: uses standing and uses given back."""
    standing: dict[str, int] = {}
    returned: dict[str, int] = {}
    for tally in tallies:
        into = returned if tally.returned else standing
        into[tally.promotion_id] = into.get(tally.promotion_id, 0) + tally.uses
    used = sorted(standing.keys() | returned.keys())
    return [PromotionUsage(p, standing.get(p, 0), returned.get(p, 0)) for p in used]


def discounts(tallies: Iterable[RedemptionTally]) -> list[Discount]:
    """Per currency with a use standing, by currency: the amounts taken off (exact sums)."""
    amounts: dict[str, Decimal] = {}
    uses: dict[str, int] = {}
    for tally in tallies:
        if not tally.returned:
            amounts[tally.currency] = amounts.get(tally.currency, ZERO) + tally.amount
            uses[tally.currency] = uses.get(tally.currency, 0) + tally.uses
    return [Discount(currency, amounts[currency], uses[currency]) for currency in sorted(uses)]


@dataclass(frozen=True, slots=True)
class BusinessFigures:
    """Every business figure over one window."""

    window: timedelta
    carts: CartFigures
    orders: list[OrderValue]
    promotions: list[PromotionUsage]
    discounts: list[Discount]


def business_figures(
    window: timedelta,
    carts: Iterable[CartCount],
    groups: Iterable[GroupTally],
    redemptions: Iterable[RedemptionTally],
) -> BusinessFigures:
    """The figures of one window from the counts of its carts, groups and redemptions."""
    used = list(redemptions)
    return BusinessFigures(
        window=window,
        carts=cart_figures(carts),
        orders=order_values(groups),
        promotions=promotion_usage(used),
        discounts=discounts(used),
    )
