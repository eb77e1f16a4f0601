"""Guest rules: the merge of a guest cart into a buyer's, as a table of cases, and guest ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.cart.domain import (
    MAX_DISTINCT_ITEMS,
    CartLine,
    CartStatus,
    Offer,
    ShoppingCart,
    Snapshot,
)
from services.cart.guest_rules import (
    Misfit,
    guest_buyer_id,
    is_guest,
    plan_merge,
    session_of,
    token_digest,
)

BUYER = "buyer-1"
EARLY = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LATE = EARLY + timedelta(hours=1)


def _line(
    sku: str, qty: int, at: datetime = EARLY, price: str = "5.00", cur: str = "EUR"
) -> CartLine:
    return CartLine(uuid.uuid4(), sku, qty, Snapshot(uuid.uuid4(), Decimal(price), cur, at, "acme"))


def _cart(*lines: CartLine, currency: str = "EUR") -> ShoppingCart:
    return ShoppingCart(
        uuid.uuid4(), BUYER, CartStatus.ACTIVE, currency, 3, EARLY, EARLY, tuple(lines)
    )


def _offer(sku: str, *, cap: int = 20, active: bool = True, vendor: str = "acme") -> Offer:
    return Offer(sku, uuid.uuid4(), Decimal("5.00"), "EUR", active, cap, vendor, moq=1)


@dataclass(frozen=True)
class Case:
    """A merge: guest lines, the buyer's cart, offers; then the quantities and misfits expected."""

    name: str
    guest: tuple[CartLine, ...]
    cart: ShoppingCart | None
    offers: tuple[Offer, ...]
    merged: dict[str, tuple[int, int]] = field(default_factory=dict)  # sku -> (added, qty)
    left_out: dict[str, Misfit] = field(default_factory=dict)
    currency: str | None = "EUR"


CASES = [
    Case("into no cart", (_line("A", 2),), None, (_offer("A"),), {"A": (2, 2)}),
    Case(
        "sums with the buyer's line",
        (_line("A", 2),),
        _cart(_line("A", 3)),
        (_offer("A"),),
        {"A": (2, 5)},
    ),
    Case(
        "up to the cap exactly",
        (_line("A", 2),),
        _cart(_line("A", 3)),
        (_offer("A", cap=5),),
        {"A": (2, 5)},
    ),
    Case(
        "over the offer's cap",
        (_line("A", 3),),
        _cart(_line("A", 3)),
        (_offer("A", cap=5),),
        left_out={"A": Misfit.OVER_LIMIT},
    ),
    Case(
        "over the cart's 20 units",
        (_line("A", 15),),
        _cart(_line("A", 6)),
        (_offer("A"),),
        left_out={"A": Misfit.OVER_LIMIT},
    ),
    Case(
        "no longer sold",
        (_line("A", 1), _line("B", 1)),
        None,
        (_offer("A", active=False),),
        left_out={"A": Misfit.UNAVAILABLE, "B": Misfit.UNAVAILABLE},
        currency=None,
    ),
    Case(
        "the buyer's own store",
        (_line("A", 1),),
        None,
        (_offer("A", vendor=BUYER),),
        left_out={"A": Misfit.OWN_STORE},
        currency=None,
    ),
    Case(
        "another currency than the buyer's cart",
        (_line("A", 1, cur="USD"), _line("B", 1)),
        _cart(_line("C", 1)),
        (_offer("A"), _offer("B")),
        {"B": (1, 1)},
        {"A": Misfit.CURRENCY},
    ),
    Case(
        "into no cart, the first line's currency wins",
        (_line("A", 1, cur="USD"), _line("B", 1)),
        None,
        (_offer("A"), _offer("B")),
        {"A": (1, 1)},
        {"B": Misfit.CURRENCY},
        currency="USD",
    ),
    Case(
        "an empty buyer cart takes the guest's currency",
        (_line("A", 1, cur="USD"),),
        _cart(currency="XXX"),
        (_offer("A"),),
        {"A": (1, 1)},
        currency="USD",
    ),
    Case("an empty guest cart", (), _cart(_line("A", 1)), (), currency="EUR"),
    Case("nothing at all", (), None, (), currency=None),
    Case(
        "one product too many",
        (_line("NEW", 1), _line("S000", 1)),
        _cart(*(_line(f"S{i:03}", 1) for i in range(MAX_DISTINCT_ITEMS))),
        (_offer("NEW"), _offer("S000")),
        {"S000": (1, 2)},
        {"NEW": Misfit.TOO_MANY_PRODUCTS},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_merge_table(case: Case) -> None:
    offers = {o.sku: o for o in case.offers}

    plan = plan_merge(case.guest, case.cart, offers, BUYER)

    assert {m.sku: (m.added, m.quantity) for m in plan.merged} == case.merged
    assert {m.sku: m.reason for m in plan.left_out} == case.left_out
    assert {m.sku: m.quantity for m in plan.left_out} == {
        ln.sku: ln.quantity for ln in case.guest if ln.sku in case.left_out
    }
    assert plan.currency == case.currency


@pytest.mark.parametrize(
    ("guest_at", "own_at", "kept"),
    [(LATE, EARLY, "guest"), (EARLY, LATE, "own"), (EARLY, EARLY, "own")],
)
def test_the_newer_snapshot_is_kept(guest_at: datetime, own_at: datetime, kept: str) -> None:
    guest, own = _line("A", 1, guest_at, "6.00"), _line("A", 1, own_at, "5.00")

    [merged] = plan_merge([guest], _cart(own), {"A": _offer("A")}, BUYER).merged

    assert merged.snapshot == (guest if kept == "guest" else own).snapshot


def test_a_guest_line_sold_by_the_buyer_under_an_older_snapshot_is_left_out() -> None:
    line = CartLine(uuid.uuid4(), "A", 1, Snapshot(None, Decimal("1.00"), "EUR", EARLY, BUYER))

    plan = plan_merge([line], None, {"A": _offer("A")}, BUYER)

    assert [m.reason for m in plan.left_out] == [Misfit.OWN_STORE]


def test_guest_ids_round_trip_and_no_buyer_id_is_a_guests() -> None:
    session = uuid.uuid4()

    assert session_of(guest_buyer_id(session)) == session
    assert is_guest(guest_buyer_id(session))
    assert not is_guest("buyer-guest:1")
    with pytest.raises(ValueError, match="not a guest"):
        session_of("buyer-1")


def test_only_a_digest_of_the_token_is_kept() -> None:
    assert token_digest("abc") == token_digest("abc") != token_digest("abd")
    assert "abc" not in token_digest("abc")
    assert len(token_digest("abc")) == 64
