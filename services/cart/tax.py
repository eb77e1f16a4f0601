"""Tax, pure: the rate each line and the shipping bear at a destination, and the tax they carry.

Rates: a table per country (ISO 3166-1 alpha-2) with a standard rate and optional reduced rates by
product category; a region (ISO 3166-2, "US-CA") may have its own table, which replaces the
country's whole (no merging, so what a region charges is read in one place). A destination with
no table is refused (`UnknownTaxDestinationError`): charging a guessed rate would be wrong tax,
and a shop ships only where it has set one. Shipping bears the destination's standard rate (a
simplification: some countries let shipping follow the goods' rates pro rata).
Shop setting `prices_include_tax`: when prices are stored gross, each line's tax is extracted,
amount - amount / (1 + rate); when stored net, it is added, amount * rate.
Rounding: per line, with `to_cents` (half up, to the cent) and nowhere else. Per line rather than
per total because each line's tax is then a displayable, refundable amount and the tax shown is
exactly the sum of the lines' taxes, so the grand total is the sum of its displayed parts; the
price is at most half a cent per line away from the exact total tax.
Imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from services.cart.pricing_lines import CENT, to_cents
from services.cart.shipping import Destination

SHIPPING_LINE = "shipping"
"""The line id the shipping's tax is reported under."""

_MAX_RATE_PLACES = 6
"""Rates have at most six decimals (8.875 % is 0.08875); see `_extracted` for why it matters."""


class UnknownTaxDestinationError(Exception):
    """The shop has no tax rates for this destination."""

    def __init__(self, destination: Destination) -> None:
        where = destination.region or destination.country
        super().__init__(f"no tax rates for {where}: the shop must set them before shipping there")
        self.destination = destination


def _check_rate(rate: Decimal) -> None:
    if not rate.is_finite() or not 0 <= rate <= 1:
        raise ValueError(f"tax rate {rate} is not a fraction between 0 and 1")
    if rate % Decimal(1).scaleb(-_MAX_RATE_PLACES) != 0:
        raise ValueError(f"tax rate {rate} has more than {_MAX_RATE_PLACES} decimals")


@dataclass(frozen=True, slots=True)
class RateTable:
    """One jurisdiction's rates: a standard rate and reduced rates by product category."""

    standard: Decimal
    by_category: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_rate(self.standard)
        for rate in self.by_category.values():
            _check_rate(rate)

    def rate_for(self, category: str | None) -> Decimal:
        """The category's reduced rate if it has one, else the standard rate."""
        if category is None:
            return self.standard
        return self.by_category.get(category, self.standard)


@dataclass(frozen=True, slots=True)
class TaxRates:
    """The shop's rate tables: one per country, and the regions that replace their country's."""

    countries: Mapping[str, RateTable]
    regions: Mapping[str, RateTable] = field(default_factory=dict)

    def table_for(self, destination: Destination) -> RateTable:
        """The region's table when it has one, else the country's; refused when neither exists."""
        if destination.region is not None and destination.region in self.regions:
            return self.regions[destination.region]
        table = self.countries.get(destination.country)
        if table is None:
            raise UnknownTaxDestinationError(destination)
        return table


@dataclass(frozen=True, slots=True)
class TaxableLine:
    """A line's amount after its discounts, as the shop stores prices (net or gross)."""

    line_id: str
    category: str | None
    amount: Decimal


@dataclass(frozen=True, slots=True)
class LineTax:
    """The tax one line (or the shipping) carries, at the rate it bears."""

    line_id: str
    rate: Decimal
    amount: Decimal
    tax: Decimal


@dataclass(frozen=True, slots=True)
class TaxBreakdown:
    """Tax per line and on shipping; the total is their exact sum."""

    lines: tuple[LineTax, ...]
    shipping: LineTax

    @property
    def total(self) -> Decimal:
        """All the tax: the sum of the rounded per-line amounts, so it needs no rounding."""
        return sum((line.tax for line in (*self.lines, self.shipping)), Decimal("0.00"))

    def by_rate(self) -> tuple[tuple[Decimal, Decimal], ...]:
        """Tax summed per rate, lowest rate first (what an invoice prints)."""
        sums: dict[Decimal, Decimal] = {}
        for line in (*self.lines, self.shipping):
            sums[line.rate] = sums.get(line.rate, Decimal("0.00")) + line.tax
        return tuple(sorted(sums.items()))


def _extracted(amount: Decimal, rate: Decimal) -> Decimal:
    # One division, carried at the context's 28 digits. Amounts in cents and rates of at most
    # six decimals make the exact quotient a fraction whose denominator is below 2 * 10**8, so
    # it is either on a half cent or more than 10**-11 away from one; for any amount under
    # 10**15 the 28-digit quotient is far closer than that, so it rounds as the exact one would.
    return amount * rate / (1 + rate)


def line_tax(line_id: str, amount: Decimal, rate: Decimal, prices_include_tax: bool) -> LineTax:
    """The tax in (gross) or on (net) one amount at one rate, rounded to the cent."""
    # Whole cents only: every taxable amount is one the buyer sees, and `_extracted` relies on it.
    if not amount.is_finite() or amount < 0 or amount % CENT != 0:
        raise ValueError(
            f"line {line_id}: taxable amount {amount} is not a non-negative cent amount"
        )
    exact = _extracted(amount, rate) if prices_include_tax else amount * rate
    return LineTax(line_id, rate, amount, to_cents(exact))


def tax_for(
    lines_after_discounts: Sequence[TaxableLine],
    shipping: Decimal,
    destination: Destination,
    rates: TaxRates,
    prices_include_tax: bool,
) -> TaxBreakdown:
    """Each line's tax at its category's rate, and the shipping's at the standard rate."""
    table = rates.table_for(destination)
    per_line = tuple(
        line_tax(line.line_id, line.amount, table.rate_for(line.category), prices_include_tax)
        for line in lines_after_discounts
    )
    on_shipping = line_tax(SHIPPING_LINE, shipping, table.standard, prices_include_tax)
    return TaxBreakdown(per_line, on_shipping)
