"""Promotion engine, pure: which promotions and codes apply to a cart, and what each takes off each line.

Rules, in the order `apply` follows them:
- Automatic promotions (no code) are always candidates; a coded one is a candidate when the
  shopper entered its code (trimmed, case-insensitive; entering it twice counts once).
- A candidate is dropped, and its code refused with a reason a shopper can read, when: its
  currency is not the cart's, it is outside its half-open window [valid_from, valid_until), its
  uses are exhausted (overall, or by this buyer; a guest cannot use a per-buyer limited code),
  no line is eligible (selected by its target and not excluded), the eligible subtotal is below
  its minimum spend (reaching it exactly is enough), or it would take off nothing.
- Stacking, decided on amounts, never on the order codes were entered: the best-of promotions
  compete on the amount each takes alone and only the largest joins the stackable ones; that
  combination is applied in order of priority (highest first, then id), each promotion on what
  the previous ones left. Each exclusive promotion is an alternative that applies alone. The
  alternative that takes off most wins; on a tie the combination wins, then the exclusive with the
  highest priority, then the lowest id. Every code left out is refused.
- Amounts: a percentage is taken of what is left of the eligible lines and rounded to the cent by
  `to_cents` (half up, the one rounding rule, see pricing_lines); a fixed amount is capped at
  what is left. The amount is then split over the eligible lines in proportion to what is left of
  each by the largest remainder method in whole cents (ties to the lowest line id): the shares
  sum exactly to the amount and no line goes below zero. That split is exact, not a rounding.
Line prices must be whole cents. Codes appear in reprs and logs only masked (`mask`).
Imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.cart.pricing_lines import PricedLine, to_cents
from services.cart.promotion_types import (
    AppliedPromotion,
    DiscountKind,
    Discounts,
    Promotion,
    Reason,
    RefusedCode,
    Selection,
    Stacking,
    Usage,
    mask,
    normalize_code,
)

__all__ = [
    "AppliedPromotion",
    "DiscountKind",
    "Discounts",
    "Promotion",
    "Reason",
    "RefusedCode",
    "Selection",
    "Stacking",
    "Usage",
    "apply",
    "mask",
    "normalize_code",
]


@dataclass(frozen=True, slots=True)
class _Context:
    """What a candidate is checked against besides the lines."""

    currency: str
    buyer_id: str | None
    now: datetime
    usage: Usage


def apply(
    lines: Sequence[PricedLine],
    promotions: Sequence[Promotion],
    codes: Iterable[str],
    *,
    buyer_id: str | None,
    now: datetime,
    usage: Usage,
    currency: str,
) -> Discounts:
    """The discounts a cart gets from its automatic promotions and the codes entered."""
    _check_inputs(lines, now)
    context = _Context(currency, buyer_id, now, usage)
    catalogue = _by_code(promotions)
    entered = sorted({normalize_code(c) for c in codes} - {""})
    refused = {c: str(Reason.UNKNOWN) for c in entered if c not in catalogue}
    candidates = [p for p in promotions if p.code is None]
    candidates += [catalogue[c] for c in entered if c in catalogue]
    offers: list[Promotion] = []
    for promotion in candidates:
        reason = _refusal(promotion, lines, context)
        if reason is None:
            offers.append(promotion)
        elif promotion.code is not None:
            refused[normalize_code(promotion.code)] = reason
    applied = _best_alternative(lines, offers)
    won = {a.promotion_id for a in applied}
    for promotion in offers:
        if promotion.code is not None and promotion.promotion_id not in won:
            refused[normalize_code(promotion.code)] = str(Reason.BETTER_APPLIES)
    return Discounts(
        applied=tuple(applied),
        refused=tuple(RefusedCode(c, refused[c]) for c in sorted(refused)),
    )


def _check_inputs(lines: Sequence[PricedLine], now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if len({line.line_id for line in lines}) != len(lines):
        raise ValueError("line ids must be unique")
    for line in lines:
        if line.unit_price != to_cents(line.unit_price):
            raise ValueError(f"line {line.line_id}: unit price must be in whole cents")


def _by_code(promotions: Sequence[Promotion]) -> dict[str, Promotion]:
    """The coded promotions by normalized code; ids and codes must each be unique."""
    if len({p.promotion_id for p in promotions}) != len(promotions):
        raise ValueError("promotion ids must be unique")
    catalogue: dict[str, Promotion] = {}
    for promotion in promotions:
        if promotion.code is None:
            continue
        code = normalize_code(promotion.code)
        if not code or code in catalogue:
            raise ValueError(f"promotion {promotion.promotion_id}: code empty or already used")
        catalogue[code] = promotion
    return catalogue


def _refusal(promotion: Promotion, lines: Sequence[PricedLine], context: _Context) -> str | None:
    """Why the promotion cannot apply to this cart on its own, or None when it can."""
    if promotion.currency is not None and promotion.currency != context.currency:
        return Reason.WRONG_CURRENCY.format(currency=promotion.currency)
    if promotion.valid_from is not None and context.now < promotion.valid_from:
        return str(Reason.NOT_YET_VALID)
    if promotion.valid_until is not None and context.now >= promotion.valid_until:
        return str(Reason.EXPIRED)
    limit_reason = _limit_refusal(promotion, context)
    if limit_reason is not None:
        return limit_reason
    eligible = [line for line in lines if promotion.selects(line)]
    if not eligible:
        return str(Reason.NOTHING_ELIGIBLE)
    if sum((line.amount for line in eligible), Decimal(0)) < promotion.min_spend:
        return Reason.BELOW_MIN_SPEND.format(
            amount=to_cents(promotion.min_spend), currency=context.currency
        )
    if not _run(lines, [promotion]):
        return str(Reason.NO_DISCOUNT)
    return None


def _limit_refusal(promotion: Promotion, context: _Context) -> str | None:
    used = context.usage.total_by_promotion.get(promotion.promotion_id, 0)
    if promotion.limit_total is not None and used >= promotion.limit_total:
        return str(Reason.EXHAUSTED)
    if promotion.limit_per_buyer is None:
        return None
    # A guest has no history to count against, so a per-buyer limit needs a known buyer.
    if context.buyer_id is None:
        return str(Reason.SIGN_IN)
    by_buyer = context.usage.by_buyer.get((promotion.promotion_id, context.buyer_id), 0)
    return str(Reason.EXHAUSTED_FOR_BUYER) if by_buyer >= promotion.limit_per_buyer else None


def _stack_order(promotion: Promotion) -> tuple[int, str]:
    return (-promotion.priority, promotion.promotion_id)


def _best_alternative(
    lines: Sequence[PricedLine], offers: Sequence[Promotion]
) -> list[AppliedPromotion]:
    """The combination or the single exclusive promotion that takes off most (ties as documented)."""
    alone = {p.promotion_id: _total(_run(lines, [p])) for p in offers}
    best_of = sorted(
        (p for p in offers if p.stacking is Stacking.BEST_OF),
        key=lambda p: (-alone[p.promotion_id], *_stack_order(p)),
    )
    stackable = [p for p in offers if p.stacking is Stacking.STACKABLE]
    exclusive = sorted((p for p in offers if p.stacking is Stacking.EXCLUSIVE), key=_stack_order)
    alternatives = [sorted(stackable + best_of[:1], key=_stack_order)]
    alternatives += [[p] for p in exclusive]
    best: list[AppliedPromotion] = []
    for alternative in alternatives:
        applied = _run(lines, alternative)
        # Strictly more: on a tie the earlier alternative (combination first) keeps its place.
        if _total(applied) > _total(best):
            best = applied
    return best


def _total(applied: Sequence[AppliedPromotion]) -> Decimal:
    return sum((a.amount for a in applied), Decimal(0))


def _run(lines: Sequence[PricedLine], sequence: Sequence[Promotion]) -> list[AppliedPromotion]:
    """Apply promotions one after the other, each on what the previous ones left of each line."""
    left = {line.line_id: _cents(line.amount) for line in lines}
    applied: list[AppliedPromotion] = []
    for promotion in sequence:
        eligible = sorted(line.line_id for line in lines if promotion.selects(line))
        base = sum(left[line_id] for line_id in eligible)
        amount = min(_amount_cents(promotion, base), base)
        if amount == 0:
            continue
        shares = _split(amount, {line_id: left[line_id] for line_id in eligible})
        for line_id, share in shares.items():
            left[line_id] -= share
        code = None if promotion.code is None else normalize_code(promotion.code)
        per_line = {k: _money(v) for k, v in shares.items() if v}
        applied.append(AppliedPromotion(promotion.promotion_id, code, _money(amount), per_line))
    return applied


def _amount_cents(promotion: Promotion, base_cents: int) -> int:
    """What the promotion takes off `base_cents` before capping, in whole cents."""
    if promotion.kind is DiscountKind.FIXED:
        return _cents(promotion.value)
    return _cents(to_cents(_money(base_cents) * promotion.value / 100))


def _split(amount: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Largest remainder: `amount` cents over keys in proportion to weights, summing exactly."""
    total = sum(weights.values())
    shares = {key: amount * weight // total for key, weight in weights.items()}
    remainders = {key: amount * weight % total for key, weight in weights.items()}
    missing = amount - sum(shares.values())
    # Each remainder is under one cent's worth, so `missing` cents go to as many distinct keys.
    for key in sorted(weights, key=lambda k: (-remainders[k], k))[:missing]:
        shares[key] += 1
    return shares


def _cents(amount: Decimal) -> int:
    """Whole cents of an amount already in cents (callers guarantee it; never rounds)."""
    return int(amount.scaleb(2))


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)
