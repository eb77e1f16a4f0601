"""Inventory rules without I/O: all-or-nothing and partial plans, ids, what may be settled."""

from __future__ import annotations

import uuid

from contracts import StockItem, StockShortage
from services.inventory.domain import (
    Refused,
    ReservationStatus,
    Reserved,
    deductible,
    plan_reservation,
    releasable,
    reservation_id,
)

ORDER = uuid.UUID("00000000-0000-4000-8000-000000000001")


def _items(*lines: tuple[str, int]) -> list[StockItem]:
    return [StockItem(sku=s, quantity=q) for s, q in lines]


def test_every_line_available_reserves_all_in_sku_order() -> None:
    plan = plan_reservation(ORDER, _items(("B", 2), ("A", 1)), {"A": 1, "B": 5})

    assert isinstance(plan, Reserved)
    assert [(r.sku, r.quantity) for r in plan.reservations] == [("A", 1), ("B", 2)]
    assert [r.reservation_id for r in plan.reservations] == [
        reservation_id(ORDER, "A"),
        reservation_id(ORDER, "B"),
    ]


def test_reservation_ids_are_deterministic_per_order_and_sku() -> None:
    assert reservation_id(ORDER, "A") == reservation_id(ORDER, "A")
    assert reservation_id(ORDER, "A") != reservation_id(ORDER, "B")
    assert reservation_id(ORDER, "A") != reservation_id(uuid.uuid4(), "A")


def test_an_unknown_product_refuses_everything() -> None:
    plan = plan_reservation(ORDER, _items(("A", 1), ("X", 1)), {"A": 10})

    assert plan == Refused(
        reason="unknown product(s): X",
        shortages=(StockShortage(sku="X", requested=1, available=None),),
    )


def test_short_stock_refuses_everything() -> None:
    plan = plan_reservation(ORDER, _items(("A", 3), ("B", 1)), {"A": 2, "B": 1})

    assert plan == Refused(
        reason="insufficient stock for: A",
        shortages=(StockShortage(sku="A", requested=3, available=2),),
    )


def test_unknown_and_short_are_both_named() -> None:
    plan = plan_reservation(ORDER, _items(("A", 3), ("X", 1)), {"A": 0})

    assert isinstance(plan, Refused)
    assert plan.reason == "unknown product(s): X; insufficient stock for: A"


def test_releasable_takes_only_held_reservations() -> None:
    held, deducted, released = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    statuses = {
        held: ReservationStatus.HELD,
        deducted: ReservationStatus.DEDUCTED,
        released: ReservationStatus.RELEASED,
    }

    assert releasable(statuses, []) == [held]
    assert releasable(statuses, [deducted, released]) == []
    assert releasable(statuses, [held, uuid.uuid4()]) == [held]


def test_a_deducted_reservation_is_never_releasable() -> None:
    rid = uuid.uuid4()

    assert releasable({rid: ReservationStatus.DEDUCTED}, [rid]) == []


def test_deductible_takes_only_held_reservations() -> None:
    held, released = uuid.uuid4(), uuid.uuid4()
    statuses = {held: ReservationStatus.HELD, released: ReservationStatus.RELEASED}

    assert deductible(statuses) == [held]
    assert deductible({}) == []


def test_a_partial_plan_holds_the_available_lines_and_rejects_the_others() -> None:
    plan = plan_reservation(
        ORDER, _items(("A", 2), ("B", 3), ("X", 1)), {"A": 2, "B": 1}, partial=True
    )

    assert isinstance(plan, Reserved)
    assert [(r.sku, r.quantity) for r in plan.reservations] == [("A", 2)]
    assert plan.rejected == (
        StockShortage(sku="B", requested=3, available=1),
        StockShortage(sku="X", requested=1, available=None),
    )
    assert [s.reason for s in plan.rejected] == ["insufficient_stock", "unavailable"]


def test_a_partial_plan_with_every_line_short_is_refused() -> None:
    plan = plan_reservation(ORDER, _items(("A", 2)), {"A": 1}, partial=True)

    assert isinstance(plan, Refused)
    assert plan.reason == "insufficient stock for: A"


def test_a_partial_plan_with_nothing_short_is_a_full_reservation() -> None:
    full = plan_reservation(ORDER, _items(("A", 1)), {"A": 1})
    assert plan_reservation(ORDER, _items(("A", 1)), {"A": 1}, partial=True) == full
