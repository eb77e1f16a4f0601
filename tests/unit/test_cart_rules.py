"""The cart's pure rules for marketplaces: own vendor store, MOQ and cap at checkout, group status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.cart.checkout_rules import (
    GroupStatus,
    OrderProgress,
    PriceChange,
    balance_due,
    checkout_violations,
    group_status,
    reprice,
)
from services.cart.domain import (
    CartLine,
    CartRuleError,
    Offer,
    Snapshot,
    check_add,
    check_replacement,
)

P, C, F = OrderProgress.PENDING, OrderProgress.CONFIRMED, OrderProgress.FAILED


def _offer(sku: str, vendor: str = "acme", moq: int = 1, max_qty: int = 20) -> Offer:
    return Offer(sku, uuid.uuid4(), Decimal("2.00"), "EUR", True, max_qty, vendor, moq)


def _line(sku: str, qty: int, vendor: str = "acme") -> CartLine:
    snapshot = Snapshot(uuid.uuid4(), Decimal("2.00"), "EUR", datetime.now(UTC), vendor)
    return CartLine(uuid.uuid4(), sku, qty, snapshot)


def test_a_buyer_cannot_add_from_their_own_store() -> None:
    with pytest.raises(CartRuleError) as refused:
        check_add(None, "A", 1, _offer("A", vendor="bob"), "bob")
    assert [v.field for v in refused.value.violations] == ["sku"]
    assert check_add(None, "A", 1, _offer("A", vendor="acme"), "bob") == 1


def test_a_replacement_names_the_own_store_line() -> None:
    offers = {"A": _offer("A"), "B": _offer("B", vendor="bob")}
    with pytest.raises(CartRuleError) as refused:
        check_replacement([("A", 1), ("B", 1)], offers, "bob")
    assert [v.field for v in refused.value.violations] == ["items.1.sku"]


def test_checkout_refuses_below_moq_above_cap_and_own_store_once_per_line() -> None:
    lines = [_line("A", 1), _line("B", 2), _line("C", 9), _line("D", 1, vendor="bob")]
    offers = {
        "A": _offer("A", moq=2),
        "B": _offer("B", moq=2),
        "C": _offer("C", max_qty=5),
        # Own store and below the MOQ: the own store is the one reason given.
        "D": _offer("D", vendor="bob", moq=3),
    }

    violations = checkout_violations(lines, offers, "bob")

    assert [v.field for v in violations] == ["items.0.qty", "items.2.qty", "items.3.sku"]
    assert "at least 2" in violations[0].reason
    assert "at most 5" in violations[1].reason
    assert "own vendor store" in violations[2].reason


def test_a_vendor_change_is_a_change_of_terms() -> None:
    line = _line("A", 1, vendor="acme")
    [difference] = reprice([line], {"A": _offer("A", vendor="globex")})
    assert difference.change is PriceChange.VENDOR_CHANGED
    assert reprice([line], {"A": _offer("A", vendor="acme")}) == []


@dataclass(frozen=True)
class _Order:
    progress: OrderProgress
    adjusted_total: Decimal = Decimal("10.00")


@pytest.mark.parametrize(
    ("progress", "status"),
    [
        ((P, C, C), GroupStatus.PROCESSING),
        ((OrderProgress.CREATED,), GroupStatus.PROCESSING),
        ((C, C, C), GroupStatus.COMPLETED),
        ((C, F, C), GroupStatus.PARTIALLY_COMPLETED),
        ((F, F), GroupStatus.FAILED),
        ((), GroupStatus.PROCESSING),
    ],
)
def test_group_status_follows_its_vendor_orders(
    progress: tuple[OrderProgress, ...], status: GroupStatus
) -> None:
    assert group_status([_Order(p) for p in progress]) is status


def test_balance_due_is_the_confirmed_adjusted_totals() -> None:
    orders = [_Order(C, Decimal("7.50")), _Order(F, Decimal("3.00")), _Order(C, Decimal("2.25"))]
    assert balance_due(orders) == Decimal("9.75")
    assert balance_due([_Order(P), _Order(F)]) == Decimal("0.00")
