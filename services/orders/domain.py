"""Order rules, pure: the vendor orders a checkout becomes, what the saga's commands do to them.

A checkout group (the CheckoutStarted's order_id) is split into one order per vendor; the saga
commands the group, and these rules decide per vendor order, then whether the group is final.
A priced checkout's vendor order costs its lines' charges plus its share of the shipping
(contracts.vendor_orders); a rejected line takes its charge off, and the shipping share of a
vendor order left with no line moves to the others, so the confirmed orders add up to the charge.
Imports no I/O library; the repository stores what these functions decide.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from contracts import (
    AppliedDiscount,
    CheckoutGroupCompleted,
    CheckoutStarted,
    ConfirmOrder,
    GroupOutcome,
    LineCharge,
    LineItem,
    OrderConfirmed,
    OrderCreated,
    OrderFailed,
    OrderMarkedFailed,
    RejectedLine,
    VendorOrderResult,
)
from contracts.vendor_orders import (
    is_marketplace,
    lines_total,
    shipping_after_rejections,
    split,
)

# contracts.types.Reason: a longer reason would not validate on the wire.
_REASON_MAX = 500
ZERO = Decimal("0.00")


class OrderStatus(StrEnum):
    """Life of an order: created, then confirmed or failed (both final)."""

    CREATED = "created"
    CONFIRMED = "confirmed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Order:
    """One vendor order of a checkout group: its line snapshot and where it stands."""

    order_id: uuid.UUID
    checkout_group_id: uuid.UUID
    vendor_id: str | None
    buyer_id: str
    currency: str
    marketplace: bool
    """Whether its checkout uses vendors or the partial policy: only then do events say so."""
    items: tuple[LineItem, ...]
    status: OrderStatus = OrderStatus.CREATED
    payment_id: uuid.UUID | None = None
    failure_reason: str | None = None
    rejected: tuple[RejectedLine, ...] = ()
    charges: tuple[LineCharge, ...] = ()
    """Its lines' charges when its checkout was priced; empty: its lines cost their price."""
    shipping_share: Decimal = ZERO
    """Its share of a priced checkout's shipping charge, as checked out."""
    settled_total: Decimal | None = None
    """The adjusted total its group settled when it became final (None: not yet)."""

    @property
    def total(self) -> Decimal:
        """What the order costs as checked out (priced: its lines' charges and shipping share).

        Unpriced: the sum of quantity x unit price over every line.
        """
        if self.charges:
            return sum((c.charge for c in self.charges), self.shipping_share)
        return lines_total(self.items)

    @property
    def accepted(self) -> tuple[LineItem, ...]:
        """The lines not rejected: what is delivered and paid for."""
        gone = {line.sku for line in self.rejected}
        return tuple(item for item in self.items if item.sku not in gone)

    @property
    def accepted_value(self) -> Decimal:
        """What the accepted lines cost: their charges when priced, else quantity x unit price."""
        if not self.charges:
            return lines_total(self.accepted)
        kept = {item.sku for item in self.accepted}
        return sum((c.charge for c in self.charges if c.sku in kept), ZERO)

    @property
    def adjusted_total(self) -> Decimal:
        """The total after rejected lines, as its group settled it when the order became final.

        Before that: its accepted lines plus its own shipping share while it keeps any line.
        """
        if self.settled_total is not None:
            return self.settled_total
        return self.accepted_value + (self.shipping_share if self.accepted else ZERO)

    @property
    def final(self) -> bool:
        """Confirmed or failed: no command changes it any more."""
        return self.status is not OrderStatus.CREATED


@dataclass(frozen=True, slots=True)
class Confirm:
    """The saga's ConfirmOrder, as a rule input: paid by this payment, without these lines."""

    payment_id: uuid.UUID
    rejected: tuple[RejectedLine, ...] = ()


@dataclass(frozen=True, slots=True)
class Fail:
    """The saga's OrderFailed, as a rule input: failed for this reason, these lines rejected."""

    reason: str
    rejected: tuple[RejectedLine, ...] = ()


Command = Confirm | Fail


@dataclass(frozen=True, slots=True)
class Change:
    """Apply this: the new status and what it records."""

    status: OrderStatus
    payment_id: uuid.UUID | None = None
    failure_reason: str | None = None
    rejected: tuple[RejectedLine, ...] = ()


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The command repeats a final state the order already has: nothing to do."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The command contradicts the order's final state and can never apply: this is why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Step:
    """What one command does to a group: the orders it changed, and the event if it ends it."""

    changed: tuple[Order, ...]
    completed: CheckoutGroupCompleted | None


def new_orders(event: CheckoutStarted) -> tuple[Order, ...]:
    """The vendor orders a checkout creates, each with its lines as the buyer saw them."""
    marketplace = is_marketplace(event)
    return tuple(
        Order(
            order_id=part.order_id,
            checkout_group_id=event.order_id,
            vendor_id=part.vendor_id,
            buyer_id=event.buyer_id,
            currency=event.currency,
            marketplace=marketplace,
            items=part.items,
            charges=part.charges,
            shipping_share=part.shipping_share,
        )
        for part in split(event)
    )


def command_of(message: ConfirmOrder | OrderFailed) -> Command:
    """The rule input of a saga command."""
    if isinstance(message, ConfirmOrder):
        return Confirm(payment_id=message.payment_id, rejected=tuple(message.rejected))
    return Fail(reason=message.reason, rejected=tuple(message.rejected))


def narrowed(order: Order, command: Command) -> Command:
    """The group's command as it concerns one vendor order: only its own rejected lines.

    Confirming an order none of whose lines is left fails it instead: nothing is delivered.
    """
    skus = {item.sku for item in order.items}
    own: dict[str, RejectedLine] = {}
    for line in command.rejected:
        if line.sku in skus:
            own.setdefault(line.sku, line)
    rejected = tuple(own.values())
    if isinstance(command, Fail):
        return Fail(command.reason, rejected)
    if own.keys() == skus:
        return Fail(_every_line_rejected(rejected), rejected)
    return Confirm(command.payment_id, rejected)


def _every_line_rejected(rejected: tuple[RejectedLine, ...]) -> str:
    lines = ", ".join(f"{line.sku} ({line.reason.value})" for line in rejected)
    reason = f"every line was rejected: {lines}"
    return reason if len(reason) <= _REASON_MAX else reason[: _REASON_MAX - 1] + "…"


def decide(order: Order, command: Command) -> Change | Unchanged | Rejected:
    """What a command of its group does to one order; confirmed and failed are final."""
    command = narrowed(order, command)
    if order.status is OrderStatus.CREATED:
        if isinstance(command, Confirm):
            return Change(
                OrderStatus.CONFIRMED, payment_id=command.payment_id, rejected=command.rejected
            )
        return Change(OrderStatus.FAILED, failure_reason=command.reason, rejected=command.rejected)
    if order.status is OrderStatus.CONFIRMED:
        if isinstance(command, Fail):
            return Rejected(
                f"order {order.order_id} is confirmed (payment {order.payment_id});"
                f" it cannot be marked failed ({command.reason})"
            )
        if command.payment_id != order.payment_id:
            return Rejected(
                f"order {order.order_id} is confirmed with payment {order.payment_id};"
                f" it cannot be confirmed again with payment {command.payment_id}"
            )
        return Unchanged()
    if isinstance(command, Confirm):
        return Rejected(
            f"order {order.order_id} failed ({order.failure_reason});"
            f" it cannot be confirmed with payment {command.payment_id}"
        )
    # A second failure keeps the first reason: the order failed once, for that.
    return Unchanged()


def applied(order: Order, change: Change) -> Order:
    """The order after a change."""
    return dataclasses.replace(
        order,
        status=change.status,
        payment_id=change.payment_id,
        failure_reason=change.failure_reason,
        rejected=change.rejected,
    )


def step(group: Sequence[Order], command: Command) -> Step | Rejected:
    """What a command does to every vendor order of its group; one contradiction rejects it all."""
    after: list[Order] = []
    changed: set[uuid.UUID] = set()
    for order in group:
        outcome = decide(order, command)
        if isinstance(outcome, Rejected):
            return outcome
        if isinstance(outcome, Change):
            order = applied(order, outcome)
            changed.add(order.order_id)
        after.append(order)
    after = settled(after, changed)
    return Step(tuple(o for o in after if o.order_id in changed), completion(group, after))


def settled(group: Sequence[Order], changed: set[uuid.UUID]) -> list[Order]:
    """The group with the changed orders' adjusted totals fixed: accepted lines plus shipping.

    A vendor order left with no line ships nothing: its shipping share moves to the orders that
    kept lines (contracts.vendor_orders.shipping_after_rejections), because the saga charges
    the shipping while any line is held.
    """
    shares = shipping_after_rejections(
        [o.shipping_share for o in group],
        [o.accepted_value if o.accepted else None for o in group],
    )
    return [
        dataclasses.replace(o, settled_total=o.accepted_value + share)
        if o.order_id in changed
        else o
        for o, share in zip(group, shares, strict=True)
    ]


def completion(before: Sequence[Order], after: Sequence[Order]) -> CheckoutGroupCompleted | None:
    """The group's final event, when this step made its last vendor order final (else None).

    Its orders are listed as given: by order id, the order the repository locks them in.
    """
    if not after or all(o.final for o in before) or not all(o.final for o in after):
        return None
    confirmed = [o for o in after if o.status is OrderStatus.CONFIRMED]
    if len(confirmed) == len(after):
        outcome = GroupOutcome.COMPLETED
    elif confirmed:
        outcome = GroupOutcome.PARTIALLY_COMPLETED
    else:
        outcome = GroupOutcome.FAILED
    first = after[0]
    return CheckoutGroupCompleted(
        order_id=first.checkout_group_id,
        buyer_id=first.buyer_id,
        currency=first.currency,
        outcome=outcome,
        balance_due=sum((o.adjusted_total for o in confirmed), Decimal("0.00")),
        orders=[_result(o) for o in after],
    )


def _result(order: Order) -> VendorOrderResult:
    return VendorOrderResult(
        order_id=order.order_id,
        vendor_id=order.vendor_id,
        status="confirmed" if order.status is OrderStatus.CONFIRMED else "failed",
        total=order.adjusted_total,
        items=list(order.accepted),
        rejected=list(order.rejected),
        failure_reason=order.failure_reason,
    )


def created_event(order: Order, discounts: Sequence[AppliedDiscount] = ()) -> OrderCreated:
    """The order_created of a new vendor order (group and vendor only for marketplaces).

    A priced one also carries its lines' charges, its shipping share and the checkout's
    promotions (`discounts`), so that its total is explained.
    """
    return OrderCreated(
        order_id=order.order_id,
        buyer_id=order.buyer_id,
        currency=order.currency,
        total=order.total,
        items=list(order.items),
        checkout_group_id=order.checkout_group_id if order.marketplace else None,
        vendor_id=order.vendor_id if order.marketplace else None,
        charges=list(order.charges),
        shipping=order.shipping_share if order.charges else None,
        discounts=list(discounts),
    )


def outcome_event(order: Order) -> OrderConfirmed | OrderMarkedFailed:
    """The event of an order that just became final."""
    extra = _marketplace_outcome(order)
    if order.status is OrderStatus.CONFIRMED:
        assert order.payment_id is not None
        return OrderConfirmed(order_id=order.order_id, payment_id=order.payment_id, **extra)
    assert order.failure_reason is not None
    return OrderMarkedFailed(order_id=order.order_id, reason=order.failure_reason, **extra)


def _marketplace_outcome(order: Order) -> dict[str, Any]:
    # A plain checkout's events stay as version-1 consumers know them: none of these fields.
    if not order.marketplace:
        return {}
    return {
        "checkout_group_id": order.checkout_group_id,
        "vendor_id": order.vendor_id,
        "currency": order.currency,
        "total": order.adjusted_total,
        "items": list(order.accepted),
        "rejected": list(order.rejected),
    }
