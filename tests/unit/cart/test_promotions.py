"""The promotion engine's rules as tables: kinds, targets, exclusions, limits, windows, stacking, rounding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.cart.pricing_lines import PricedLine, to_cents
from services.cart.promotions import (
    DiscountKind,
    Promotion,
    Reason,
    Selection,
    Stacking,
    Usage,
    apply,
    mask,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def line(line_id: str, price: str, quantity: int = 1, **labels: str) -> PricedLine:
    """A line whose sku defaults to `sku-<id>`; category and brand only when named."""
    return PricedLine(
        line_id=line_id,
        sku=labels.get("sku", f"sku-{line_id}"),
        quantity=quantity,
        unit_price=Decimal(price),
        category=labels.get("category"),
        brand=labels.get("brand"),
        weight_grams=100,
    )


def pct(promotion_id: str, value: str, code: str | None = None, **rest: Any) -> Promotion:
    rest.setdefault("stacking", Stacking.STACKABLE)
    return Promotion(promotion_id, code, DiscountKind.PERCENTAGE, Decimal(value), **rest)


def fixed(promotion_id: str, value: str, code: str | None = None, **rest: Any) -> Promotion:
    rest.setdefault("stacking", Stacking.STACKABLE)
    rest.setdefault("currency", "EUR")
    return Promotion(promotion_id, code, DiscountKind.FIXED, Decimal(value), **rest)


@dataclass(frozen=True)
class Case:
    """One cart, its promotions and codes, and what must apply (id -> amount) and be refused."""

    lines: tuple[PricedLine, ...]
    promotions: tuple[Promotion, ...]
    applied: Mapping[str, str]
    refused: Mapping[str, str] = field(default_factory=dict)
    codes: tuple[str, ...] = ()
    buyer_id: str | None = "buyer-1"
    now: datetime = NOW
    usage: Usage = field(default_factory=Usage)


def run(case: Case) -> Any:
    return apply(
        case.lines,
        case.promotions,
        case.codes,
        buyer_id=case.buyer_id,
        now=case.now,
        usage=case.usage,
        currency="EUR",
    )


TWO = (line("a", "20.00"), line("b", "30.00"))
HUNDRED = (line("a", "100.00"),)
SHOP = (
    line("a", "40.00", category="shoes", brand="acme"),
    line("b", "25.00", category="shoes", brand="zeta"),
    line("c", "15.00", sku="sock-1", category="socks", brand="acme"),
)
WINDOW: dict[str, Any] = {"valid_from": NOW, "valid_until": NOW + timedelta(days=1)}

KINDS_AND_TARGETS = [
    pytest.param(Case(TWO, (pct("p", "10"),), {"p": "5.00"}), id="percentage-on-cart"),
    pytest.param(
        Case(TWO, (fixed("p", "7.50", "SAVE"),), {"p": "7.50"}, codes=("SAVE",)), id="fixed-on-cart"
    ),
    pytest.param(
        Case(TWO, (fixed("p", "80.00", "BIG"),), {"p": "50.00"}, codes=("BIG",)),
        id="fixed-capped-at-what-it-discounts",
    ),
    pytest.param(
        Case(SHOP, (pct("p", "50", target=Selection(skus=frozenset({"sock-1"}))),), {"p": "7.50"}),
        id="lines-by-sku",
    ),
    pytest.param(
        Case(
            SHOP,
            (pct("p", "10", target=Selection(categories=frozenset({"shoes"}))),),
            {"p": "6.50"},
        ),
        id="lines-by-category",
    ),
    pytest.param(
        Case(SHOP, (pct("p", "10", target=Selection(brands=frozenset({"acme"}))),), {"p": "5.50"}),
        id="lines-by-brand",
    ),
    pytest.param(
        Case(
            SHOP,
            (fixed("p", "100.00", target=Selection(brands=frozenset({"zeta"}))),),
            {"p": "25.00"},
        ),
        id="fixed-on-lines-capped-at-those-lines",
    ),
    pytest.param(
        Case(
            SHOP, (pct("p", "10", exclusions=Selection(brands=frozenset({"acme"}))),), {"p": "2.50"}
        ),
        id="cart-wide-with-brand-excluded",
    ),
    pytest.param(
        Case(
            SHOP,
            (
                pct(
                    "p",
                    "10",
                    target=Selection(categories=frozenset({"shoes"})),
                    exclusions=Selection(skus=frozenset({"sku-a"})),
                ),
            ),
            {"p": "2.50"},
        ),
        id="exclusion-wins-over-target",
    ),
    pytest.param(
        Case(
            SHOP,
            (
                pct(
                    "p", "10", "ALL", exclusions=Selection(categories=frozenset({"shoes", "socks"}))
                ),
            ),
            {},
            {"ALL": Reason.NOTHING_ELIGIBLE},
            codes=("ALL",),
        ),
        id="everything-excluded-refused",
    ),
    pytest.param(
        Case(
            SHOP,
            (pct("p", "10", "HATS", target=Selection(categories=frozenset({"hats"}))),),
            {},
            {"HATS": Reason.NOTHING_ELIGIBLE},
            codes=("HATS",),
        ),
        id="target-matches-nothing-refused",
    ),
    pytest.param(
        Case(
            (line("a", "0.00"),),
            (pct("p", "10", "FREE"),),
            {},
            {"FREE": Reason.NO_DISCOUNT},
            codes=("FREE",),
        ),
        id="nothing-to-take-off-refused",
    ),
]

SHOES = Selection(categories=frozenset({"shoes"}))
MIN_SPEND_AND_WINDOW = [
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "MIN", min_spend=Decimal("50.00"), currency="EUR"),),
            {"p": "5.00"},
            codes=("MIN",),
        ),
        id="min-spend-reached-exactly",
    ),
    pytest.param(
        Case(
            (line("a", "20.00"), line("b", "29.99")),
            (pct("p", "10", "MIN", min_spend=Decimal("50"), currency="EUR"),),
            {},
            {"MIN": "Spend at least 50.00 EUR on qualifying items to use this code."},
            codes=("MIN",),
        ),
        id="min-spend-one-cent-below",
    ),
    pytest.param(
        Case(
            SHOP,
            (pct("p", "10", "MIN", target=SHOES, min_spend=Decimal("70.00"), currency="EUR"),),
            {},
            {"MIN": "Spend at least 70.00 EUR on qualifying items to use this code."},
            codes=("MIN",),
        ),
        id="min-spend-counts-eligible-lines-only",
    ),
    pytest.param(Case(TWO, (pct("p", "10", **WINDOW),), {"p": "5.00"}), id="window-start-included"),
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "W", **WINDOW),),
            {},
            {"W": Reason.NOT_YET_VALID},
            codes=("W",),
            now=NOW - TICK,
        ),
        id="window-one-tick-before-start",
    ),
    pytest.param(
        Case(TWO, (pct("p", "10", **WINDOW),), {"p": "5.00"}, now=NOW + timedelta(days=1) - TICK),
        id="window-one-tick-before-end",
    ),
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "W", **WINDOW),),
            {},
            {"W": Reason.EXPIRED},
            codes=("W",),
            now=NOW + timedelta(days=1),
        ),
        id="window-end-excluded",
    ),
    pytest.param(
        Case(TWO, (pct("p", "10", valid_until=NOW),), {}),
        id="automatic-expired-silently-absent",
    ),
]

LIMITED: dict[str, Any] = {"limit_total": 5, "limit_per_buyer": 2}
LIMITS = [
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "L", **LIMITED),),
            {"p": "5.00"},
            codes=("L",),
            usage=Usage({"p": 4}, {("p", "buyer-1"): 1}),
        ),
        id="one-use-left-overall-and-for-buyer",
    ),
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "L", **LIMITED),),
            {},
            {"L": Reason.EXHAUSTED},
            codes=("L",),
            usage=Usage({"p": 5}),
        ),
        id="total-limit-reached",
    ),
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "L", **LIMITED),),
            {},
            {"L": Reason.EXHAUSTED_FOR_BUYER},
            codes=("L",),
            usage=Usage({"p": 2}, {("p", "buyer-1"): 2}),
        ),
        id="buyer-limit-reached",
    ),
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "L", **LIMITED),),
            {"p": "5.00"},
            codes=("L",),
            usage=Usage({"p": 2}, {("p", "buyer-2"): 2}),
        ),
        id="other-buyers-uses-do-not-count",
    ),
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "L", **LIMITED),),
            {},
            {"L": Reason.SIGN_IN},
            codes=("L",),
            buyer_id=None,
        ),
        id="guest-cannot-use-per-buyer-limited-code",
    ),
    pytest.param(
        Case(TWO, (pct("p", "10", limit_total=1),), {}, usage=Usage({"p": 1})),
        id="automatic-exhausted-silently-absent",
    ),
]

STACKING = [
    pytest.param(
        Case(HUNDRED, (pct("p1", "10"), pct("p2", "10")), {"p1": "10.00", "p2": "9.00"}),
        id="stackables-each-on-what-is-left",
    ),
    pytest.param(
        Case(
            HUNDRED, (fixed("f", "10.00"), pct("p", "50", priority=1)), {"p": "50.00", "f": "10.00"}
        ),
        id="stack-order-by-priority-highest-first",
    ),
    pytest.param(
        Case(HUNDRED, (fixed("f", "10.00"), pct("p", "50")), {"f": "10.00", "p": "45.00"}),
        id="stack-order-same-priority-by-id",
    ),
    pytest.param(
        Case(
            HUNDRED,
            (
                pct("b1", "10", "TEN", stacking=Stacking.BEST_OF),
                fixed("b2", "15.00", "FIFTEEN", stacking=Stacking.BEST_OF),
            ),
            {"b2": "15.00"},
            {"TEN": Reason.BETTER_APPLIES},
            codes=("TEN", "FIFTEEN"),
        ),
        id="best-of-only-largest-applies",
    ),
    pytest.param(
        Case(
            HUNDRED,
            (
                pct("b1", "10", stacking=Stacking.BEST_OF, priority=1),
                fixed("b2", "10.00", "TEN", stacking=Stacking.BEST_OF),
            ),
            {"b1": "10.00"},
            {"TEN": Reason.BETTER_APPLIES},
            codes=("TEN",),
        ),
        id="best-of-tie-higher-priority-wins",
    ),
    pytest.param(
        Case(
            HUNDRED,
            (pct("b", "20", stacking=Stacking.BEST_OF), fixed("s", "5.00")),
            {"b": "20.00", "s": "5.00"},
        ),
        id="best-of-winner-stacks-with-stackables",
    ),
    pytest.param(
        Case(
            HUNDRED,
            (
                pct("x", "30", "BIG", stacking=Stacking.EXCLUSIVE),
                pct("s1", "10"),
                fixed("s2", "5.00", "FIVE"),
            ),
            {"x": "30.00"},
            {"FIVE": Reason.BETTER_APPLIES},
            codes=("BIG", "FIVE"),
        ),
        id="exclusive-beats-smaller-combination-alone",
    ),
    pytest.param(
        Case(
            HUNDRED,
            (pct("x", "10", "EXCL", stacking=Stacking.EXCLUSIVE), pct("s1", "20")),
            {"s1": "20.00"},
            {"EXCL": Reason.BETTER_APPLIES},
            codes=("EXCL",),
        ),
        id="exclusive-loses-to-larger-combination",
    ),
    pytest.param(
        Case(
            HUNDRED,
            (
                fixed("x", "10.00", "EXCL", stacking=Stacking.EXCLUSIVE),
                fixed("s", "10.00", "STACK"),
            ),
            {"s": "10.00"},
            {"EXCL": Reason.BETTER_APPLIES},
            codes=("EXCL", "STACK"),
        ),
        id="exclusive-tie-with-combination-combination-wins",
    ),
    pytest.param(
        Case(
            HUNDRED,
            (
                fixed("x1", "10.00", "A10", stacking=Stacking.EXCLUSIVE),
                fixed("x2", "12.00", "B12", stacking=Stacking.EXCLUSIVE),
            ),
            {"x2": "12.00"},
            {"A10": Reason.BETTER_APPLIES},
            codes=("A10", "B12"),
        ),
        id="two-exclusives-larger-wins",
    ),
    pytest.param(
        Case(
            HUNDRED,
            (
                fixed("x1", "10.00", "A10", stacking=Stacking.EXCLUSIVE),
                fixed("x2", "10.00", "B10", stacking=Stacking.EXCLUSIVE, priority=2),
            ),
            {"x2": "10.00"},
            {"A10": Reason.BETTER_APPLIES},
            codes=("A10", "B10"),
        ),
        id="two-exclusives-tie-higher-priority-wins",
    ),
    pytest.param(
        Case(
            (line("a", "50.00"),),
            (fixed("all", "60.00", priority=1), pct("late", "10", "LATE")),
            {"all": "50.00"},
            {"LATE": Reason.BETTER_APPLIES},
            codes=("LATE",),
        ),
        id="stackable-left-nothing-by-earlier-refused",
    ),
]

ROUNDING_AND_CURRENCY = [
    pytest.param(
        Case((line("a", "0.10"),), (pct("p", "5"),), {"p": "0.01"}), id="half-cent-rounds-up"
    ),
    pytest.param(
        Case((line("a", "0.20"),), (pct("p", "12.5"),), {"p": "0.03"}),
        id="half-cent-up-not-to-even",
    ),
    pytest.param(
        Case((line("a", "0.13"),), (pct("p", "10"),), {"p": "0.01"}),
        id="third-of-a-cent-rounds-down",
    ),
    pytest.param(
        Case((line("a", "10.00"),), (pct("p", str(Decimal(100) / 3)),), {"p": "3.33"}),
        id="one-third-percentage",
    ),
    pytest.param(
        Case(
            (line("a", "0.03"),),
            (pct("p", "10", "TINY"),),
            {},
            {"TINY": Reason.NO_DISCOUNT},
            codes=("TINY",),
        ),
        id="discount-rounding-to-zero-refused",
    ),
    pytest.param(
        Case((line("a", "3.33", 3),), (pct("p", "100"),), {"p": "9.99"}),
        id="hundred-percent-is-all",
    ),
    pytest.param(
        Case(
            TWO,
            (fixed("p", "5.00", "USD5", currency="USD"),),
            {},
            {"USD5": "This code is only valid for carts in USD."},
            codes=("USD5",),
        ),
        id="fixed-in-other-currency-refused",
    ),
    pytest.param(
        Case(
            TWO,
            (pct("p", "10", "MINUSD", min_spend=Decimal("10.00"), currency="USD"),),
            {},
            {"MINUSD": "This code is only valid for carts in USD."},
            codes=("MINUSD",),
        ),
        id="min-spend-in-other-currency-refused",
    ),
    pytest.param(
        Case(TWO, (pct("p", "10", currency=None),), {"p": "5.00"}),
        id="plain-percentage-has-no-currency",
    ),
]

CODES = [
    pytest.param(Case(TWO, (), {}, {"NOPE": Reason.UNKNOWN}, codes=("nope",)), id="unknown-code"),
    pytest.param(
        Case(TWO, (fixed("p", "10.00", "Save10"),), {"p": "10.00"}, codes=("  sAVE10 ",)),
        id="code-trimmed-and-case-insensitive",
    ),
    pytest.param(
        Case(TWO, (fixed("p", "10.00", "SAVE10"),), {"p": "10.00"}, codes=("SAVE10", "save10")),
        id="duplicate-code-counts-once",
    ),
    pytest.param(
        Case(TWO, (fixed("p", "10.00", "SAVE10"),), {}, codes=("", "   ")), id="blank-codes-ignored"
    ),
    pytest.param(
        Case(
            TWO,
            (fixed("p", "10.00", "SAVE10"),),
            {"p": "10.00"},
            {"SAVE11": Reason.UNKNOWN},
            codes=("SAVE11", "SAVE10"),
        ),
        id="unknown-next-to-known",
    ),
    pytest.param(
        Case(TWO, (fixed("p", "10.00", "SAVE10"),), {}), id="coded-promotion-needs-its-code"
    ),
]


@pytest.mark.parametrize(
    "case",
    KINDS_AND_TARGETS + MIN_SPEND_AND_WINDOW + LIMITS + STACKING + ROUNDING_AND_CURRENCY + CODES,
)
def test_promotion_table(case: Case) -> None:
    discounts = run(case)

    assert [(a.promotion_id, a.amount) for a in discounts.applied] == [
        (pid, Decimal(amount)) for pid, amount in case.applied.items()
    ]
    assert {r.code: r.reason for r in discounts.refused} == {
        c: str(r) for c, r in case.refused.items()
    }
    for applied in discounts.applied:
        assert sum(applied.per_line.values(), Decimal(0)) == applied.amount


def test_ten_over_three_equal_lines_splits_exactly_extra_cent_to_lowest_id() -> None:
    lines = (line("c", "5.00"), line("a", "5.00"), line("b", "5.00"))
    case = Case(lines, (fixed("p", "10.00"),), {"p": "10.00"})

    (applied,) = run(case).applied

    assert applied.per_line == {"a": Decimal("3.34"), "b": Decimal("3.33"), "c": Decimal("3.33")}


def test_split_follows_what_is_left_of_each_line_largest_remainder_first() -> None:
    lines = (line("a", "1.00"), line("b", "2.00"), line("c", "7.00"))
    case = Case(
        lines, (fixed("f", "1.00", priority=1), fixed("g", "1.00")), {"f": "1.00", "g": "1.00"}
    )

    first, second = run(case).applied

    # 1.00 over 1:2:7 is 0.10/0.20/0.70; then 1.00 over 0.90/1.80/6.30 is exactly the same.
    assert first.per_line == {"a": Decimal("0.10"), "b": Decimal("0.20"), "c": Decimal("0.70")}
    assert second.per_line == first.per_line


def test_remainder_cent_goes_to_the_largest_remainder_not_the_lowest_id() -> None:
    case = Case((line("a", "1.00"), line("b", "2.00")), (fixed("p", "1.00"),), {"p": "1.00"})

    (applied,) = run(case).applied

    # Exact shares 0.333... and 0.666...: b's remainder is larger, so b gets the cent.
    assert applied.per_line == {"a": Decimal("0.33"), "b": Decimal("0.67")}


def test_lines_not_discounted_are_absent_from_the_split_and_totals_add_up() -> None:
    case = Case(
        SHOP, (pct("p", "10", target=SHOES), fixed("f", "1.00")), {"f": "1.00", "p": "6.42"}
    )

    discounts = run(case)

    assert set(discounts.applied[1].per_line) == {"a", "b"}
    assert discounts.total == Decimal("7.42")
    assert sum(discounts.for_line(x.line_id) for x in SHOP) == discounts.total
    assert discounts.for_line("missing") == Decimal("0.00")


def test_codes_never_shown_in_reprs() -> None:
    case = Case(
        TWO, (fixed("p", "5.00", "SECRET42"),), {"p": "5.00"}, codes=("SECRET42", "OTHER99")
    )

    discounts = run(case)

    assert "SECRET42" not in repr(discounts)
    assert "OTHER99" not in repr(discounts)
    assert "SECRET42" not in repr(case.promotions)
    assert discounts.refused[0].masked == "OT****"


@pytest.mark.parametrize(
    ("code", "masked"),
    [
        pytest.param("SUMMER2025", "SU****", id="long-code-shows-two"),
        pytest.param("  summer2025 ", "SU****", id="normalized-first"),
        pytest.param("ABCDEF", "AB****", id="six-shows-two"),
        pytest.param("ABCDE", "****", id="five-shows-none"),
        pytest.param("", "****", id="empty"),
    ],
)
def test_mask(code: str, masked: str) -> None:
    assert mask(code) == masked


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        pytest.param("0.005", "0.01", id="half-up"),
        pytest.param("0.015", "0.02", id="odd-half-up"),
        pytest.param("0.025", "0.03", id="even-half-up-not-to-even"),
        pytest.param("0.0049999", "0.00", id="below-half-down"),
        pytest.param("-0.005", "-0.01", id="negative-half-away-from-zero"),
        pytest.param("12", "12.00", id="whole-gets-cents"),
    ],
)
def test_to_cents(value: str, cents: str) -> None:
    assert str(to_cents(Decimal(value))) == cents


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: pct("p", "0"), "percentage", id="percentage-zero"),
        pytest.param(lambda: pct("p", "100.01"), "percentage", id="percentage-above-100"),
        pytest.param(lambda: fixed("p", "0.00"), "fixed value", id="fixed-zero"),
        pytest.param(lambda: fixed("p", "1.005"), "fixed value", id="fixed-sub-cent"),
        pytest.param(
            lambda: fixed("p", "1.00", currency=None), "currency", id="fixed-without-currency"
        ),
        pytest.param(
            lambda: pct("p", "5", min_spend=Decimal("10")),
            "currency",
            id="min-spend-without-currency",
        ),
        pytest.param(
            lambda: pct("p", "5", min_spend=Decimal("-1"), currency="EUR"),
            "minimum",
            id="negative-min-spend",
        ),
        pytest.param(
            lambda: pct("p", "5", valid_until=datetime(2025, 1, 1)), "timezone", id="naive-window"
        ),
        pytest.param(lambda: pct("p", "5", limit_total=0), "usage limit", id="zero-total-limit"),
        pytest.param(
            lambda: pct("p", "5", limit_per_buyer=0), "usage limit", id="zero-buyer-limit"
        ),
        pytest.param(lambda: line("a", "1.00", 0), "quantity", id="line-zero-quantity"),
        pytest.param(lambda: line("a", "-1.00"), "unit price", id="line-negative-price"),
    ],
)
def test_invalid_promotions_and_lines_are_refused(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("lines", "promotions", "now", "message"),
    [
        pytest.param(
            (line("a", "1.00"), line("a", "2.00")), (), NOW, "line ids", id="duplicate-line-ids"
        ),
        pytest.param((line("a", "1.005"),), (), NOW, "whole cents", id="sub-cent-price"),
        pytest.param(TWO, (), datetime(2025, 6, 1), "timezone", id="naive-now"),
        pytest.param(
            TWO, (pct("p", "5", "X"), pct("q", "5", " x ")), NOW, "code", id="duplicate-codes"
        ),
        pytest.param(TWO, (pct("p", "5"), pct("p", "6")), NOW, "ids", id="duplicate-promotion-ids"),
    ],
)
def test_inputs_apply_cannot_read_are_refused(
    lines: tuple[PricedLine, ...], promotions: tuple[Promotion, ...], now: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        apply(lines, promotions, (), buyer_id=None, now=now, usage=Usage(), currency="EUR")
