"""A cart line as the pricing rules see it, and the one rounding rule every amount goes through.

Rounding rule: money is kept in exact decimals and rounded to the cent only by `to_cents`, half
up (0.005 -> 0.01, -0.005 -> -0.01). Half up, not half even, because it is what a shopper checking
a receipt by hand expects and what tax authorities print on their examples; the bias half even
removes only matters when many half-cent values are summed, and here each promotion and each tax
amount is rounded once, then allocated exactly. Shared by promotions, tax, shipping and totals.
Pure: imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def to_cents(value: Decimal) -> Decimal:
    """Round an exact amount to the cent, half up: the only place money is rounded."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class PricedLine:
    """One cart line with what pricing needs: its unit price snapshot, what selects it, its weight."""

    line_id: str
    sku: str
    quantity: int
    unit_price: Decimal
    category: str | None
    brand: str | None
    weight_grams: int

    def __post_init__(self) -> None:
        # Refused here so no rule downstream has to guess what a negative line would mean.
        if self.quantity <= 0:
            raise ValueError(f"line {self.line_id}: quantity must be positive")
        if not self.unit_price.is_finite() or self.unit_price < 0:
            raise ValueError(f"line {self.line_id}: unit price must be a non-negative amount")
        if self.weight_grams < 0:
            raise ValueError(f"line {self.line_id}: weight must not be negative")

    @property
    def amount(self) -> Decimal:
        """The line's amount before any discount: unit price times quantity, exact."""
        return self.unit_price * self.quantity
