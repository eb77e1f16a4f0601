"""Business figures, pure: conversion over ended carts, order value per currency, promotion uses."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from services.cart.business import (
    MAX_WINDOW,
    MIN_WINDOW,
    WINDOW,
    BuyerKind,
    CartCount,
    Discount,
    GroupTally,
    OrderMix,
    OrderValue,
    PromotionUsage,
    RedemptionTally,
    business_figures,
    cart_figures,
    check_window,
    discounts,
    order_values,
    promotion_usage,
    window_label,
)
from services.cart.checkout_rules import GroupStatus, OrderProgress, group_status
from services.cart.domain import CartStatus

B, G = BuyerKind.BUYER, BuyerKind.GUEST
S = CartStatus


def _carts(*counts: tuple[CartStatus, BuyerKind, int]) -> list[CartCount]:
    return [CartCount(status, kind, n) for status, kind, n in counts]


@pytest.mark.parametrize(
    ("counts", "active", "ended", "conversion", "abandonment"),
    [
        pytest.param([], (0, 0), 0, None, None, id="nothing: rates undefined"),
        pytest.param(
            _carts((S.ACTIVE, B, 3), (S.ACTIVE, G, 2)), (3, 2), 0, None, None, id="only active"
        ),
        pytest.param(
            _carts((S.MERGED, G, 4)), (0, 0), 0, None, None, id="merged guest carts never end"
        ),
        pytest.param(
            _carts((S.CHECKED_OUT, B, 2), (S.CLEARED, G, 1), (S.ABANDONED, B, 1)),
            (0, 0),
            4,
            0.75,
            0.25,
            id="cleared counts as checked out, guests too",
        ),
        pytest.param(
            _carts((S.ABANDONED, G, 2), (S.MERGED, G, 5), (S.ACTIVE, G, 1)),
            (0, 1),
            2,
            0.0,
            1.0,
            id="all abandoned",
        ),
        pytest.param(
            _carts((S.CHECKED_OUT, B, 1), (S.CHECKED_OUT, G, 2), (S.ACTIVE, B, 7)),
            (7, 0),
            3,
            1.0,
            0.0,
            id="kinds of one status add up",
        ),
    ],
)
def test_cart_figures(
    counts: list[CartCount],
    active: tuple[int, int],
    ended: int,
    conversion: float | None,
    abandonment: float | None,
) -> None:
    figures = cart_figures(counts)
    assert (figures.active[B], figures.active[G]) == active
    assert figures.ended == ended
    assert figures.conversion_rate == conversion
    assert figures.abandonment_rate == abandonment


def test_merged_carts_are_counted_apart() -> None:
    figures = cart_figures(_carts((S.MERGED, G, 3), (S.CHECKED_OUT, B, 1)))
    assert (figures.merged, figures.converted, figures.ended) == (3, 1, 1)


@dataclass(frozen=True)
class _Order:
    progress: OrderProgress
    adjusted_total: Decimal = Decimal("0.00")


@pytest.mark.parametrize("mix", list(itertools.product([False, True], repeat=3)))
def test_an_order_mix_has_the_status_of_any_group_with_that_mix(
    mix: tuple[bool, bool, bool],
) -> None:
    """Whatever orders make up the mix (and how many), group_status agrees with the mix."""
    open_, confirmed, failed = mix
    orders = (
        [_Order(OrderProgress.PENDING), _Order(OrderProgress.CREATED)] * open_
        + [_Order(OrderProgress.CONFIRMED)] * (2 * confirmed)
        + [_Order(OrderProgress.FAILED)] * failed
    )
    assert OrderMix(open_, confirmed, failed).status is group_status(orders)


COMPLETED = OrderMix(open=False, confirmed=True, failed=False)
PARTIAL = OrderMix(open=False, confirmed=True, failed=True)
FAILED = OrderMix(open=False, confirmed=False, failed=True)
PROCESSING = OrderMix(open=True, confirmed=True, failed=False)


def test_the_mixes_used_below_are_what_they_say() -> None:
    assert COMPLETED.status is GroupStatus.COMPLETED
    assert PARTIAL.status is GroupStatus.PARTIALLY_COMPLETED
    assert FAILED.status is GroupStatus.FAILED
    assert PROCESSING.status is GroupStatus.PROCESSING


def _tally(currency: str, mix: OrderMix, groups: int, balance: str) -> GroupTally:
    return GroupTally(currency, mix, groups, Decimal(balance))


def _value(currency: str, orders: int, sales: str, average: str) -> OrderValue:
    return OrderValue(currency, orders, Decimal(sales), Decimal(average))


@pytest.mark.parametrize(
    ("tallies", "expected"),
    [
        pytest.param([], [], id="empty window"),
        pytest.param(
            [_tally("EUR", PROCESSING, 3, "30.00"), _tally("EUR", FAILED, 2, "0.00")],
            [],
            id="processing and failed groups are no orders",
        ),
        pytest.param(
            [_tally("EUR", COMPLETED, 2, "30.00"), _tally("EUR", PARTIAL, 1, "12.00")],
            [_value("EUR", 3, "42.00", "14.00")],
            id="completed and partially completed count",
        ),
        pytest.param(
            [
                _tally("USD", COMPLETED, 1, "10.00"),
                _tally("EUR", COMPLETED, 2, "5.00"),
                _tally("USD", PROCESSING, 4, "99.00"),
            ],
            [_value("EUR", 2, "5.00", "2.50"), _value("USD", 1, "10.00", "10.00")],
            id="per currency, never mixed, sorted",
        ),
        pytest.param(
            [_tally("XTS", COMPLETED, 2, "0.05")],
            [_value("XTS", 2, "0.05", "0.03")],
            id="the mean is rounded half up to the cent",
        ),
        pytest.param(
            [_tally("XTS", COMPLETED, 3, "10.00"), _tally("XTS", PARTIAL, 0, "0.00")],
            [_value("XTS", 3, "10.00", "3.33")],
            id="exact division, rounded once",
        ),
    ],
)
def test_order_values(tallies: list[GroupTally], expected: list[OrderValue]) -> None:
    assert order_values(tallies) == expected


def _used(promotion: str, currency: str, returned: bool, uses: int, amount: str) -> RedemptionTally:
    return RedemptionTally(promotion, currency, returned, uses, Decimal(amount))


REDEMPTIONS = [
    _used("SPRING", "EUR", False, 3, "15.00"),
    _used("SPRING", "EUR", True, 1, "5.00"),
    _used("SPRING", "USD", False, 1, "6.10"),
    _used("ALL-BACK", "XTS", True, 2, "4.00"),
    _used("AUTUMN", "EUR", False, 2, "0.02"),
]


def test_promotion_uses_count_returned_ones_apart() -> None:
    assert promotion_usage(REDEMPTIONS) == [
        PromotionUsage("ALL-BACK", uses=0, returned=2),
        PromotionUsage("AUTUMN", uses=2, returned=0),
        PromotionUsage("SPRING", uses=4, returned=1),
    ]


def test_discounts_leave_returned_uses_out() -> None:
    assert discounts(REDEMPTIONS) == [
        Discount("EUR", Decimal("15.02"), uses=5),
        Discount("USD", Decimal("6.10"), uses=1),
    ]


def test_an_empty_window_has_no_promotions_and_no_discounts() -> None:
    assert promotion_usage([]) == []
    assert discounts([]) == []


def test_business_figures_read_each_redemption_once_for_both_figures() -> None:
    figures = business_figures(WINDOW, [], [], iter(REDEMPTIONS))
    assert figures.window == WINDOW
    assert [p.uses for p in figures.promotions] == [0, 2, 4]
    assert [d.currency for d in figures.discounts] == ["EUR", "USD"]


@pytest.mark.parametrize(
    ("window", "label"),
    [
        (timedelta(hours=24), "1d"),
        (timedelta(days=30), "30d"),
        (timedelta(hours=36), "36h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
    ],
)
def test_window_labels_use_the_largest_whole_unit(window: timedelta, label: str) -> None:
    assert window_label(window) == label


def test_windows_are_bounded() -> None:
    assert check_window(MIN_WINDOW) == MIN_WINDOW
    assert check_window(MAX_WINDOW) == MAX_WINDOW
    for outside in (MIN_WINDOW - timedelta(seconds=1), MAX_WINDOW + timedelta(seconds=1)):
        with pytest.raises(ValueError, match="a window is"):
            check_window(outside)
