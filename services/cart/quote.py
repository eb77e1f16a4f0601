"""A cart's quote, pure: its lines priced with the shop's rules into totals, coupons and delivery.

One function turns a cart (its lines carry the attributes promotions, tax and shipping read)
and the shop's rules into everything the cart view shows and checkout charges: the totals,
each entered code's state, the shipping options at the chosen destination, each line's charge,
and what still stands in the way of checking out. Lines are priced at their snapshot prices.
A shop with no tax rates charges no tax; one with rates needs a destination it has a rate for. A
shop with shipping methods in the cart's currency needs one chosen. Every entered code must
apply for the cart to check out. Imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.cart.domain import Delivery, ShoppingCart, Violation
from services.cart.pricing_lines import PricedLine, to_cents
from services.cart.promotion_types import Discounts, Promotion, Usage, mask
from services.cart.promotions import apply
from services.cart.shipping import (
    Destination,
    ShippingMethod,
    ShippingQuote,
    ShippingUnavailableError,
    Unavailable,
    choose,
    survey,
)
from services.cart.tax import (
    TaxableLine,
    TaxBreakdown,
    TaxRates,
    UnknownTaxDestinationError,
    tax_for,
)
from services.cart.totals import Totals, assemble, discount_per_line, line_amounts, taxable_lines

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Rules:
    """The shop's pricing rules as they stand now, with the usage counts limits are checked on."""

    promotions: Sequence[Promotion]
    usage: Usage
    methods: Sequence[ShippingMethod]
    rates: TaxRates
    prices_include_tax: bool


@dataclass(frozen=True, slots=True)
class CouponState:
    """An entered code: applied (with its promotion and amount) or not, and then why not."""

    code: str
    promotion_id: str | None
    amount: Decimal | None
    reason: str | None

    @property
    def applied(self) -> bool:
        """Whether the code takes something off the cart now."""
        return self.reason is None

    def __repr__(self) -> str:
        return f"CouponState({mask(self.code)}, applied={self.applied})"


@dataclass(frozen=True, slots=True)
class LineCharge:
    """What one line costs inside the grand total: its amount, discount, tax and charge."""

    sku: str
    amount: Decimal
    discount: Decimal
    tax: Decimal
    charge: Decimal


@dataclass(frozen=True, slots=True)
class DeliveryQuote:
    """The destination chosen, the methods that can (and cannot) carry the cart, the one chosen."""

    destination: Destination | None
    options: tuple[ShippingQuote, ...]
    unavailable: tuple[Unavailable, ...]
    chosen: ShippingQuote | None
    shipping_tax: Decimal


@dataclass(frozen=True, slots=True)
class CartQuote:
    """A priced cart: totals, coupons, delivery, per-line charges, and what blocks its checkout."""

    totals: Totals
    discounts: Discounts
    coupons: tuple[CouponState, ...]
    delivery: DeliveryQuote
    lines: tuple[LineCharge, ...]
    blockers: tuple[Violation, ...]
    priced_at: datetime
    # The next moment a promotion starts or ends: the quote may be other from then on without
    # any write (None: no such moment ahead).
    valid_until: datetime | None = None

    @property
    def fresh_for_s(self) -> float | None:
        """Seconds from pricing until the quote may change without a write (None: no limit)."""
        until = self.valid_until
        return None if until is None else (until - self.priced_at).total_seconds()


def priced_lines(cart: ShoppingCart) -> list[PricedLine]:
    """The cart's lines at their snapshot prices, with their products' current attributes."""
    return [
        PricedLine(
            line_id=line.sku,
            sku=line.sku,
            quantity=line.quantity,
            unit_price=line.snapshot.unit_price,
            category=line.attributes.category,
            brand=line.attributes.brand,
            weight_grams=line.attributes.weight_grams,
        )
        for line in cart.lines
    ]


def destination_of(delivery: Delivery) -> Destination | None:
    """The chosen destination, None until a country is chosen (stored ones were validated)."""
    if delivery.country is None:
        return None
    return Destination(delivery.country, delivery.region)


def quote(cart: ShoppingCart, rules: Rules, *, now: datetime) -> CartQuote:
    """Price the cart with the rules: what GET /cart shows and checkout charges."""
    lines = priced_lines(cart)
    discounts = apply(
        lines,
        rules.promotions,
        cart.coupons,
        buyer_id=cart.buyer_id,
        now=now,
        usage=rules.usage,
        currency=cart.currency,
    )
    taxable = taxable_lines(lines, discounts)
    goods = sum((line.amount for line in taxable), ZERO)
    blockers: list[Violation] = []
    destination = destination_of(cart.delivery)
    options, unavailable, chosen = _shipping(cart, lines, goods, rules, destination, blockers)
    shipping = ZERO if chosen is None else chosen.price
    breakdown = _tax(taxable, shipping, destination, rules, blockers)
    tax = ZERO if breakdown is None else breakdown.total
    include = rules.prices_include_tax
    totals = assemble(lines, discounts, shipping, tax, include, cart.currency)
    coupons = _coupons(cart.coupons, discounts)
    blockers += _idle_codes(coupons)
    return CartQuote(
        totals=totals,
        discounts=discounts,
        coupons=coupons,
        delivery=DeliveryQuote(
            destination,
            tuple(options),
            tuple(unavailable),
            chosen,
            ZERO if breakdown is None else breakdown.shipping.tax,
        ),
        lines=_charges(lines, discounts, breakdown, include),
        blockers=tuple(blockers),
        priced_at=now,
        valid_until=next_moment(rules.promotions, now),
    )


def _shipping(
    cart: ShoppingCart,
    lines: Sequence[PricedLine],
    goods: Decimal,
    rules: Rules,
    destination: Destination | None,
    blockers: list[Violation],
) -> tuple[list[ShippingQuote], list[Unavailable], ShippingQuote | None]:
    """The shipping options at the destination and the chosen one; records what is missing."""
    if not rules.methods or not lines:
        return [], [], None
    if destination is None:
        blockers.append(Violation("delivery.country", "choose where the order is shipped"))
        return [], [], None
    options, unavailable = survey(rules.methods, lines, destination, goods)
    method_id = cart.delivery.method_id
    if method_id is None:
        blockers.append(Violation("delivery.shipping_method", "choose a shipping method"))
        return options, unavailable, None
    try:
        return options, unavailable, choose(options, method_id, unavailable)
    except ShippingUnavailableError as refused:
        reason = f"shipping method {method_id!r} cannot carry this cart: {refused.reason}"
        blockers.append(Violation("delivery.shipping_method", reason))
        return options, unavailable, None


def _tax(
    taxable: Sequence[TaxableLine],
    shipping: Decimal,
    destination: Destination | None,
    rules: Rules,
    blockers: list[Violation],
) -> TaxBreakdown | None:
    """The tax at the destination; None when the shop charges none or it is not known yet."""
    if not rules.rates.countries and not rules.rates.regions:
        return None
    if destination is None:
        if not any(b.field == "delivery.country" for b in blockers):
            blockers.append(Violation("delivery.country", "choose where the order is shipped"))
        return None
    try:
        return tax_for(taxable, shipping, destination, rules.rates, rules.prices_include_tax)
    except UnknownTaxDestinationError:
        where = destination.region or destination.country
        blockers.append(Violation("delivery.country", f"the shop does not deliver to {where}"))
        return None


def _coupons(codes: Sequence[str], discounts: Discounts) -> tuple[CouponState, ...]:
    applied = {a.code: a for a in discounts.applied if a.code is not None}
    refused = {r.code: r.reason for r in discounts.refused}
    states = []
    for code in codes:
        hit = applied.get(code)
        if hit is not None:
            states.append(CouponState(code, hit.promotion_id, hit.amount, None))
        else:
            states.append(CouponState(code, None, None, refused.get(code, "not applied")))
    return tuple(states)


def next_moment(promotions: Sequence[Promotion], now: datetime) -> datetime | None:
    """The first validity bound of any promotion after `now`, when one of them starts or ends."""
    ahead = [
        moment
        for p in promotions
        for moment in (p.valid_from, p.valid_until)
        if moment is not None and moment > now
    ]
    return min(ahead, default=None)


def _idle_codes(coupons: Sequence[CouponState]) -> list[Violation]:
    """Entered codes that do not apply block checkout: the buyer asked for a discount they would
    not get, so they remove the code (or change the cart) knowingly instead of being surprised."""
    return [
        Violation(f"coupons.{i}", f"{state.code}: {state.reason}")
        for i, state in enumerate(coupons)
        if not state.applied
    ]


def _charges(
    lines: Sequence[PricedLine],
    discounts: Discounts,
    breakdown: TaxBreakdown | None,
    prices_include_tax: bool,
) -> tuple[LineCharge, ...]:
    amounts = line_amounts(lines)
    off = discount_per_line(discounts, amounts)
    taxes = {} if breakdown is None else {t.line_id: t.tax for t in breakdown.lines}
    charges = []
    for line in lines:
        amount, discount = amounts[line.line_id], off[line.line_id]
        tax = taxes.get(line.line_id, ZERO)
        added = ZERO if prices_include_tax else tax
        charges.append(
            LineCharge(line.sku, amount, discount, tax, to_cents(amount - discount + added))
        )
    return tuple(charges)
