"""The operator rows of the saga table: abort and retry in every state, ids of re-sent commands."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import (
    OrderFailed,
    PaymentRequested,
    RefundPayment,
    ReleaseStockReservations,
    command_id,
)
from saga import pending
from saga.instance import SagaData, SagaState
from saga.machine import (
    ANY_SAGA,
    REJECTED_PAIRS,
    OperatorAbort,
    OperatorRetry,
    Outcome,
    PaymentDeadlinePassed,
    SagaEvent,
    StepResult,
    start,
    step,
)
from tests.unit.saga import (
    NOW,
    ORDER,
    P1,
    PARTIAL,
    POLICY,
    R1,
    R2,
    R3,
    TOTAL,
    advance,
    checkout_started,
    declined,
    paid,
    reserved_in_part,
    sent,
    stock_failed,
    stock_reserved,
)

S = SagaState
LATER = NOW + timedelta(seconds=20)
ABORT = OperatorAbort(ORDER, "alice", "payer unreachable")
RETRY = OperatorRetry(ORDER, "alice", "reservation lost")
WHY = "aborted by alice: payer unreachable"


def act(before: StepResult, event: SagaEvent) -> StepResult:
    """Step at LATER, and check that the same input twice gives the same result."""
    result = step(before.state, before.data, event, LATER, POLICY)
    assert step(before.state, before.data, event, LATER, POLICY) == result
    return result


def in_state(state: SagaState) -> StepResult:
    """A typical saga in this state."""
    return {
        S.SUBMITTED: advance,
        S.STOCK_RESERVED: lambda: advance(stock_reserved()),
        S.CONFIRMED: lambda: advance(stock_reserved(), paid()),
        S.FAILED: lambda: advance(stock_reserved(), declined()),
    }[state]()


def ids(result: StepResult, row: str) -> list[object]:
    return [command_id(ORDER, row, c.message.message_type) for c in result.commands]


# -- Abort --------------------------------------------------------------------------------------


def test_row_aborted_while_reserving() -> None:
    result = act(in_state(S.SUBMITTED), ABORT)
    assert (result.state, result.outcome, result.transition) == (
        S.FAILED,
        Outcome.APPLIED,
        "aborted_while_reserving",
    )
    assert sent(result) == [OrderFailed(order_id=ORDER, reason=WHY)]
    assert [c.message_id for c in result.commands] == ids(result, "aborted_while_reserving")
    assert result.data.failure_reason == WHY


def test_an_abort_before_the_reservation_refunds_an_early_payment() -> None:
    result = act(advance(paid()), ABORT)
    refund = RefundPayment(
        order_id=ORDER,
        payment_id=P1,
        amount=TOTAL,
        currency="EUR",
        reason="aborted while reserving",
    )
    assert sent(result) == [OrderFailed(order_id=ORDER, reason=WHY), refund]
    assert result.commands[1].message_id == command_id(
        ORDER, f"aborted_while_reserving:{P1}", "RefundPayment"
    )
    assert result.data.refunded_payment_ids == [P1]


def test_a_reservation_answered_after_an_abort_is_released_and_a_payment_refunded() -> None:
    aborted = act(in_state(S.SUBMITTED), ABORT)
    late = step(aborted.state, aborted.data, stock_reserved(R1, R2), LATER, POLICY)
    assert (late.state, late.transition) == (S.FAILED, "late_reservation")
    [release] = sent(late)
    assert isinstance(release, ReleaseStockReservations)
    assert release.reservation_ids == [R1, R2]
    paid_late = step(late.state, late.data, paid(), LATER, POLICY)
    assert (paid_late.transition, [type(m) for m in sent(paid_late)]) == (
        "late_payment",
        [RefundPayment],
    )
    refused = step(aborted.state, aborted.data, stock_failed(), LATER, POLICY)
    assert refused.outcome == Outcome.DUPLICATE


def test_row_aborted_while_paying() -> None:
    before = in_state(S.STOCK_RESERVED)
    assert before.data.payment_deadline is not None
    result = act(before, ABORT)
    assert (result.state, result.transition) == (S.FAILED, "aborted_while_paying")
    assert sent(result) == [
        ReleaseStockReservations(order_id=ORDER, reservation_ids=[R1, R2], reason=WHY),
        OrderFailed(order_id=ORDER, reason=WHY),
    ]
    assert [c.message_id for c in result.commands] == ids(result, "aborted_while_paying")
    assert (result.data.failure_reason, result.data.payment_deadline) == (WHY, None)
    late = step(result.state, result.data, paid(), LATER, POLICY)
    assert (late.transition, late.data.refunded_payment_ids) == ("late_payment", [P1])


# -- Retry --------------------------------------------------------------------------------------


def test_row_reservation_retried() -> None:
    first = start(checkout_started(), NOW, POLICY)
    result = act(first, RETRY)
    assert (result.state, result.outcome, result.transition) == (
        S.SUBMITTED,
        Outcome.APPLIED,
        "reservation_retried",
    )
    assert result.commands == first.commands  # the same message under the same id
    assert result.data == first.data  # a re-send is not a second request


def _requested(*events: SagaEvent, partial: bool = False) -> tuple[StepResult, StepResult]:
    """The saga after `events`, and the step among them that sent its PaymentRequested."""
    policy = PARTIAL if partial else checkout_started().policy
    saga = start(checkout_started(policy=policy), NOW, POLICY)
    sender = saga
    for event in events:
        saga = step(saga.state, saga.data, event, NOW, POLICY)
        if any(isinstance(m, PaymentRequested) for m in sent(saga)):
            sender = saga
    return saga, sender


PAYMENT_ROWS = {
    "stock_reserved": lambda: _requested(stock_reserved()),
    "stock_reserved_in_part": lambda: _requested(reserved_in_part(), partial=True),
    "reserved_in_part_after_early_payment": lambda: _requested(
        paid(), reserved_in_part(), partial=True
    ),
}


@pytest.mark.parametrize("row", list(PAYMENT_ROWS))
def test_row_payment_request_retried(row: str) -> None:
    before, sender = PAYMENT_ROWS[row]()
    assert (before.state, sender.transition) == (S.STOCK_RESERVED, row)
    [original] = [c for c in sender.commands if isinstance(c.message, PaymentRequested)]
    result = act(before, RETRY)
    assert (result.state, result.transition) == (S.STOCK_RESERVED, "payment_request_retried")
    assert result.commands == (original,)
    assert original.message_id == command_id(ORDER, row, "PaymentRequested")
    # The payer gets a full timeout from the re-sent request.
    assert result.data.payment_deadline == LATER + POLICY.payment_timeout
    assert result.data == before.data.model_copy(
        update={"payment_deadline": LATER + POLICY.payment_timeout}
    )


@pytest.mark.parametrize("row", list(PAYMENT_ROWS))
def test_sagas_stored_before_the_sending_row_was_kept_retry_under_the_same_id(row: str) -> None:
    before, sender = PAYMENT_ROWS[row]()
    stored = before.data.model_dump(mode="json")
    del stored["payment_requested_by"]
    legacy = SagaData.model_validate(stored)
    assert legacy.payment_requested_by is None
    [original] = [c for c in sender.commands if isinstance(c.message, PaymentRequested)]
    result = step(before.state, legacy, RETRY, LATER, POLICY)
    assert result.commands == (original,)


def test_a_payment_deadline_that_passed_before_the_retry_is_moved_and_goes_stale() -> None:
    before = in_state(S.STOCK_RESERVED)
    old = before.data.payment_deadline
    assert old is not None
    retried = step(before.state, before.data, RETRY, old + timedelta(seconds=1), POLICY)
    stale = step(retried.state, retried.data, PaymentDeadlinePassed(ORDER, old), old, POLICY)
    assert (stale.outcome, stale.transition) == (Outcome.DUPLICATE, "deadline_not_due")


# -- Every action in every state ------------------------------------------------------------------


@pytest.mark.parametrize("state", [SagaState(s) for s in ANY_SAGA])
@pytest.mark.parametrize("event", [ABORT, RETRY], ids=["abort", "retry"])
def test_every_action_in_every_state(state: SagaState, event: SagaEvent) -> None:
    before = in_state(state)
    result = act(before, event)
    awaited = pending.awaited(before.state, before.data)
    if state in (S.CONFIRMED, S.FAILED):
        action = "abort" if isinstance(event, OperatorAbort) else "retry"
        why = f"the saga is final ({state.value}): nothing to {action}"
        assert REJECTED_PAIRS[(state.value, f"operator_{action}")] == why
        assert (result.outcome, result.commands, result.data) == (Outcome.REJECTED, (), before.data)
        assert why in (result.reason or "")
        assert awaited is None
        return
    assert result.outcome == Outcome.APPLIED
    assert awaited is not None
    if isinstance(event, OperatorRetry):
        assert result.state == state
        assert result.commands == (awaited,)
    else:
        assert result.state == S.FAILED
        assert result.data.failure_reason == WHY


def test_the_awaited_command_is_the_one_first_sent() -> None:
    first = start(checkout_started(), NOW, POLICY)
    assert pending.awaited(first.state, first.data) == first.commands[0]
    reserved = step(first.state, first.data, stock_reserved(R3), NOW, POLICY)
    assert pending.awaited(reserved.state, reserved.data) == reserved.commands[0]
