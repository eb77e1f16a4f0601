"""Invariants of the promotion engine over generated carts, catalogues and codes (Hypothesis)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.cart.pricing_lines import PricedLine
from services.cart.promotions import (
    DiscountKind,
    Discounts,
    Promotion,
    Selection,
    Stacking,
    Usage,
    apply,
    normalize_code,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
LABELS = ("x", "y", "z")
CODES = ("ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT")


@st.composite
def carts(draw: st.DrawFn) -> tuple[PricedLine, ...]:
    count = draw(st.integers(1, 6))
    return tuple(
        PricedLine(
            line_id=f"l{i}",
            sku=draw(st.sampled_from(LABELS)),
            quantity=draw(st.integers(1, 5)),
            unit_price=Decimal(draw(st.integers(0, 20_000))).scaleb(-2),
            category=draw(st.none() | st.sampled_from(LABELS)),
            brand=draw(st.none() | st.sampled_from(LABELS)),
            weight_grams=0,
        )
        for i in range(count)
    )


selections = st.builds(
    Selection,
    skus=st.frozensets(st.sampled_from(LABELS), max_size=2),
    categories=st.frozensets(st.sampled_from(LABELS), max_size=2),
    brands=st.frozensets(st.sampled_from(LABELS), max_size=2),
)
percentages = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2)
fixed_amounts = st.integers(1, 50_000).map(lambda cents: Decimal(cents).scaleb(-2))


@st.composite
def catalogues(draw: st.DrawFn) -> tuple[Promotion, ...]:
    count = draw(st.integers(0, len(CODES)))
    promotions = []
    for i in range(count):
        kind = draw(st.sampled_from(DiscountKind))
        value = draw(percentages if kind is DiscountKind.PERCENTAGE else fixed_amounts)
        promotions.append(
            Promotion(
                promotion_id=f"p{i}",
                code=draw(st.none() | st.just(CODES[i].lower())),
                kind=kind,
                value=value,
                stacking=draw(st.sampled_from(Stacking)),
                target=draw(st.none() | selections),
                exclusions=draw(selections),
                min_spend=Decimal(draw(st.sampled_from((0, 50, 500)))),
                currency=draw(st.sampled_from(("EUR", "USD"))),
                priority=draw(st.integers(0, 2)),
            )
        )
    return tuple(promotions)


@dataclass(frozen=True)
class Scenario:
    """A generated cart, catalogue and entered codes."""

    lines: tuple[PricedLine, ...]
    promotions: tuple[Promotion, ...]
    codes: tuple[str, ...]

    def run(self, codes: tuple[str, ...] | None = None) -> Discounts:
        entered = self.codes if codes is None else codes
        return apply(
            self.lines,
            self.promotions,
            entered,
            buyer_id="b",
            now=NOW,
            usage=Usage(),
            currency="EUR",
        )


scenarios = st.builds(
    Scenario,
    lines=carts(),
    promotions=catalogues(),
    codes=st.lists(st.sampled_from((*CODES, "UNKNOWN", " alpha ")), max_size=5).map(tuple),
)


def eligible_subtotal(scenario: Scenario, promotion_id: str) -> Decimal:
    (promotion,) = (p for p in scenario.promotions if p.promotion_id == promotion_id)
    return sum((x.amount for x in scenario.lines if promotion.selects(x)), Decimal(0))


@given(scenarios)
def test_each_discount_positive_split_exactly_and_within_what_it_discounts(
    scenario: Scenario,
) -> None:
    for applied in scenario.run().applied:
        assert applied.amount > 0
        assert sum(applied.per_line.values(), Decimal(0)) == applied.amount
        assert applied.amount <= eligible_subtotal(scenario, applied.promotion_id)
        assert all(share > 0 for share in applied.per_line.values())


@given(scenarios)
def test_shares_only_on_eligible_lines(scenario: Scenario) -> None:
    by_id = {p.promotion_id: p for p in scenario.promotions}
    lines = {x.line_id: x for x in scenario.lines}
    for applied in scenario.run().applied:
        assert all(by_id[applied.promotion_id].selects(lines[key]) for key in applied.per_line)


@given(scenarios)
def test_no_line_goes_below_zero_and_total_within_subtotal(scenario: Scenario) -> None:
    discounts = scenario.run()

    for x in scenario.lines:
        assert discounts.for_line(x.line_id) <= x.amount
    assert discounts.total <= sum((x.amount for x in scenario.lines), Decimal(0))


@given(scenarios, st.randoms(use_true_random=False))
def test_result_does_not_depend_on_code_order_or_repetition(
    scenario: Scenario, rnd: random.Random
) -> None:
    shuffled = list(scenario.codes) * 2
    rnd.shuffle(shuffled)

    assert scenario.run(tuple(shuffled)) == scenario.run()


@given(scenarios)
def test_every_entered_code_is_either_applied_or_refused_once(scenario: Scenario) -> None:
    discounts = scenario.run()

    entered = {normalize_code(c) for c in scenario.codes}
    applied = {a.code for a in discounts.applied if a.code is not None}
    refused = [r.code for r in discounts.refused]
    assert len(refused) == len(set(refused))
    assert applied.isdisjoint(refused)
    assert applied | set(refused) == entered


@given(scenarios)
def test_refusal_reasons_never_name_a_code(scenario: Scenario) -> None:
    for refused in scenario.run().refused:
        assert not any(code in refused.reason.upper() for code in CODES)


@given(carts(), fixed_amounts)
def test_single_split_stays_within_a_cent_of_the_exact_share(
    lines: tuple[PricedLine, ...], value: Decimal
) -> None:
    promotion = Promotion("p", None, DiscountKind.FIXED, value, Stacking.STACKABLE, currency="EUR")
    subtotal = sum((x.amount for x in lines), Decimal(0))

    discounts = apply(
        lines, (promotion,), (), buyer_id=None, now=NOW, usage=Usage(), currency="EUR"
    )

    for applied in discounts.applied:
        for x in lines:
            exact = applied.amount * x.amount / subtotal
            assert abs(applied.per_line.get(x.line_id, Decimal(0)) - exact) < Decimal("0.01")
