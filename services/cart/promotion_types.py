"""Promotions, pure: what a promotion is, the usage counts it is checked against, and what applies.

The types of the promotion engine (services/cart/promotions.py applies them). Imports no I/O
library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.cart.pricing_lines import PricedLine, to_cents


class DiscountKind(StrEnum):
    """How a promotion's value reads: a percentage of what it discounts, or a fixed amount."""

    PERCENTAGE = "percentage"
    FIXED = "fixed"


class Stacking(StrEnum):
    """How a promotion combines with others (the exact rules are in the module docstring)."""

    EXCLUSIVE = "exclusive"
    STACKABLE = "stackable"
    BEST_OF = "best_of"


class Reason(StrEnum):
    """Why an entered code does not apply, in words for the shopper; none names another code."""

    UNKNOWN = "This code is not valid."
    WRONG_CURRENCY = "This code is only valid for carts in {currency}."
    NOT_YET_VALID = "This code is not valid yet."
    EXPIRED = "This code has expired."
    EXHAUSTED = "This code has been fully used."
    EXHAUSTED_FOR_BUYER = "You have already used this code as many times as it allows."
    SIGN_IN = "Sign in to use this code."
    NOTHING_ELIGIBLE = "No item in your cart qualifies for this code."
    BELOW_MIN_SPEND = "Spend at least {amount} {currency} on qualifying items to use this code."
    NO_DISCOUNT = "This code takes nothing off your cart."
    BETTER_APPLIES = "This code cannot be combined with a better discount already applied."


def normalize_code(code: str) -> str:
    """A code as it is compared: trimmed and upper-cased."""
    return code.strip().upper()


def mask(code: str) -> str:
    """A code as logs may show it: at most its first two characters, and never its length."""
    shown = normalize_code(code)
    # A short code would be mostly revealed by two characters, so it shows none.
    return (shown[:2] if len(shown) >= 6 else "") + "****"


@dataclass(frozen=True, slots=True)
class Selection:
    """Lines named by sku, category or brand; a line matches when any of them names it."""

    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()

    def matches(self, line: PricedLine) -> bool:
        """Whether this selection names the line."""
        return (
            line.sku in self.skus
            or (line.category is not None and line.category in self.categories)
            or (line.brand is not None and line.brand in self.brands)
        )


@dataclass(frozen=True, slots=True)
class Promotion:
    """A discount rule; `code` None means automatic, `target` None means the whole cart."""

    promotion_id: str
    code: str | None = field(repr=False)
    kind: DiscountKind
    value: Decimal
    stacking: Stacking
    target: Selection | None = None
    exclusions: Selection = Selection()
    min_spend: Decimal = Decimal(0)
    currency: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    limit_total: int | None = None
    limit_per_buyer: int | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        for problem in _promotion_problems(self):
            raise ValueError(f"promotion {self.promotion_id}: {problem}")

    def selects(self, line: PricedLine) -> bool:
        """Whether the promotion discounts this line: targeted (or cart-wide) and not excluded."""
        targeted = self.target is None or self.target.matches(line)
        return targeted and not self.exclusions.matches(line)


def _promotion_problems(promotion: Promotion) -> Iterable[str]:
    """What makes a promotion unusable; a catalogue error, raised rather than guessed around."""
    if promotion.kind is DiscountKind.PERCENTAGE and not Decimal(0) < promotion.value <= 100:
        yield "a percentage must be above 0 and at most 100"
    if promotion.kind is DiscountKind.FIXED and not _is_positive_cents(promotion.value):
        yield "a fixed value must be a positive amount in whole cents"
    if promotion.min_spend != 0 and not _is_positive_cents(promotion.min_spend):
        yield "a minimum spend must be a positive amount in whole cents (or zero)"
    # Money named by the promotion only means something in one currency.
    names_money = promotion.kind is DiscountKind.FIXED or promotion.min_spend > 0
    if names_money and promotion.currency is None:
        yield "a fixed value or a minimum spend needs a currency"
    for moment in (promotion.valid_from, promotion.valid_until):
        if moment is not None and moment.tzinfo is None:
            yield "validity bounds must be timezone-aware"
    for limit in (promotion.limit_total, promotion.limit_per_buyer):
        if limit is not None and limit < 1:
            yield "a usage limit must be at least 1"


def _is_positive_cents(value: Decimal) -> bool:
    return value.is_finite() and value > 0 and value == to_cents(value)


@dataclass(frozen=True, slots=True)
class Usage:
    """Uses already consumed: per promotion overall, and per (promotion id, buyer id)."""

    total_by_promotion: Mapping[str, int] = field(default_factory=dict)
    by_buyer: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppliedPromotion:
    """A promotion that applies: its amount and that amount's exact split over line ids."""

    promotion_id: str
    code: str | None = field(repr=False)
    amount: Decimal
    per_line: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class RefusedCode:
    """An entered code that does not apply, with the reason to show the shopper."""

    code: str = field(repr=False)
    reason: str

    @property
    def masked(self) -> str:
        """The code as logs may show it."""
        return mask(self.code)


@dataclass(frozen=True, slots=True)
class Discounts:
    """What the promotions take off a cart: the applied ones in order, and the refused codes."""

    applied: tuple[AppliedPromotion, ...]
    refused: tuple[RefusedCode, ...]

    @property
    def total(self) -> Decimal:
        """All the discounts together."""
        return sum((a.amount for a in self.applied), Decimal("0.00"))

    def for_line(self, line_id: str) -> Decimal:
        """What all the applied promotions take off one line."""
        return sum((a.per_line.get(line_id, Decimal(0)) for a in self.applied), Decimal("0.00"))
