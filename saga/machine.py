"""The checkout saga as ONE declarative table bound to `transitions`; pure: imports no I/O or service."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Literal, NamedTuple, cast
from uuid import UUID

from transitions import EventData, Machine, MachineError

from contracts import CheckoutStarted, PaymentCompleted, RefundPayment, command_id
from saga.actions import SagaInstance
from saga.instance import (
    OperatorAbort,
    OperatorEvent,
    OperatorRetry,
    Outcome,
    Outgoing,
    PaymentDeadlinePassed,
    SagaData,
    SagaEvent,
    SagaPolicy,
    SagaState,
)

__all__ = [
    "ANY_SAGA",
    "CONFLICT",
    "DUPLICATE",
    "NO_SAGA",
    "OPERATOR_TRIGGERS",
    "ORPHAN_REFUND",
    "REJECTED_PAIRS",
    "SAME",
    "TABLE",
    "TRIGGERS",
    "OperatorAbort",
    "OperatorEvent",
    "OperatorRetry",
    "Outcome",
    "Outgoing",
    "PaymentDeadlinePassed",
    "Row",
    "SagaEvent",
    "SagaPolicy",
    "StepResult",
    "classify",
    "refund_orphan",
    "start",
    "step",
    "trigger_name",
]


@dataclass(frozen=True)
class StepResult:
    """The saga after one event; `reason` says why for DUPLICATE and REJECTED outcomes."""

    state: SagaState
    data: SagaData
    commands: tuple[Outgoing, ...]
    outcome: Outcome
    transition: str | None
    reason: str | None
    anomaly: str | None = None  # set when the row recorded an anomaly: count it and alert


class Row(NamedTuple):
    """One line of the table; `name` names the transition in logs, results and command ids."""

    name: str
    during: tuple[str, ...]
    when: str
    guard: str  # a SagaInstance predicate, "" = otherwise; the first row that holds wins
    go_to: str
    then: tuple[str, ...]  # SagaInstance actions, applied in this order


NO_SAGA = "(none)"  # pseudo-state: no saga exists for the order yet
SAME = "="  # go to: stay where you are (an internal transition)
SUB, RES, CON, FAIL = (s.value for s in SagaState)
ANY_SAGA = (SUB, RES, CON, FAIL)
# Triggers: the snake_case of the incoming message classes, plus the internal events of the
# deadline poller and of operators (saga/operator.py).
CHECKOUT = "checkout_started"
STOCK_OK = "stock_reservation_completed"
STOCK_FAIL = "stock_reservation_failed"
PAID = "payment_completed"
DECLINED = "payment_failed"
DEADLINE = "payment_deadline_passed"
ABORT = "operator_abort"
RETRY = "operator_retry"
OPERATOR_TRIGGERS = (ABORT, RETRY)
TRIGGERS = (CHECKOUT, STOCK_OK, STOCK_FAIL, PAID, DECLINED, DEADLINE, *OPERATOR_TRIGGERS)
CONFIRM = ("confirm_order", "deduct_stock", "clear_cart")
FAIL_RESERVED = ("clear_deadline", "release_stock", "fail_order")
DUPLICATE = ("ignore_duplicate",)
CONFLICT = "checkout_conflicts"
"""The row that refuses a CheckoutStarted contradicting its saga's (counted as a conflict)."""
ORPHAN_REFUND = "orphan_payment_refunded"
"""Not a row: a payment for an order with no saga, past the orphan grace, is given back."""

# DESIGN.md §3 row by row. "early": a payment outcome that arrived before the reservation outcome.
# fmt: off
TABLE: tuple[Row, ...] = (
    #   name                              during       when        guard                 go to  then
    Row("create_saga",                    (NO_SAGA,),  CHECKOUT,   "",                   SUB,   ("reserve_stock",)),
    # Another checkout under an order id in use: refused (dead-lettered), the first one stands.
    Row(CONFLICT,                         ANY_SAGA,    CHECKOUT,   "checkout_differs",   SAME,  ("refuse_checkout",)),
    Row("checkout_repeated",              ANY_SAGA,    CHECKOUT,   "",                   SAME,  DUPLICATE),
    # Submitted
    Row("rejections_not_allowed",         (SUB,),      STOCK_OK,   "rejected_against_policy", FAIL, ("record_reservations", "record_rejections", "note_anomaly", "release_stock", "fail_order", "refund_any_early_payment")),
    Row("reserved_after_early_failure",   (SUB,),      STOCK_OK,   "early_failure",      FAIL,  ("record_reservations", "record_rejections", "release_stock", "fail_order")),
    Row("reserved_in_part_after_early_payment", (SUB,), STOCK_OK,  "early_payment_and_rejections", RES, ("record_reservations", "record_rejections", "refund_early_payment", "request_payment")),
    Row("reserved_after_early_payment",   (SUB,),      STOCK_OK,   "early_payment",      CON,   ("record_reservations", "accept_early_payment", *CONFIRM)),
    Row("stock_reserved_in_part",         (SUB,),      STOCK_OK,   "lines_rejected",     RES,   ("record_reservations", "record_rejections", "request_payment")),
    Row("stock_reserved",                 (SUB,),      STOCK_OK,   "",                   RES,   ("record_reservations", "request_payment")),
    Row("unreserved_after_early_payment", (SUB,),      STOCK_FAIL, "early_payment",      FAIL,  ("fail_order", "refund_early_payment")),
    Row("reservation_failed",             (SUB,),      STOCK_FAIL, "",                   FAIL,  ("fail_order",)),
    # In StockReserved too: an early payment refunded after a partial reservation, redelivered.
    Row("early_payment_repeated",         (SUB, RES),  PAID,       "known_payment",      SAME,  DUPLICATE),
    Row("extra_early_payment",            (SUB,),      PAID,       "early_outcome",      SAME,  ("note_anomaly", "refund_payment")),
    Row("early_payment",                  (SUB,),      PAID,       "payment_matches",    SAME,  ("remember_payment",)),
    Row("early_payment_mismatch",         (SUB,),      PAID,       "",                   SAME,  ("note_anomaly", "refund_payment", "remember_mismatch_as_failure")),
    Row("early_failure_repeated",         (SUB,),      DECLINED,   "early_failure",      SAME,  DUPLICATE),
    Row("failure_after_early_payment",    (SUB,),      DECLINED,   "early_payment",      SAME,  ("note_anomaly",)),
    Row("early_payment_failure",          (SUB,),      DECLINED,   "",                   SAME,  ("remember_failure",)),
    # StockReserved
    Row("reservation_repeated",           (RES, CON),  STOCK_OK,   "",                   SAME,  DUPLICATE),
    Row("payment_completed",              (RES,),      PAID,       "payment_matches",    CON,   ("accept_payment", "clear_deadline", *CONFIRM)),
    Row("payment_mismatch",               (RES,),      PAID,       "",                   FAIL,  ("note_anomaly", "refund_payment", *FAIL_RESERVED)),
    Row("payment_failed",                 (RES,),      DECLINED,   "",                   FAIL,  FAIL_RESERVED),
    Row("payment_timed_out",              (RES,),      DEADLINE,   "deadline_due",       FAIL,  FAIL_RESERVED),
    Row("deadline_not_due",               (RES,),      DEADLINE,   "",                   SAME,  DUPLICATE),
    # Confirmed / Failed
    Row("payment_repeated",               (CON, FAIL), PAID,       "known_payment",      SAME,  DUPLICATE),
    Row("second_payment",                 (CON,),      PAID,       "",                   SAME,  ("note_anomaly", "refund_payment")),
    Row("failure_after_confirm",          (CON,),      DECLINED,   "",                   SAME,  ("note_anomaly",)),
    Row("deadline_stale",                 (CON, FAIL), DEADLINE,   "",                   SAME,  DUPLICATE),
    Row("late_payment",                   (FAIL,),     PAID,       "",                   SAME,  ("refund_payment",)),
    Row("late_reservation_repeated",      (FAIL,),     STOCK_OK,   "known_reservations", SAME,  DUPLICATE),
    Row("late_reservation",               (FAIL,),     STOCK_OK,   "",                   SAME,  ("record_reservations", "release_late_reservations")),
    Row("reservation_failure_repeated",   (FAIL,),     STOCK_FAIL, "",                   SAME,  DUPLICATE),
    Row("payment_failure_repeated",       (FAIL,),     DECLINED,   "",                   SAME,  DUPLICATE),
    # Operators (saga/operator.py), on a saga that is not final. An abort fails it as a payment
    # failure would; a reservation answered after it is released by late_reservation, a payment
    # after it refunded by late_payment. A retry re-sends the awaited command under its first id.
    Row("aborted_while_reserving",        (SUB,),      ABORT,      "",                   FAIL,  ("fail_order", "refund_any_early_payment")),
    Row("aborted_while_paying",           (RES,),      ABORT,      "",                   FAIL,  FAIL_RESERVED),
    Row("reservation_retried",            (SUB,),      RETRY,      "",                   SAME,  ("resend_reservation",)),
    Row("payment_request_retried",        (RES,),      RETRY,      "",                   SAME,  ("resend_payment_request",)),
)

_NO_SAGA_YET = "no saga exists for this order; only CheckoutStarted creates one"
REJECTED_PAIRS: Mapping[tuple[str, str], str] = MappingProxyType({
    (NO_SAGA, STOCK_OK):   _NO_SAGA_YET,
    (NO_SAGA, STOCK_FAIL): _NO_SAGA_YET,
    (NO_SAGA, PAID):       _NO_SAGA_YET + "; a human must refund this payment",
    (NO_SAGA, DECLINED):   _NO_SAGA_YET,
    (NO_SAGA, DEADLINE):   _NO_SAGA_YET,
    (NO_SAGA, ABORT):      _NO_SAGA_YET,
    (NO_SAGA, RETRY):      _NO_SAGA_YET,
    (SUB, DEADLINE):       "no payment deadline exists before stock is reserved",
    (RES, STOCK_FAIL):     "inventory already reported this order reserved",
    (CON, STOCK_FAIL):     "inventory already reported this order reserved, and it was sold",
    (CON, ABORT):          "the saga is final (Confirmed): nothing to abort",
    (FAIL, ABORT):         "the saga is final (Failed): nothing to abort",
    (CON, RETRY):          "the saga is final (Confirmed): nothing to retry",
    (FAIL, RETRY):         "the saga is final (Failed): nothing to retry",
})
"""The pairs with no row, on purpose: each contradicts what the saga knows, so a human looks."""
# fmt: on

_ROW_PAIRS = frozenset((state, row.when) for row in TABLE for state in row.during)


def classify(state: str, trigger: str) -> Literal["row", "rejected"]:
    """Whether a (state, trigger) pair has rows in TABLE; every other pair is rejected."""
    return "row" if (state, trigger) in _ROW_PAIRS else "rejected"


@functools.cache
def _snake(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def trigger_name(event: SagaEvent) -> str:
    """The saga trigger of an event: the snake_case of its class name."""
    return _snake(type(event).__name__)


def _word(name: str) -> Callable[[SagaInstance], object]:
    word: Callable[[SagaInstance], object] = getattr(SagaInstance, name)  # fails at build time
    return word


def _conditions(row: Row) -> list[str | Callable[..., bool | None]]:
    if not row.guard:
        return []
    guard = _word(row.guard)
    return [lambda event_data: bool(guard(cast(SagaInstance, event_data.model)))]


def _apply(row: Row) -> Callable[[EventData], None]:
    actions = [_word(name) for name in row.then]

    def apply(event_data: EventData) -> None:
        instance = cast(SagaInstance, event_data.model)
        instance.transition = row.name
        for action in actions:
            action(instance)

    return apply


@functools.cache
def _machine() -> Machine:
    """The table bound to `transitions`, built once per process on first use."""
    machine = Machine(
        model=None,
        states=[NO_SAGA, *ANY_SAGA],
        initial=NO_SAGA,
        auto_transitions=False,
        send_event=True,
    )
    for row in TABLE:
        machine.add_transition(
            row.when,
            list(row.during),
            None if row.go_to == SAME else row.go_to,
            conditions=_conditions(row),
            after=_apply(row),
        )
    return machine


def _fire(source: str, instance: SagaInstance) -> str | None:
    """Run the event through the machine from `source`: None when a row applied, else why not."""
    trigger, machine, kind = trigger_name(instance.event), _machine(), type(instance.event).__name__
    if trigger not in machine.events:
        return f"{kind} is not an event the saga handles"
    # Firing the Event on an unregistered model skips add_model's per-call binding of a dozen
    # convenience methods (a third of a step's cost) and shares no mutable list between calls.
    machine.set_state(source, model=instance)
    try:
        if machine.events[trigger].trigger(instance):
            return None
    except MachineError:
        why = REJECTED_PAIRS.get((source, trigger), "missing from REJECTED_PAIRS")
        return f"{kind} is not expected in {source}: {why}"
    return f"no row's guard holds for {kind} in {source}"


def _result(instance: SagaInstance) -> StepResult:
    return StepResult(
        state=SagaState(instance.state),
        data=instance.data,
        commands=tuple(instance.commands),
        outcome=instance.outcome,
        transition=instance.transition,
        reason=instance.reason,
        anomaly=instance.anomaly,
    )


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def start(
    event: CheckoutStarted,
    now: datetime,
    policy: SagaPolicy,
    refunded: Sequence[UUID] = (),
) -> StepResult:
    """Create a saga for a checkout: the "(none) + CheckoutStarted" row.

    `refunded` names payments of this order refunded as orphans before the saga existed
    (refund_orphan): the saga knows them as refunded, so a re-sent copy is a duplicate.
    Raises pydantic's ValidationError (a ValueError) for a checkout whose total no payment can
    carry: such a message can never succeed, so the caller dead-letters it.
    """
    _check_aware(now)
    data = SagaData.from_checkout(event)
    if refunded:
        data = data.model_copy(update={"refunded_payment_ids": list(refunded)})
    instance = SagaInstance(data, event, now, policy)
    rejection = _fire(NO_SAGA, instance)
    if rejection is not None:
        raise RuntimeError(f"the table cannot start a saga: {rejection}")
    return _result(instance)


def step(
    state: SagaState, data: SagaData, event: SagaEvent, now: datetime, policy: SagaPolicy
) -> StepResult:
    """Apply one event to a saga; an unlisted pair, or a row that refuses, is REJECTED, not raised."""
    _check_aware(now)
    state = SagaState(state)
    rejection: str | None = f"{type(event).__name__} is for order {event.order_id}"
    if event.order_id == data.order_id:
        instance = SagaInstance(data, event, now, policy)
        rejection = _fire(state.value, instance)
        if rejection is None:
            return _result(instance)
    return StepResult(state, data, (), Outcome.REJECTED, None, rejection)


def refund_orphan(payment: PaymentCompleted) -> Outgoing:
    """The refund of a payment whose order still has no saga once the orphan grace passed.

    Parking it as a dead letter would keep the payer's money until an operator acts, although
    its CheckoutStarted may only be stuck in a backlog: given back, the saga that starts later
    asks for the payment again. The id depends on the payment, so a repeat refunds nothing more.
    """
    message = RefundPayment(
        order_id=payment.order_id,
        payment_id=payment.payment_id,
        amount=payment.amount,
        currency=payment.currency,
        reason="payment for an order without a checkout",
    )
    transition = f"{ORPHAN_REFUND}:{payment.payment_id}"
    return Outgoing(message, command_id(payment.order_id, transition, message.message_type))
