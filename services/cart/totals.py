"""Cart totals, pure: subtotal, discounts per promotion, shipping, tax and grand total.

The grand total is the exact sum of the displayed parts: subtotal - discounts + shipping, plus the
tax when prices are stored net (when stored gross, the tax is already inside and only shown).
Each part is a sum of amounts already in whole cents: line amounts go through `to_cents` once,
discounts arrive allocated to lines in cents, shipping prices are whole cents and tax is rounded
per line in tax.py. So this module adds and subtracts only; it never rounds a sum.
`differences` compares the totals the buyer saw with a fresh pricing: what checkout answers with
its 409 when anything changed. Imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from services.cart.pricing_lines import CENT, PricedLine, to_cents
from services.cart.promotions import AppliedPromotion, Discounts
from services.cart.shipping import Destination, ShippingQuote
from services.cart.tax import TaxableLine, TaxRates, tax_for

ZERO = Decimal("0.00")


class InconsistentDiscountsError(ValueError):
    """The discounts do not fit the cart's lines: a bug upstream, never a buyer's mistake."""


@dataclass(frozen=True, slots=True)
class DiscountLine:
    """One promotion's discount as the buyer sees it in the totals."""

    promotion_id: str
    # Kept out of the repr so a logged Totals never shows a code (logs show codes masked).
    code: str | None = field(repr=False)
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Totals:
    """What the cart costs, part by part; the grand total is their exact sum."""

    subtotal: Decimal
    discounts: tuple[DiscountLine, ...]
    discount_total: Decimal
    shipping: Decimal
    tax: Decimal
    grand_total: Decimal
    currency: str
    prices_include_tax: bool


Value = Decimal | str | bool | None
"""A compared field's value; None when a promotion is on one side only."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One field of the totals that changed between what the buyer saw and now."""

    field: str
    was: Value
    now: Value


def line_amounts(lines: Sequence[PricedLine]) -> dict[str, Decimal]:
    """Each line's amount before discounts, to the cent (unit prices may carry sub-cents)."""
    amounts: dict[str, Decimal] = {}
    for line in lines:
        if line.line_id in amounts:
            raise InconsistentDiscountsError(f"line {line.line_id} appears twice")
        amounts[line.line_id] = to_cents(line.amount)
    return amounts


def discount_per_line(discounts: Discounts, amounts: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """The discount each line carries, all promotions summed; refused when it cannot be true."""
    off: dict[str, Decimal] = dict.fromkeys(amounts, ZERO)
    for applied in discounts.applied:
        _check_allocation(applied, amounts)
        for line_id, share in applied.per_line.items():
            off[line_id] += share
    for line_id, total in off.items():
        if total > amounts[line_id]:
            raise InconsistentDiscountsError(
                f"line {line_id}: discounts of {total} exceed its amount {amounts[line_id]}"
            )
    return off


def _check_allocation(applied: AppliedPromotion, amounts: Mapping[str, Decimal]) -> None:
    # The totals add these amounts as they are, so they must already be exact cents that agree.
    where = f"promotion {applied.promotion_id}"
    shares = list(applied.per_line.values())
    if any(
        not share.is_finite() or share < 0 or share % CENT != 0
        for share in (applied.amount, *shares)
    ):
        raise InconsistentDiscountsError(f"{where}: amounts must be non-negative whole cents")
    if sum(shares, ZERO) != applied.amount:
        raise InconsistentDiscountsError(f"{where}: allocation does not sum to {applied.amount}")
    unknown = sorted(set(applied.per_line) - set(amounts))
    if unknown:
        raise InconsistentDiscountsError(f"{where}: allocated to unknown lines {unknown}")


def taxable_lines(lines: Sequence[PricedLine], discounts: Discounts) -> list[TaxableLine]:
    """Each line's amount after its discounts, in cents: what tax is computed on."""
    return _after_discounts(lines, discounts, line_amounts(lines))


def _after_discounts(
    lines: Sequence[PricedLine], discounts: Discounts, amounts: Mapping[str, Decimal]
) -> list[TaxableLine]:
    off = discount_per_line(discounts, amounts)
    return [
        TaxableLine(line.line_id, line.category, amounts[line.line_id] - off[line.line_id])
        for line in lines
    ]


def goods_value(lines: Sequence[PricedLine], discounts: Discounts) -> Decimal:
    """The goods after discounts: the order value shipping rules (minimum, free from) read."""
    return sum((line.amount for line in taxable_lines(lines, discounts)), ZERO)


def price(
    lines: Sequence[PricedLine],
    discounts: Discounts,
    shipping: ShippingQuote | None,
    destination: Destination,
    rates: TaxRates,
    prices_include_tax: bool,
    currency: str,
) -> Totals:
    """The cart's totals; shipping None prices the cart before a method is chosen (no shipping)."""
    taxable = taxable_lines(lines, discounts)
    shipping_amount = ZERO if shipping is None else shipping.price
    tax = tax_for(taxable, shipping_amount, destination, rates, prices_include_tax).total
    return assemble(lines, discounts, shipping_amount, tax, prices_include_tax, currency)


def assemble(
    lines: Sequence[PricedLine],
    discounts: Discounts,
    shipping: Decimal,
    tax: Decimal,
    prices_include_tax: bool,
    currency: str,
) -> Totals:
    """The totals of parts already computed (a cart whose tax is not known yet passes zero)."""
    subtotal = sum(line_amounts(lines).values(), ZERO)
    shown = tuple(DiscountLine(a.promotion_id, a.code, a.amount) for a in discounts.applied)
    discount_total = sum((d.amount for d in shown), ZERO)
    added_tax = ZERO if prices_include_tax else tax
    grand_total = subtotal - discount_total + shipping + added_tax
    return Totals(
        subtotal,
        shown,
        discount_total,
        shipping,
        tax,
        grand_total,
        currency,
        prices_include_tax,
    )


_HEAD = ("currency", "prices_include_tax", "subtotal")
_TAIL = ("discount_total", "shipping", "tax", "grand_total")


def differences(before: Totals, after: Totals) -> list[Difference]:
    """What changed since the buyer saw the totals, in display order (empty: nothing changed)."""
    return [
        *_field_differences(before, after, _HEAD),
        *_discount_differences(before.discounts, after.discounts),
        *_field_differences(before, after, _TAIL),
    ]


def _field_differences(before: Totals, after: Totals, names: Sequence[str]) -> list[Difference]:
    pairs = ((name, getattr(before, name), getattr(after, name)) for name in names)
    return [Difference(name, was, now) for name, was, now in pairs if was != now]


def _discount_differences(
    before: Sequence[DiscountLine], after: Sequence[DiscountLine]
) -> list[Difference]:
    # Keyed by promotion id: a promotion that appeared or went away shows None on the other side.
    was = {d.promotion_id: d.amount for d in before}
    now = {d.promotion_id: d.amount for d in after}
    return [
        Difference(f"discount:{promotion_id}", was.get(promotion_id), now.get(promotion_id))
        for promotion_id in sorted(was.keys() | now.keys())
        if was.get(promotion_id) != now.get(promotion_id)
    ]
