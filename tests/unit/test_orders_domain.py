"""Order rules without I/O: the vendor orders a checkout becomes and every status transition."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    ConfirmOrder,
    GroupOutcome,
    LineItem,
    OrderConfirmed,
    OrderFailed,
    OrderMarkedFailed,
    RejectedLine,
    RejectionReason,
)
from contracts.vendor_orders import vendor_order_id
from services.orders.domain import (
    Change,
    Command,
    Confirm,
    Fail,
    Order,
    OrderStatus,
    Rejected,
    Step,
    Unchanged,
    command_of,
    created_event,
    decide,
    narrowed,
    new_orders,
    outcome_event,
    step,
)

ORDER = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
PAID = uuid.UUID("00000000-0000-4000-8000-0000000000bb")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000cc")
SHORT = RejectionReason.INSUFFICIENT_STOCK
GONE = RejectionReason.UNAVAILABLE


def _line(sku: str, quantity: int = 1, price: str = "10.00", vendor: str | None = None) -> LineItem:
    return LineItem(sku=sku, quantity=quantity, unit_price=Decimal(price), vendor_id=vendor)


def _rejected(sku: str, reason: RejectionReason = SHORT, quantity: int = 1) -> RejectedLine:
    return RejectedLine(sku=sku, quantity=quantity, reason=reason)


def _order(
    status: OrderStatus = OrderStatus.CREATED,
    items: tuple[LineItem, ...] = (_line("A"),),
    order_id: uuid.UUID = ORDER,
    vendor: str | None = None,
    marketplace: bool = False,
) -> Order:
    return Order(
        order_id=order_id,
        checkout_group_id=ORDER,
        vendor_id=vendor,
        buyer_id="b-1",
        currency="EUR",
        marketplace=marketplace,
        items=items,
        status=status,
        payment_id=PAID if status is OrderStatus.CONFIRMED else None,
        failure_reason="out of stock" if status is OrderStatus.FAILED else None,
    )


def _checkout(*items: LineItem, policy: CheckoutPolicy | None = None) -> CheckoutStarted:
    extra = {} if policy is None else {"policy": policy}
    return CheckoutStarted(order_id=ORDER, buyer_id="b-1", currency="EUR", items=items, **extra)


def _marketplace() -> tuple[Order, ...]:
    """Three vendors: v1 with A and B, v2 with C, v3 with D."""
    return new_orders(
        _checkout(
            _line("A", 2, "5.00", "v1"),
            _line("B", 1, "3.50", "v1"),
            _line("C", 1, "20.00", "v2"),
            _line("D", 4, "1.25", "v3"),
        )
    )


# --- creation ------------------------------------------------------------------------------------


def test_a_plain_checkout_is_one_order_under_its_own_id() -> None:
    event = _checkout(_line("A", 3, "0.10"), _line("B", 1, "19.99"))

    [order] = new_orders(event)

    assert (order.order_id, order.checkout_group_id, order.buyer_id) == (ORDER, ORDER, "b-1")
    assert (order.vendor_id, order.marketplace, order.status) == (None, False, "created")
    assert order.items == tuple(event.items)
    assert order.total == Decimal("20.29")


def test_the_total_is_exact_decimal_arithmetic() -> None:
    order = _order(items=tuple(_line(f"S{i}", 3, "0.10") for i in range(10)))

    assert order.total == Decimal("3.00")


def test_a_checkout_of_three_vendors_is_three_orders_of_one_group() -> None:
    group = _marketplace()

    assert [o.vendor_id for o in group] == ["v1", "v2", "v3"]
    assert [o.order_id for o in group] == [
        vendor_order_id(ORDER, v, alone=False) for v in ["v1", "v2", "v3"]
    ]
    assert {o.checkout_group_id for o in group} == {ORDER}
    assert all(o.marketplace for o in group)
    assert [[i.sku for i in o.items] for o in group] == [["A", "B"], ["C"], ["D"]]
    assert [o.total for o in group] == [Decimal("13.50"), Decimal("20.00"), Decimal("5.00")]


def test_one_vendor_or_the_partial_policy_makes_a_marketplace_checkout() -> None:
    [vendor] = new_orders(_checkout(_line("A", vendor="v1")))
    [partial] = new_orders(_checkout(_line("A"), policy=CheckoutPolicy.PARTIAL))

    assert (vendor.order_id, vendor.marketplace) == (ORDER, True)
    assert (partial.order_id, partial.marketplace) == (ORDER, True)


def test_order_created_names_group_and_vendor_only_for_marketplaces() -> None:
    plain = created_event(_order())
    [first, *_] = _marketplace()
    market = created_event(first)

    assert (plain.checkout_group_id, plain.vendor_id) == (None, None)
    assert "checkout_group_id" not in plain.model_dump(mode="json")
    assert (market.order_id, market.checkout_group_id, market.vendor_id) == (
        first.order_id,
        ORDER,
        "v1",
    )
    assert (market.total, market.items) == (Decimal("13.50"), list(first.items))


# --- one order ------------------------------------------------------------------------------------


def test_commands_become_rule_inputs() -> None:
    rejected = [_rejected("A")]
    assert command_of(ConfirmOrder(order_id=ORDER, payment_id=PAID)) == Confirm(PAID)
    assert command_of(OrderFailed(order_id=ORDER, reason="timeout")) == Fail("timeout")
    assert command_of(ConfirmOrder(order_id=ORDER, payment_id=PAID, rejected=rejected)) == (
        Confirm(PAID, tuple(rejected))
    )


@pytest.mark.parametrize(
    ("status", "command", "expected"),
    [
        (OrderStatus.CREATED, Confirm(PAID), Change(OrderStatus.CONFIRMED, payment_id=PAID)),
        (
            OrderStatus.CREATED,
            Fail("declined"),
            Change(OrderStatus.FAILED, failure_reason="declined"),
        ),
        (OrderStatus.CONFIRMED, Confirm(PAID), Unchanged()),
        (OrderStatus.FAILED, Fail("out of stock"), Unchanged()),
        (OrderStatus.FAILED, Fail("payment timeout"), Unchanged()),
    ],
)
def test_allowed_transitions(
    status: OrderStatus, command: Command, expected: Change | Unchanged
) -> None:
    assert decide(_order(status), command) == expected


@pytest.mark.parametrize(
    ("status", "command", "says"),
    [
        (OrderStatus.CONFIRMED, Fail("timeout"), "cannot be marked failed"),
        (OrderStatus.CONFIRMED, Confirm(OTHER), "cannot be confirmed again"),
        (OrderStatus.FAILED, Confirm(PAID), "cannot be confirmed"),
    ],
)
def test_contradicting_a_final_state_is_rejected(
    status: OrderStatus, command: Command, says: str
) -> None:
    outcome = decide(_order(status), command)

    assert isinstance(outcome, Rejected)
    assert says in outcome.reason
    assert str(ORDER) in outcome.reason


def test_an_order_keeps_only_its_own_rejected_lines() -> None:
    order = _order(items=(_line("A"), _line("B")))

    command = narrowed(order, Confirm(PAID, (_rejected("Z"), _rejected("B"), _rejected("B", GONE))))

    assert command == Confirm(PAID, (_rejected("B"),))


def test_confirming_an_order_without_any_line_left_fails_it_with_why() -> None:
    order = _order(items=(_line("A"), _line("B")))

    outcome = decide(order, Confirm(PAID, (_rejected("A"), _rejected("B", GONE))))

    reason = "every line was rejected: A (insufficient_stock), B (unavailable)"
    assert outcome == Change(
        OrderStatus.FAILED, failure_reason=reason, rejected=(_rejected("A"), _rejected("B", GONE))
    )


def test_the_every_line_reason_fits_the_wire() -> None:
    skus = [f"SKU-{'X' * 50}-{i}" for i in range(20)]
    order = _order(items=tuple(_line(s) for s in skus))

    outcome = decide(order, Confirm(PAID, tuple(_rejected(s) for s in skus)))

    assert isinstance(outcome, Change)
    assert outcome.failure_reason is not None
    assert len(outcome.failure_reason) == 500
    assert outcome.failure_reason.endswith("…")


def test_a_repeated_confirm_of_an_order_it_failed_changes_nothing() -> None:
    # That order failed because its every line was rejected: the same confirmation agrees.
    order = _order(OrderStatus.FAILED, items=(_line("A"),))

    assert decide(order, Confirm(PAID, (_rejected("A"),))) == Unchanged()


# --- the group ------------------------------------------------------------------------------------


def _confirmed_partially() -> Step:
    # v1 loses B, v2 loses its only line C, v3 keeps everything.
    done = step(_marketplace(), Confirm(PAID, (_rejected("B"), _rejected("C", GONE))))
    assert isinstance(done, Step)
    return done


def test_confirming_a_group_confirms_on_accepted_lines_and_fails_an_emptied_order() -> None:
    v1, v2, v3 = _confirmed_partially().changed

    assert (v1.status, v1.payment_id, v1.rejected) == ("confirmed", PAID, (_rejected("B"),))
    assert ([i.sku for i in v1.accepted], v1.adjusted_total) == (["A"], Decimal("10.00"))
    assert (v2.status, v2.payment_id, v2.adjusted_total) == ("failed", None, Decimal("0.00"))
    assert v2.failure_reason == "every line was rejected: C (unavailable)"
    assert (v3.status, v3.rejected, v3.adjusted_total) == ("confirmed", (), Decimal("5.00"))


def test_the_step_that_ends_a_group_announces_its_outcome_and_balance() -> None:
    completed = _confirmed_partially().completed

    assert completed is not None
    assert (completed.order_id, completed.buyer_id, completed.currency) == (ORDER, "b-1", "EUR")
    assert completed.outcome is GroupOutcome.PARTIALLY_COMPLETED
    assert completed.balance_due == Decimal("15.00")
    v1, v2, v3 = completed.orders
    assert (v1.vendor_id, v1.status, v1.total, v1.rejected) == (
        "v1",
        "confirmed",
        Decimal("10.00"),
        [_rejected("B")],
    )
    assert (v2.status, v2.total, v2.items) == ("failed", Decimal("0.00"), [])
    assert v2.failure_reason == "every line was rejected: C (unavailable)"
    assert (v3.status, v3.total) == ("confirmed", Decimal("5.00"))


@pytest.mark.parametrize(
    ("command", "outcome", "balance"),
    [
        (Confirm(PAID), GroupOutcome.COMPLETED, Decimal("38.50")),
        (Fail("payment declined"), GroupOutcome.FAILED, Decimal("0.00")),
    ],
)
def test_a_group_completes_or_fails_whole(
    command: Command, outcome: GroupOutcome, balance: Decimal
) -> None:
    done = step(_marketplace(), command)

    assert isinstance(done, Step)
    assert len(done.changed) == 3
    assert done.completed is not None
    assert (done.completed.outcome, done.completed.balance_due) == (outcome, balance)


def test_failing_a_group_records_each_vendors_own_rejections() -> None:
    done = step(_marketplace(), Fail("payment declined", (_rejected("B"), _rejected("D"))))

    assert isinstance(done, Step)
    v1, v2, v3 = done.changed
    assert {o.failure_reason for o in done.changed} == {"payment declined"}
    assert (v1.rejected, v2.rejected, v3.rejected) == ((_rejected("B"),), (), (_rejected("D"),))


def test_a_final_group_announces_nothing_again() -> None:
    after = [*_confirmed_partially().changed]

    again = step(after, Confirm(PAID, (_rejected("B"), _rejected("C", GONE))))

    assert again == Step(changed=(), completed=None)


def test_one_contradicted_vendor_order_rejects_the_whole_command() -> None:
    after = [*_confirmed_partially().changed]

    outcome = step(after, Fail("payment timeout"))

    assert isinstance(outcome, Rejected)
    assert "cannot be marked failed" in outcome.reason


def test_outcome_events_stay_version_1_for_plain_checkouts() -> None:
    confirmed = outcome_event(_plain_confirmed())

    assert confirmed == OrderConfirmed(order_id=ORDER, payment_id=PAID)
    assert set(confirmed.model_dump(mode="json")) == {"order_id", "payment_id"}


def _plain_confirmed() -> Order:
    done = step([_order()], Confirm(PAID))
    assert isinstance(done, Step)
    return done.changed[0]


def test_outcome_events_carry_the_vendor_orders_lines_and_totals() -> None:
    v1, v2, _ = _confirmed_partially().changed

    confirmed = outcome_event(v1)
    failed = outcome_event(v2)

    assert isinstance(confirmed, OrderConfirmed)
    assert (confirmed.checkout_group_id, confirmed.vendor_id, confirmed.currency) == (
        ORDER,
        "v1",
        "EUR",
    )
    assert (confirmed.total, [i.sku for i in confirmed.items]) == (Decimal("10.00"), ["A"])
    assert confirmed.rejected == [_rejected("B")]
    assert isinstance(failed, OrderMarkedFailed)
    assert (failed.total, failed.items, failed.rejected) == (
        Decimal("0.00"),
        [],
        [_rejected("C", GONE)],
    )
