"""Shipping, pure: which methods can carry a cart to a destination, and at what price.

A method serves a list of countries (ISO 3166-1 alpha-2, "DE") or regions (ISO 3166-2, "US-CA");
a country serves all its regions. It is priced by the parcel's weight, from ordered bands: the
first band whose limit is at or above the weight sets the price, and a parcel heavier than the last
band cannot use the method at all. Availability rules: an order value at or above a minimum and at
or below a maximum (both inclusive), no excluded SKU or category in the cart, and free shipping at
or above a threshold. The order value the caller passes is the goods after discounts, as the shop
stores its prices (net or gross); band prices are stored the same way, and tax.py taxes them.
Band prices are whole cents and nothing is computed from them, so this module never rounds.
Imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.cart.pricing_lines import CENT, PricedLine

FREE = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the parcel goes: a country, and the region inside it when the address names one."""

    country: str
    region: str | None = None

    def __post_init__(self) -> None:
        if len(self.country) != 2 or not self.country.isalpha() or not self.country.isupper():
            raise ValueError(f"country {self.country!r} is not an ISO 3166-1 alpha-2 code")
        # The region is the full ISO 3166-2 code, so "CA" can never be read as Canada by mistake.
        if self.region is not None and not self.region.startswith(f"{self.country}-"):
            raise ValueError(f"region {self.region!r} is not a subdivision of {self.country}")


@dataclass(frozen=True, slots=True)
class WeightBand:
    """Parcels up to this weight (inclusive) cost this price."""

    up_to_grams: int
    price: Decimal


@dataclass(frozen=True, slots=True)
class ShippingMethod:
    """A way to ship: where it goes, its weight bands and when a cart may use it."""

    method_id: str
    name: str
    serves: frozenset[str]
    bands: tuple[WeightBand, ...]
    min_order_value: Decimal | None = None
    max_order_value: Decimal | None = None
    excluded_skus: frozenset[str] = frozenset()
    excluded_categories: frozenset[str] = frozenset()
    free_from: Decimal | None = None

    def __post_init__(self) -> None:
        if not self.serves:
            raise ValueError(f"method {self.method_id}: serves no destination")
        if not self.bands:
            raise ValueError(f"method {self.method_id}: needs at least one weight band")
        limits = [band.up_to_grams for band in self.bands]
        if limits != sorted(set(limits)) or limits[0] < 0:
            raise ValueError(
                f"method {self.method_id}: band limits must be non-negative and strictly increase"
            )
        for band in self.bands:
            _require_cents(self.method_id, band.price)


def _require_cents(method_id: str, price: Decimal) -> None:
    # Refusing sub-cent band prices keeps every displayed shipping amount exact as stored.
    if not price.is_finite() or price < 0 or price % CENT != 0:
        raise ValueError(f"method {method_id}: price {price} is not a whole number of cents")


@dataclass(frozen=True, slots=True)
class ShippingQuote:
    """An available method for this cart, with the price it would cost."""

    method_id: str
    name: str
    price: Decimal
    weight_grams: int
    free: bool


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A method this cart cannot use, and why (shown to the buyer who asks for it)."""

    method_id: str
    reason: str


class ShippingUnavailableError(Exception):
    """The chosen shipping method cannot carry this cart."""

    def __init__(self, method_id: str, reason: str) -> None:
        super().__init__(f"shipping method {method_id!r} is not available: {reason}")
        self.method_id = method_id
        self.reason = reason


def parcel_weight(lines: Iterable[PricedLine]) -> int:
    """The parcel's weight in grams: each line's unit weight times its quantity."""
    return sum(line.weight_grams * line.quantity for line in lines)


def ships_to(method: ShippingMethod, destination: Destination) -> bool:
    """Whether the method ships to the destination's country or to its region."""
    return destination.country in method.serves or destination.region in method.serves


def band_price(method: ShippingMethod, weight_grams: int) -> Decimal | None:
    """The price of the first band that holds the weight; None when the parcel is too heavy."""
    for band in method.bands:
        if weight_grams <= band.up_to_grams:
            return band.price
    return None


def assess(
    method: ShippingMethod,
    lines: Sequence[PricedLine],
    destination: Destination,
    order_value: Decimal,
) -> ShippingQuote | Unavailable:
    """The method's quote for this cart, or the first rule that makes it unavailable."""
    reason = _refusal(method, lines, destination, order_value)
    if reason is not None:
        return Unavailable(method.method_id, reason)
    weight = parcel_weight(lines)
    price = band_price(method, weight)
    if price is None:
        limit = method.bands[-1].up_to_grams
        return Unavailable(method.method_id, f"parcel of {weight} g is above the {limit} g limit")
    free = method.free_from is not None and order_value >= method.free_from
    return ShippingQuote(method.method_id, method.name, FREE if free else price, weight, free)


def _refusal(
    method: ShippingMethod,
    lines: Sequence[PricedLine],
    destination: Destination,
    order_value: Decimal,
) -> str | None:
    if not ships_to(method, destination):
        where = destination.region or destination.country
        return f"does not ship to {where}"
    if method.min_order_value is not None and order_value < method.min_order_value:
        return f"needs an order value of at least {method.min_order_value}"
    if method.max_order_value is not None and order_value > method.max_order_value:
        return f"takes orders up to {method.max_order_value} only"
    excluded = sorted(
        line.sku
        for line in lines
        if line.sku in method.excluded_skus or line.category in method.excluded_categories
    )
    if excluded:
        return f"cannot carry {', '.join(excluded)}"
    return None


def survey(
    methods: Iterable[ShippingMethod],
    lines: Sequence[PricedLine],
    destination: Destination,
    order_value: Decimal,
) -> tuple[list[ShippingQuote], list[Unavailable]]:
    """Every method assessed: the available ones by price then id, the others by id."""
    quotes: list[ShippingQuote] = []
    unavailable: list[Unavailable] = []
    for method in methods:
        outcome = assess(method, lines, destination, order_value)
        if isinstance(outcome, ShippingQuote):
            quotes.append(outcome)
        else:
            unavailable.append(outcome)
    quotes.sort(key=lambda q: (q.price, q.method_id))
    unavailable.sort(key=lambda u: u.method_id)
    return quotes, unavailable


def quote(
    methods: Iterable[ShippingMethod],
    lines: Sequence[PricedLine],
    destination: Destination,
    order_value: Decimal,
) -> list[ShippingQuote]:
    """The methods available for this cart and destination, cheapest first (ties by id)."""
    return survey(methods, lines, destination, order_value)[0]


def choose(
    quotes: Sequence[ShippingQuote],
    method_id: str,
    unavailable: Sequence[Unavailable] = (),
) -> ShippingQuote:
    """The quote of the chosen method; refused with the reason when the cart cannot use it."""
    for candidate in quotes:
        if candidate.method_id == method_id:
            return candidate
    for refused in unavailable:
        if refused.method_id == method_id:
            raise ShippingUnavailableError(method_id, refused.reason)
    offered = ", ".join(q.method_id for q in quotes) or "none"
    raise ShippingUnavailableError(method_id, f"not offered for this cart (available: {offered})")
