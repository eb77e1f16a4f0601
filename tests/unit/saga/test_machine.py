"""One test per row of the saga table, plus the coverage of every (state, trigger) pair."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from contracts import (
    CheckoutStarted,
    ClearCart,
    ConfirmOrder,
    DeductStock,
    LineItem,
    OrderFailed,
    PaymentRequested,
    RefundPayment,
    RejectedLine,
    RejectionReason,
    ReleaseStockReservations,
    ReserveStockForOrder,
    StockItem,
    command_id,
)
from saga.actions import SagaInstance
from saga.instance import FINAL_STATES, SagaData, SagaState
from saga.machine import (
    ANY_SAGA,
    NO_SAGA,
    REJECTED_PAIRS,
    TABLE,
    TRIGGERS,
    OperatorAbort,
    OperatorRetry,
    Outcome,
    SagaEvent,
    StepResult,
    classify,
    start,
    step,
    trigger_name,
)
from tests.unit.saga import (
    ADJUSTED,
    BUYER,
    CART,
    NOW,
    ORDER,
    P1,
    P2,
    PARTIAL,
    POLICY,
    R1,
    R2,
    R3,
    TOTAL,
    advance,
    checkout_started,
    deadline_passed,
    declined,
    paid,
    reserved_in_part,
    sent,
    stock_failed,
    stock_reserved,
    test_operator_rows,
)

S = SagaState
DEADLINE = NOW + POLICY.payment_timeout
MISMATCH = f"payment {P1} of 20.00 EUR does not match the order total 25.00 EUR"


def apply(before: StepResult, event: SagaEvent, now: datetime = NOW) -> StepResult:
    """Step once, and check that the same input twice gives the same result (and ids)."""
    result = step(before.state, before.data, event, now, POLICY)
    assert step(before.state, before.data, event, now, POLICY) == result
    return result


def assert_ids(result: StepResult, *transitions: str) -> None:
    """Command ids are command_id(saga, transition, type): one transition for all, or one each."""
    names = transitions * len(result.commands) if len(transitions) == 1 else transitions
    expected = [
        command_id(ORDER, name, c.message.message_type)
        for name, c in zip(names, result.commands, strict=True)
    ]
    assert [c.message_id for c in result.commands] == expected


def assert_duplicate(before: StepResult, event: SagaEvent, row: str, now: datetime = NOW) -> None:
    result = apply(before, event, now)
    assert (result.outcome, result.transition) == (Outcome.DUPLICATE, row)
    assert (result.state, result.data, result.commands) == (before.state, before.data, ())
    assert result.reason


def release(*ids: object, reason: str) -> ReleaseStockReservations:
    return ReleaseStockReservations(order_id=ORDER, reservation_ids=list(ids), reason=reason)


def refund(payment_id: object, row: str, amount: Decimal = TOTAL) -> RefundPayment:
    reason = row.replace("_", " ")
    return RefundPayment(
        order_id=ORDER, payment_id=payment_id, amount=amount, currency="EUR", reason=reason
    )


CONFIRMATION = [
    ConfirmOrder(order_id=ORDER, payment_id=P1),
    DeductStock(order_id=ORDER),
    ClearCart(order_id=ORDER, buyer_id=BUYER, cart_id=CART),
]


def in_state(state: SagaState) -> StepResult:
    """A typical saga in this state."""
    setups: dict[SagaState, Callable[[], StepResult]] = {
        S.SUBMITTED: advance,
        S.STOCK_RESERVED: lambda: advance(stock_reserved()),
        S.CONFIRMED: lambda: advance(stock_reserved(), paid()),
        S.FAILED: lambda: advance(stock_reserved(), declined()),
    }
    return setups[state]()


# -- (none) and any saga --------------------------------------------------------------------


def test_row_create_saga() -> None:
    result = start(checkout_started(), NOW, POLICY)
    assert start(checkout_started(), NOW, POLICY) == result
    assert (result.state, result.outcome, result.transition) == (
        S.SUBMITTED,
        "applied",
        "create_saga",
    )
    items = [StockItem(sku="SKU-A", quantity=2), StockItem(sku="SKU-B", quantity=1)]
    assert sent(result) == [ReserveStockForOrder(order_id=ORDER, items=items)]
    assert_ids(result, "create_saga")
    data = result.data
    assert (data.order_id, data.buyer_id, data.cart_id) == (ORDER, BUYER, CART)
    assert (data.policy, data.unit_prices) == ("all_or_nothing", {})
    assert (data.amount, data.currency, data.items) == (TOTAL, "EUR", items)
    assert (data.reservation_requests, data.reservations, data.payment_deadline) == (1, [], None)


@pytest.mark.parametrize("state", list(S))
def test_row_checkout_repeated(state: SagaState) -> None:
    assert_duplicate(in_state(state), checkout_started(), "checkout_repeated")
    # The same lines in another order say the same thing.
    lines = list(reversed(checkout_started().items))
    assert_duplicate(in_state(state), differing(items=lines), "checkout_repeated")


def test_a_repeated_partial_checkout_stays_a_duplicate_after_its_amount_dropped() -> None:
    before = advance(reserved_in_part(), policy=PARTIAL)
    assert before.data.amount == ADJUSTED  # the rejected line lowered it: prices are compared
    assert_duplicate(before, checkout_started(policy=PARTIAL), "checkout_repeated")


def differing(**changes: object) -> CheckoutStarted:
    """The checkout of `checkout_started()` with some fields changed (validated again)."""
    return CheckoutStarted.model_validate({**dict(checkout_started()), **changes})


def line(sku: str, quantity: int, price: str) -> LineItem:
    return LineItem(sku=sku, quantity=quantity, unit_price=Decimal(price))


CONFLICTS: dict[str, tuple[dict[str, object], str]] = {
    "buyer": ({"buyer_id": "buyer-2"}, "buyer_id 'buyer-2' (the saga has 'buyer-1')"),
    "currency": ({"currency": "USD"}, "currency 'USD' (the saga has 'EUR')"),
    "cart": ({"cart_id": None}, f"cart_id None (the saga has '{CART}')"),
    "policy": ({"policy": PARTIAL}, "policy 'partial' (the saga has 'all_or_nothing')"),
    "quantity": (
        {"items": [line("SKU-A", 3, "5.00"), line("SKU-B", 1, "15.00")]},
        "quantities of SKU-A; amount 30.00 (the saga has 25.00)",
    ),
    "another line": (
        {"items": [line("SKU-A", 2, "5.00"), line("SKU-C", 1, "15.00")]},
        "quantities of SKU-B, SKU-C",
    ),
    "price": (
        {"items": [line("SKU-A", 2, "5.00"), line("SKU-B", 1, "15.01")]},
        "amount 25.01 (the saga has 25.00)",
    ),
}


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("case", list(CONFLICTS))
def test_row_checkout_conflicts(state: SagaState, case: str) -> None:
    before = in_state(state)
    changes, differences = CONFLICTS[case]
    result = apply(before, differing(**changes))
    assert (result.outcome, result.transition) == (Outcome.REJECTED, "checkout_conflicts")
    assert (result.state, result.data, result.commands) == (before.state, before.data, ())
    assert result.reason == (
        f"CheckoutStarted conflicts with the checkout that started order {ORDER}, which "
        f"stands: {differences}"
    )


def test_a_partial_checkout_conflicts_on_unit_prices_even_at_the_same_amount() -> None:
    before = advance(policy=PARTIAL)
    swapped = [line("SKU-A", 2, "7.50"), line("SKU-B", 1, "10.00")]  # 25.00 all the same
    result = apply(before, differing(items=swapped, policy=PARTIAL))
    assert (result.outcome, result.transition) == (Outcome.REJECTED, "checkout_conflicts")
    assert (result.reason or "").endswith("stands: unit prices of SKU-A, SKU-B")


# -- Submitted ------------------------------------------------------------------------------


def test_row_reserved_after_early_failure() -> None:
    result = apply(advance(declined()), stock_reserved())
    assert (result.state, result.transition) == (S.FAILED, "reserved_after_early_failure")
    reason = "payment failed: card declined"
    assert sent(result) == [
        release(R1, R2, reason=reason),
        OrderFailed(order_id=ORDER, reason=reason),
    ]
    assert_ids(result, "reserved_after_early_failure")
    assert [r.reservation_id for r in result.data.reservations] == [R1, R2]
    assert result.data.failure_reason == reason


def test_row_reserved_after_early_payment() -> None:
    result = apply(advance(paid()), stock_reserved())
    assert (result.state, result.transition) == (S.CONFIRMED, "reserved_after_early_payment")
    assert sent(result) == CONFIRMATION  # no PaymentRequested: the buyer has paid already
    assert_ids(result, "reserved_after_early_payment")
    assert (result.data.payment_id, result.data.payment_deadline) == (P1, None)
    assert len(result.data.reservations) == 2


def test_row_stock_reserved() -> None:
    result = apply(advance(), stock_reserved())
    assert (result.state, result.transition) == (S.STOCK_RESERVED, "stock_reserved")
    request = PaymentRequested(order_id=ORDER, buyer_id=BUYER, amount=TOTAL, currency="EUR")
    assert sent(result) == [request]
    assert_ids(result, "stock_reserved")
    assert result.data.payment_deadline == DEADLINE
    assert result.data.reservations == stock_reserved().reservations


def test_a_partial_checkout_asks_inventory_for_a_partial_reservation() -> None:
    result = start(checkout_started(policy=PARTIAL), NOW, POLICY)
    [request] = sent(result)
    assert isinstance(request, ReserveStockForOrder)
    assert request.policy is PARTIAL
    assert result.data.unit_prices == {"SKU-A": Decimal("5.00"), "SKU-B": Decimal("15.00")}


REJECTED_B = [RejectedLine(sku="SKU-B", quantity=1, reason=RejectionReason.INSUFFICIENT_STOCK)]


def test_row_stock_reserved_in_part() -> None:
    result = apply(advance(policy=PARTIAL), reserved_in_part())
    assert (result.state, result.transition) == (S.STOCK_RESERVED, "stock_reserved_in_part")
    # Payment is asked for the lines held, not for the checkout as submitted.
    request = PaymentRequested(order_id=ORDER, buyer_id=BUYER, amount=ADJUSTED, currency="EUR")
    assert sent(result) == [request]
    assert_ids(result, "stock_reserved_in_part")
    assert (result.data.amount, result.data.rejected) == (ADJUSTED, REJECTED_B)
    assert [r.reservation_id for r in result.data.reservations] == [R1]
    assert result.data.payment_deadline == DEADLINE


def test_a_partial_saga_confirms_on_the_adjusted_total_and_tells_orders_what_was_rejected() -> None:
    reserved = advance(reserved_in_part(), policy=PARTIAL)
    assert apply(reserved, paid(amount=TOTAL)).transition == "payment_mismatch"
    result = apply(reserved, paid(amount=ADJUSTED))
    assert (result.state, result.transition) == (S.CONFIRMED, "payment_completed")
    assert sent(result)[0] == ConfirmOrder(order_id=ORDER, payment_id=P1, rejected=REJECTED_B)


def test_a_declined_partial_saga_releases_exactly_what_it_held() -> None:
    result = apply(advance(reserved_in_part(), policy=PARTIAL), declined())
    reason = "payment failed: card declined"
    assert sent(result) == [
        release(R1, reason=reason),
        OrderFailed(order_id=ORDER, reason=reason, rejected=REJECTED_B),
    ]


def test_row_reserved_in_part_after_early_payment() -> None:
    result = apply(advance(paid(), policy=PARTIAL), reserved_in_part())
    row = "reserved_in_part_after_early_payment"
    assert (result.state, result.transition) == (S.STOCK_RESERVED, row)
    # The early payment paid for lines that are not all held: give it back, ask for the rest.
    request = PaymentRequested(order_id=ORDER, buyer_id=BUYER, amount=ADJUSTED, currency="EUR")
    assert sent(result) == [refund(P1, row), request]
    assert_ids(result, f"{row}:{P1}", row)
    assert result.data.refunded_payment_ids == [P1]
    assert apply(result, paid(P1)).outcome is Outcome.DUPLICATE
    assert apply(result, paid(P2, amount=ADJUSTED)).state is S.CONFIRMED


def test_row_rejections_not_allowed() -> None:
    result = apply(advance(paid()), reserved_in_part())
    row = "rejections_not_allowed"
    assert (result.state, result.transition) == (S.FAILED, row)
    reason = "inventory rejected lines of an all-or-nothing checkout: SKU-B"
    assert sent(result) == [
        release(R1, reason=reason),
        OrderFailed(order_id=ORDER, reason=reason, rejected=REJECTED_B),
        refund(P1, row),
    ]
    assert result.anomaly
    assert row in result.anomaly


def test_an_all_or_nothing_saga_without_early_payment_refunds_nothing() -> None:
    result = apply(advance(), reserved_in_part())
    assert result.transition == "rejections_not_allowed"
    assert not any(isinstance(m, RefundPayment) for m in sent(result))


def test_row_unreserved_after_early_payment() -> None:
    result = apply(advance(paid()), stock_failed())
    row = "unreserved_after_early_payment"
    assert (result.state, result.transition) == (S.FAILED, row)
    assert sent(result) == [OrderFailed(order_id=ORDER, reason="out of stock"), refund(P1, row)]
    assert_ids(result, row, f"{row}:{P1}")
    assert result.data.refunded_payment_ids == [P1]


def test_row_reservation_failed() -> None:
    result = apply(advance(), stock_failed())
    assert (result.state, result.transition) == (S.FAILED, "reservation_failed")
    assert sent(result) == [OrderFailed(order_id=ORDER, reason="out of stock")]
    assert_ids(result, "reservation_failed")
    assert result.data.failure_reason == "out of stock"


def test_row_early_payment_repeated() -> None:
    assert_duplicate(advance(paid()), paid(), "early_payment_repeated")


@pytest.mark.parametrize("first", [paid(), declined()], ids=["after_payment", "after_failure"])
def test_row_extra_early_payment(first: SagaEvent) -> None:
    before = advance(first)
    result = apply(before, paid(P2))
    assert (result.state, result.transition) == (S.SUBMITTED, "extra_early_payment")
    assert sent(result) == [refund(P2, "extra_early_payment")]
    assert_ids(result, f"extra_early_payment:{P2}")
    assert result.data.refunded_payment_ids == [P2]
    assert result.anomaly
    assert result.data.anomalies == [result.anomaly]
    assert (result.data.early_payment, result.data.early_payment_failure) == (
        before.data.early_payment,
        before.data.early_payment_failure,
    )  # the first outcome stays


def test_row_early_payment() -> None:
    result = apply(advance(), paid())
    assert (result.state, result.transition, result.commands) == (S.SUBMITTED, "early_payment", ())
    assert result.data.early_payment == paid()


def test_row_early_payment_mismatch() -> None:
    result = apply(advance(), paid(amount=Decimal("20.00")))
    row = "early_payment_mismatch"
    assert (result.state, result.transition) == (S.SUBMITTED, row)
    assert sent(result) == [refund(P1, row, amount=Decimal("20.00"))]
    assert_ids(result, f"{row}:{P1}")
    failure = result.data.early_payment_failure
    assert failure is not None
    assert (failure.payment_id, failure.reason) == (P1, MISMATCH)
    assert result.data.early_payment is None
    assert result.anomaly


def test_row_early_failure_repeated() -> None:
    assert_duplicate(advance(declined()), declined(P2, "other"), "early_failure_repeated")


def test_row_failure_after_early_payment() -> None:
    before = advance(paid())
    result = apply(before, declined())
    assert (result.state, result.transition) == (S.SUBMITTED, "failure_after_early_payment")
    assert result.commands == ()
    assert result.anomaly
    assert result.data == before.data.model_copy(update={"anomalies": [result.anomaly]})


def test_row_early_payment_failure() -> None:
    result = apply(advance(), declined())
    assert (result.state, result.transition, result.commands) == (
        S.SUBMITTED,
        "early_payment_failure",
        (),
    )
    assert result.data.early_payment_failure == declined()


# -- StockReserved --------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.STOCK_RESERVED, S.CONFIRMED])
def test_row_reservation_repeated(state: SagaState) -> None:
    assert_duplicate(in_state(state), stock_reserved(), "reservation_repeated")


def test_row_payment_completed() -> None:
    result = apply(in_state(S.STOCK_RESERVED), paid())
    assert (result.state, result.transition) == (S.CONFIRMED, "payment_completed")
    assert sent(result) == CONFIRMATION
    assert_ids(result, "payment_completed")
    assert (result.data.payment_id, result.data.payment_deadline) == (P1, None)


def test_row_payment_mismatch() -> None:
    result = apply(in_state(S.STOCK_RESERVED), paid(amount=Decimal("20.00")))
    row = "payment_mismatch"
    assert (result.state, result.transition) == (S.FAILED, row)
    assert sent(result) == [
        refund(P1, row, amount=Decimal("20.00")),
        release(R1, R2, reason=MISMATCH),
        OrderFailed(order_id=ORDER, reason=MISMATCH),
    ]
    assert_ids(result, f"{row}:{P1}", row, row)
    assert (result.data.payment_id, result.data.payment_deadline) == (None, None)
    assert result.data.refunded_payment_ids == [P1]
    assert result.anomaly


def test_row_payment_failed() -> None:
    result = apply(in_state(S.STOCK_RESERVED), declined())
    reason = "payment failed: card declined"
    assert (result.state, result.transition) == (S.FAILED, "payment_failed")
    assert sent(result) == [
        release(R1, R2, reason=reason),
        OrderFailed(order_id=ORDER, reason=reason),
    ]
    assert_ids(result, "payment_failed")
    assert (result.data.failure_reason, result.data.payment_deadline) == (reason, None)


def test_row_payment_timed_out() -> None:
    result = apply(in_state(S.STOCK_RESERVED), deadline_passed(DEADLINE), now=DEADLINE)
    reason = "payment timeout"
    assert (result.state, result.transition) == (S.FAILED, "payment_timed_out")
    assert sent(result) == [
        release(R1, R2, reason=reason),
        OrderFailed(order_id=ORDER, reason=reason),
    ]
    assert_ids(result, "payment_timed_out")
    assert (result.data.failure_reason, result.data.payment_deadline) == (reason, None)


@pytest.mark.parametrize(
    ("deadline", "now"),
    [(DEADLINE, DEADLINE - timedelta(microseconds=1)), (DEADLINE - timedelta(seconds=5), DEADLINE)],
    ids=["not_yet_due", "deadline_moved"],
)
def test_row_deadline_not_due(deadline: datetime, now: datetime) -> None:
    assert_duplicate(in_state(S.STOCK_RESERVED), deadline_passed(deadline), "deadline_not_due", now)


# -- Confirmed / Failed ---------------------------------------------------------------------


@pytest.mark.parametrize("before", ["confirmed", "refunded"])
def test_row_payment_repeated(before: str) -> None:
    saga = in_state(S.CONFIRMED) if before == "confirmed" else advance(stock_failed(), paid())
    assert_duplicate(saga, paid(), "payment_repeated")


def test_row_second_payment() -> None:
    before = in_state(S.CONFIRMED)
    result = apply(before, paid(P2))
    assert (result.state, result.transition) == (S.CONFIRMED, "second_payment")
    assert sent(result) == [refund(P2, "second_payment")]
    assert_ids(result, f"second_payment:{P2}")
    assert result.data.payment_id == P1
    assert result.data.refunded_payment_ids == [P2]
    assert result.anomaly
    assert result.data.anomalies == [result.anomaly]


def test_row_failure_after_confirm() -> None:
    before = in_state(S.CONFIRMED)
    result = apply(before, declined())
    assert (result.state, result.transition, result.outcome) == (
        S.CONFIRMED,
        "failure_after_confirm",
        Outcome.APPLIED,
    )
    assert result.commands == ()
    assert result.anomaly
    assert result.data == before.data.model_copy(update={"anomalies": [result.anomaly]})


@pytest.mark.parametrize("state", [S.CONFIRMED, S.FAILED])
def test_row_deadline_stale(state: SagaState) -> None:
    assert_duplicate(in_state(state), deadline_passed(DEADLINE), "deadline_stale", DEADLINE)


def test_row_late_payment() -> None:
    result = apply(in_state(S.FAILED), paid())
    assert (result.state, result.transition) == (S.FAILED, "late_payment")
    assert sent(result) == [refund(P1, "late_payment")]
    assert_ids(result, f"late_payment:{P1}")
    assert result.data.refunded_payment_ids == [P1]


def test_row_late_reservation_repeated() -> None:
    assert_duplicate(in_state(S.FAILED), stock_reserved(R2, R1), "late_reservation_repeated")


def test_row_late_reservation() -> None:
    result = apply(advance(stock_failed()), stock_reserved(R3, R1))
    reason = "the reservation arrived after the order failed"
    assert (result.state, result.transition) == (S.FAILED, "late_reservation")
    assert sent(result) == [release(R1, R3, reason=reason)]
    assert_ids(result, f"late_reservation:{R1},{R3}")
    assert [r.reservation_id for r in result.data.reservations] == [R3, R1]


def test_row_reservation_failure_repeated() -> None:
    assert_duplicate(advance(stock_failed()), stock_failed("again"), "reservation_failure_repeated")


def test_row_payment_failure_repeated() -> None:
    assert_duplicate(in_state(S.FAILED), declined(P1), "payment_failure_repeated")


# -- The table as a whole -------------------------------------------------------------------


def test_every_row_has_its_test() -> None:
    tested = {*globals(), *vars(test_operator_rows)}  # the operator rows are tested there
    missing = [row.name for row in TABLE if f"test_row_{row.name}" not in tested]
    assert not missing
    assert len({row.name for row in TABLE}) == len(TABLE), "row names are transition ids"


@pytest.mark.parametrize("state", [NO_SAGA, *ANY_SAGA])
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_pair_is_a_row_or_deliberately_rejected(state: str, trigger: str) -> None:
    is_row = classify(state, trigger) == "row"
    assert is_row != ((state, trigger) in REJECTED_PAIRS)
    assert is_row == any(state in row.during and row.when == trigger for row in TABLE)


def test_rows_of_a_pair_end_with_one_unguarded_row() -> None:
    groups: dict[tuple[str, str], list[str]] = {}
    for row in TABLE:
        for state in row.during:
            groups.setdefault((state, row.when), []).append(row.guard)
    for pair, guards in groups.items():
        # Earlier rows are tried first; an unguarded row anywhere but last hides the rest.
        assert guards[-1] == "", pair
        assert "" not in guards[:-1], pair


def test_rows_name_existing_guards_and_actions_and_finals_stay_final() -> None:
    for row in TABLE:
        for word in (row.guard, *row.then) if row.guard else row.then:
            assert callable(getattr(SagaInstance, word, None)), (row.name, word)
        if any(SagaState(s) in FINAL_STATES for s in row.during if s != NO_SAGA):
            assert row.go_to == "=", row.name


EVENT_OF: dict[str, SagaEvent] = {
    "checkout_started": checkout_started(),
    "stock_reservation_completed": stock_reserved(),
    "stock_reservation_failed": stock_failed(),
    "payment_completed": paid(),
    "payment_failed": declined(),
    "payment_deadline_passed": deadline_passed(DEADLINE),
    "operator_abort": OperatorAbort(ORDER, "alice", "stuck"),
    "operator_retry": OperatorRetry(ORDER, "alice", "stuck"),
}


@pytest.mark.parametrize(("state", "trigger"), [p for p in REJECTED_PAIRS if p[0] != NO_SAGA])
def test_rejected_pairs_return_rejected_and_change_nothing(state: str, trigger: str) -> None:
    before = in_state(SagaState(state))
    result = step(before.state, before.data, EVENT_OF[trigger], DEADLINE, POLICY)
    assert (result.outcome, result.transition, result.commands) == (Outcome.REJECTED, None, ())
    assert (result.state, result.data) == (before.state, before.data)
    assert result.reason
    assert REJECTED_PAIRS[(state, trigger)] in result.reason


def test_no_saga_pairs_are_rejected_for_the_caller_to_park() -> None:
    # With no saga there is no data to step; the caller parks these (see saga.handlers).
    no_saga = {trigger for state, trigger in REJECTED_PAIRS if state == NO_SAGA}
    assert no_saga == set(TRIGGERS) - {"checkout_started"}


def test_trigger_names_are_snake_case_class_names() -> None:
    assert {trigger_name(event) for event in EVENT_OF.values()} == set(TRIGGERS)
    assert all(trigger_name(event) == name for name, event in EVENT_OF.items())


def test_a_message_the_saga_does_not_handle_is_rejected() -> None:
    before = in_state(S.STOCK_RESERVED)
    result = step(before.state, before.data, DeductStock(order_id=ORDER), NOW, POLICY)
    assert result.outcome == Outcome.REJECTED
    assert result.data is before.data


def test_an_event_of_another_order_is_rejected() -> None:
    before = in_state(S.STOCK_RESERVED)
    other = checkout_started(order_id=P2)
    result = step(before.state, before.data, other, NOW, POLICY)
    assert result.outcome == Outcome.REJECTED
    assert "for order" in (result.reason or "")


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        start(checkout_started(), NOW.replace(tzinfo=None), POLICY)


def test_data_round_trips_through_json() -> None:
    for saga in (advance(paid()), advance(declined()), in_state(S.FAILED), in_state(S.CONFIRMED)):
        stored = saga.data.model_dump(mode="json")
        assert SagaData.model_validate(stored) == saga.data
