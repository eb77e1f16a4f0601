"""Property tests: any order of any events, duplicates included, keeps the saga's invariants."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    ConfirmOrder,
    DeductStock,
    Message,
    OrderFailed,
    PaymentCompleted,
    PaymentRequested,
    RefundPayment,
    ReleaseStockReservations,
    ReserveStockForOrder,
)
from saga.instance import FINAL_STATES, SagaData, SagaState
from saga.machine import (
    CONFLICT,
    SAME,
    TABLE,
    OperatorAbort,
    OperatorRetry,
    Outcome,
    PaymentDeadlinePassed,
    SagaEvent,
    StepResult,
    classify,
    start,
    step,
    trigger_name,
)
from tests.unit.saga import (
    ADJUSTED,
    NOW,
    P1,
    P2,
    P3,
    POLICY,
    R1,
    R2,
    R3,
    TOTAL,
    checkout_started,
    deadline_passed,
    declined,
    paid,
    reserved_in_part,
    stock_failed,
    stock_reserved,
)

S = SagaState
RETRIES = ("reservation_retried", "payment_request_retried")
PRICES = {i.sku: i.unit_price for i in checkout_started().items}
M = TypeVar("M", bound=Message)
EDGES = {
    (source, row.when, source if row.go_to == SAME else row.go_to)
    for row in TABLE
    for source in row.during
}


def event_for(kind: str, data: SagaData, now: datetime) -> SagaEvent:
    """A concrete event of a symbolic kind; deadlines follow what the saga holds."""
    deadline = data.payment_deadline or now
    events: dict[str, SagaEvent] = {
        "checkout": checkout_started(policy=data.policy),
        "checkout_conflicting": checkout_started(policy=_other(data.policy)),
        "stock_ok": stock_reserved(),
        "stock_ok_other": stock_reserved(R3),
        "stock_ok_in_part": reserved_in_part(),
        "stock_fail": stock_failed(),
        "paid_p1": paid(P1),
        "paid_p2": paid(P2),
        "paid_p2_adjusted": paid(P2, amount=ADJUSTED),
        "paid_wrong_amount": paid(P3, amount=Decimal("1.00")),
        "paid_wrong_currency": paid(P3, currency="USD"),
        "declined": declined(),
        "declined_p1": declined(P1),
        "deadline": deadline_passed(deadline),
        "deadline_moved": deadline_passed(deadline - timedelta(seconds=1)),
        "abort": OperatorAbort(data.order_id, "alice", "stuck"),
        "retry": OperatorRetry(data.order_id, "alice", "stuck"),
    }
    return events[kind]


def _other(policy: CheckoutPolicy) -> CheckoutPolicy:
    """The policy a saga was not started with: its checkout repeated with it conflicts."""
    return next(p for p in CheckoutPolicy if p is not policy)


KINDS = st.sampled_from(
    [
        "checkout", "checkout_conflicting", "stock_ok", "stock_ok_other", "stock_ok_in_part", "stock_fail", "paid_p1",
        "paid_p2", "paid_p2_adjusted", "paid_wrong_amount", "paid_wrong_currency", "declined",
        "declined_p1", "deadline", "deadline_moved", "abort", "retry",
    ]
)  # fmt: skip


@dataclass
class History:
    """Everything one saga sent and saw, to check invariants across steps."""

    sent: list[Message] = field(default_factory=list)
    ids: list[UUID] = field(default_factory=list)
    payments: set[UUID] = field(default_factory=set)
    resent: int = 0

    def record(self, result: StepResult) -> None:
        if result.transition in RETRIES:
            # A retry sends nothing new: exactly a command sent before, under the same id.
            for command in result.commands:
                assert command.message == self.sent[self.ids.index(command.message_id)]
            self.resent += len(result.commands)
            return
        for command in result.commands:
            self.sent.append(command.message)
            self.ids.append(command.message_id)

    def of(self, kind: type[M]) -> list[M]:
        return [m for m in self.sent if isinstance(m, kind)]


def checked_step(before: StepResult, event: SagaEvent, now: datetime, seen: History) -> StepResult:
    """One step, with the invariants that hold after every step."""
    result = step(before.state, before.data, event, now, POLICY)
    stored = SagaData.model_validate_json(before.data.model_dump_json())
    assert step(before.state, stored, event, now, POLICY) == result  # pure, and survives storage
    pair = (before.state.value, trigger_name(event))
    refused = result.transition == CONFLICT  # a row that refuses changes nothing either
    assert refused == (isinstance(event, CheckoutStarted) and event.policy != before.data.policy)
    if refused or classify(*pair) == "rejected":
        assert result.outcome == Outcome.REJECTED
        assert result.commands == ()
        assert (result.state, result.data) == (before.state, before.data)
    else:
        assert result.outcome != Outcome.REJECTED, result.reason
        assert (*pair, result.state.value) in EDGES
    if before.state in FINAL_STATES:
        assert result.state == before.state
    if result.transition == "payment_timed_out":
        assert isinstance(event, PaymentDeadlinePassed)
        assert event.deadline == before.data.payment_deadline
        assert now >= event.deadline
    if result.outcome == Outcome.DUPLICATE:
        assert result.commands == ()
        assert result.data == before.data
    data = result.data
    assert data.reservation_requests <= 1
    assert data.early_payment is None or data.early_payment_failure is None
    if result.state == S.CONFIRMED:
        assert data.reservations
        assert data.payment_id in {P1, P2}
    if result.state in FINAL_STATES:
        assert data.payment_deadline is None
    # The amount only ever drops, by exactly the rejected lines' value, and only when partial.
    rejected_value = sum((PRICES[r.sku] * r.quantity for r in data.rejected), Decimal(0))
    if data.policy is CheckoutPolicy.PARTIAL or not data.rejected:
        assert data.amount == TOTAL - rejected_value
    else:
        assert result.state == S.FAILED  # all or nothing: a rejection fails the checkout
    for message in (m.message for m in result.commands):
        if isinstance(message, PaymentRequested):
            assert message.amount == data.amount
        if isinstance(message, ConfirmOrder | OrderFailed):
            assert message.rejected == data.rejected
    if isinstance(event, PaymentCompleted):
        seen.payments.add(event.payment_id)
    seen.record(result)
    return result


def drive_to_final(saga: StepResult, reserve: str, now: datetime, seen: History) -> StepResult:
    """Finish a saga the way inventory ("all", "part" or "none") and the poller would."""
    if saga.state == S.SUBMITTED:
        answers = {"all": stock_reserved(), "part": reserved_in_part(), "none": stock_failed()}
        event = answers[reserve]
        saga = checked_step(saga, event, now, seen)
    if saga.state == S.STOCK_RESERVED:
        deadline = saga.data.payment_deadline
        assert deadline is not None
        saga = checked_step(saga, deadline_passed(deadline), deadline, seen)
    assert saga.state in FINAL_STATES
    return saga


def assert_final_invariants(saga: StepResult, seen: History) -> None:
    assert len(seen.of(ReserveStockForOrder)) == 1
    assert len(seen.ids) == len(set(seen.ids)), "a command id repeated across transitions"
    refunds = Counter(m.payment_id for m in seen.of(RefundPayment))
    for payment_id in seen.payments:
        kept = saga.state == S.CONFIRMED and payment_id == saga.data.payment_id
        assert refunds[payment_id] == (0 if kept else 1), payment_id
    assert set(refunds) <= seen.payments
    confirmed, failed = seen.of(ConfirmOrder), seen.of(OrderFailed)
    assert (len(confirmed), len(failed)) == ((1, 0) if saga.state == S.CONFIRMED else (0, 1))
    released = {i for m in seen.of(ReleaseStockReservations) for i in m.reservation_ids}
    if saga.state == S.CONFIRMED:
        assert len(seen.of(DeductStock)) == 1
        assert not released
        charged = [p.amount for p in seen.of(PaymentRequested)]
        assert charged in ([], [saga.data.amount])  # [] when paid early, in full
    else:
        assert not seen.of(DeductStock)
        assert {r.reservation_id for r in saga.data.reservations} <= released


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.tuples(KINDS, st.integers(min_value=0, max_value=40)), max_size=30),
    st.sampled_from(["all", "part", "none"]),
    st.sampled_from(list(CheckoutPolicy)),
)
def test_any_event_sequence_keeps_the_invariants(
    events: list[tuple[str, int]], reserve_at_end: str, policy: CheckoutPolicy
) -> None:
    seen, now = History(), NOW
    saga = start(checkout_started(policy=policy), now, POLICY)
    seen.record(saga)
    for kind, seconds in events:
        now += timedelta(seconds=seconds)
        saga = checked_step(saga, event_for(kind, saga.data, now), now, seen)
    saga = drive_to_final(saga, reserve_at_end, now, seen)
    assert_final_invariants(saga, seen)


def test_known_reservations_are_released_once_even_if_inventory_answers_twice() -> None:
    # A regression guard for the property above: R1 and R2 are released by the failure, R3 late.
    seen = History()
    saga = start(checkout_started(), NOW, POLICY)
    seen.record(saga)
    for event in (stock_reserved(R1, R2), declined(), stock_reserved(R3), stock_reserved(R3)):
        saga = checked_step(saga, event, NOW, seen)
    assert [m.reservation_ids for m in seen.of(ReleaseStockReservations)] == [[R1, R2], [R3]]
