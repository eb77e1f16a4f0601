"""The guards and actions the saga table names: the model `transitions` drives, one per step.

Pure: imports only the standard library, pydantic and contracts (no I/O library, no service).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    ClearCart,
    ConfirmOrder,
    DeductStock,
    Message,
    OrderFailed,
    PaymentCompleted,
    PaymentFailed,
    RefundPayment,
    RejectedLine,
    ReleaseStockReservations,
    Reservation,
    StockReservationCompleted,
    StockReservationFailed,
    command_id,
)
from saga import pending
from saga.instance import (
    MAX_ANOMALIES,
    OperatorAbort,
    Outcome,
    Outgoing,
    PaymentDeadlinePassed,
    SagaData,
    SagaEvent,
    SagaPolicy,
)

_E = TypeVar("_E")


def _clip(text: str) -> str:
    return text[:500]  # the contracts' Reason limit


def _required(value: _E | None, what: str) -> _E:
    if value is None:
        raise RuntimeError(f"the row needs {what}, which the saga does not have")
    return value


class SagaInstance:
    """One saga being stepped: the model `transitions` drives; its methods are the table's words.

    Guards answer about the current event and data; actions replace `data` (never mutate it) and
    append commands. `state` is set by the machine; `transition` names the row being applied.
    """

    state: str

    def __init__(self, data: SagaData, event: SagaEvent, now: datetime, policy: SagaPolicy):
        self.data, self.event, self.now, self.policy = data, event, now, policy
        self.transition = ""
        self.commands: list[Outgoing] = []
        self.outcome = Outcome.APPLIED
        self.reason: str | None = None
        self.anomaly: str | None = None

    def _expect(self, kind: type[_E]) -> _E:
        # A mismatch is a bug in the table (a row written for another trigger), not bad input.
        if not isinstance(self.event, kind):
            raise TypeError(f"row {self.transition} needs {kind.__name__}, got {self.event!r}")
        return self.event

    def _update(self, **changes: Any) -> None:
        self.data = self.data.model_copy(update=changes)

    def _send(self, message: Message, discriminator: str = "") -> None:
        # Rows that can fire again for another input put that input in the id: ids never repeat.
        transition = f"{self.transition}:{discriminator}" if discriminator else self.transition
        message_id = command_id(self.data.order_id, transition, message.message_type)
        self.commands.append(Outgoing(message=message, message_id=message_id))

    def _early_payment(self) -> PaymentCompleted:
        return _required(self.data.early_payment, "an early payment")

    def _mismatch(self, payment: PaymentCompleted) -> str:
        return _clip(
            f"payment {payment.payment_id} of {payment.amount} {payment.currency} does not "
            f"match the order total {self.data.amount} {self.data.currency}"
        )

    def _failure_reason(self) -> str:
        event = self.event
        if isinstance(event, StockReservationFailed):
            return event.reason
        if isinstance(event, StockReservationCompleted) and self.rejected_against_policy():
            skus = ", ".join(s.sku for s in event.rejected)
            return _clip(f"inventory rejected lines of an all-or-nothing checkout: {skus}")
        if isinstance(event, PaymentDeadlinePassed):
            return "payment timeout"
        if isinstance(event, OperatorAbort):
            return _clip(f"aborted by {event.actor}: {event.reason}")
        if isinstance(event, PaymentCompleted):
            return self._mismatch(event)
        # A PaymentFailed now, or one remembered before the reservation arrived.
        failed = event if isinstance(event, PaymentFailed) else self.data.early_payment_failure
        return _clip(f"payment failed: {_required(failed, 'a payment failure').reason}")

    # Guards: the table's guard column.

    def early_failure(self) -> bool:
        """A payment failure arrived before the reservation outcome."""
        return self.data.early_payment_failure is not None

    def early_payment(self) -> bool:
        """A payment arrived before the reservation outcome."""
        return self.data.early_payment is not None

    def early_outcome(self) -> bool:
        """Either payment outcome arrived before the reservation outcome."""
        return self.early_payment() or self.early_failure()

    def known_payment(self) -> bool:
        """This payment was already accepted, remembered or refunded."""
        paid, d = self._expect(PaymentCompleted).payment_id, self.data
        early = d.early_payment.payment_id if d.early_payment else None
        return paid in (d.payment_id, early) or paid in d.refunded_payment_ids

    def payment_matches(self) -> bool:
        """This payment is exactly the order total, in the order currency."""
        paid = self._expect(PaymentCompleted)
        return paid.amount == self.data.amount and paid.currency == self.data.currency

    def deadline_due(self) -> bool:
        """The event's deadline is the saga's current one, and it has passed."""
        deadline = self.data.payment_deadline
        # A deadline that moved since the poller read it is stale, even when due.
        moved = self._expect(PaymentDeadlinePassed).deadline != deadline
        return deadline is not None and not moved and self.now >= deadline

    def lines_rejected(self) -> bool:
        """Inventory held only some lines and rejected the others."""
        return bool(self._expect(StockReservationCompleted).rejected)

    def rejected_against_policy(self) -> bool:
        """Inventory rejected lines of a checkout that is all or nothing."""
        return self.lines_rejected() and self.data.policy is CheckoutPolicy.ALL_OR_NOTHING

    def early_payment_and_rejections(self) -> bool:
        """A payment arrived early, for the full total, and inventory then held only part."""
        return self.early_payment() and self.lines_rejected()

    def checkout_differs(self) -> bool:
        """This CheckoutStarted says other than the one that started the saga (what it keeps)."""
        return bool(checkout_differences(self.data, self._expect(CheckoutStarted)))

    def known_reservations(self) -> bool:
        """Every reservation of this event is already recorded."""
        return not self._new_reservations()

    def _new_reservations(self) -> list[Reservation]:
        known = {r.reservation_id for r in self.data.reservations}
        reserved = self._expect(StockReservationCompleted).reservations
        return [r for r in reserved if r.reservation_id not in known]

    # Actions: the table's then column.

    def reserve_stock(self) -> None:
        """Send ReserveStockForOrder and count it (an invariant allows one)."""
        self._update(reservation_requests=self.data.reservation_requests + 1)
        self._send(pending.reservation_message(self.data))

    def record_reservations(self) -> None:
        """Remember the event's reservations (each id once)."""
        self._update(reservations=[*self.data.reservations, *self._new_reservations()])

    def record_rejections(self) -> None:
        """Remember the lines inventory rejected and lower the amount to the lines it held."""
        rejected = self._expect(StockReservationCompleted).rejected
        lines = [RejectedLine(sku=s.sku, quantity=s.requested, reason=s.reason) for s in rejected]
        # An all-or-nothing saga keeps no prices: its rejections fail it, the amount is moot.
        # A priced line comes off at its charge (discounted, taxed); the shipping stays charged,
        # since something is still shipped while any line is held.
        value = sum((rejected_value(self.data, r) for r in lines), Decimal(0))
        amount = self.data.amount - value if value < self.data.amount else self.data.amount
        self._update(rejected=[*self.data.rejected, *lines], amount=amount)

    def refund_any_early_payment(self) -> None:
        """Give the remembered early payment back, if one arrived."""
        if self.data.early_payment is not None:
            self._refund(self.data.early_payment)

    def request_payment(self) -> None:
        """Send PaymentRequested for the order total and start the payment deadline."""
        self._start_deadline()
        self._update(payment_requested_by=self.transition)  # the request's id derives from it
        self._send(pending.payment_message(self.data))

    def _start_deadline(self) -> None:
        # model_copy skips validation, so normalise to UTC here as the stored value will be.
        self._update(payment_deadline=(self.now + self.policy.payment_timeout).astimezone(UTC))

    def resend_reservation(self) -> None:
        """Send ReserveStockForOrder again, with the id it was first sent with."""
        self.commands.append(pending.reservation_request(self.data))

    def resend_payment_request(self) -> None:
        """Send PaymentRequested again, with its first id, and restart the payment deadline."""
        # The payer is given a full timeout from the request it may only now see (the first one
        # may never have left our outbox, or was dead-lettered). A payer that already had it
        # answers as before or not at all: at worst the stock stays held one timeout longer,
        # because an operator asked, and the action is on record.
        self._start_deadline()
        self.commands.append(pending.payment_request(self.data))

    def clear_deadline(self) -> None:
        """Stop the payment deadline."""
        self._update(payment_deadline=None)

    def release_stock(self) -> None:
        """Send ReleaseStockReservations for every recorded reservation."""
        ids = [r.reservation_id for r in self.data.reservations]
        reason = self._failure_reason()
        self._send(
            ReleaseStockReservations(
                order_id=self.data.order_id, reservation_ids=ids, reason=reason
            )
        )

    def release_late_reservations(self) -> None:
        """Send ReleaseStockReservations for the reservations of this (late) event."""
        ids = sorted(r.reservation_id for r in self._expect(StockReservationCompleted).reservations)
        reason = "the reservation arrived after the order failed"
        message = ReleaseStockReservations(
            order_id=self.data.order_id, reservation_ids=ids, reason=reason
        )
        self._send(message, discriminator=",".join(map(str, ids)))

    def fail_order(self) -> None:
        """Record why the order failed and send OrderFailed."""
        reason = self._failure_reason()
        self._update(failure_reason=reason)
        d = self.data
        self._send(OrderFailed(order_id=d.order_id, reason=reason, rejected=d.rejected))

    def accept_payment(self) -> None:
        """This event's payment pays for the order."""
        self._update(payment_id=self._expect(PaymentCompleted).payment_id)

    def accept_early_payment(self) -> None:
        """The remembered early payment pays for the order."""
        self._update(payment_id=self._early_payment().payment_id)

    def confirm_order(self) -> None:
        """Send ConfirmOrder with the accepted payment."""
        d = self.data
        payment_id = _required(d.payment_id, "an accepted payment")
        self._send(ConfirmOrder(order_id=d.order_id, payment_id=payment_id, rejected=d.rejected))

    def deduct_stock(self) -> None:
        """Send DeductStock."""
        self._send(DeductStock(order_id=self.data.order_id))

    def clear_cart(self) -> None:
        """Send ClearCart for the cart the checkout came from."""
        d = self.data
        self._send(ClearCart(order_id=d.order_id, buyer_id=d.buyer_id, cart_id=d.cart_id))

    def refund_payment(self) -> None:
        """Give this event's payment back."""
        self._refund(self._expect(PaymentCompleted))

    def refund_early_payment(self) -> None:
        """Give the remembered early payment back."""
        self._refund(self._early_payment())

    def _refund(self, payment: PaymentCompleted) -> None:
        self._update(refunded_payment_ids=[*self.data.refunded_payment_ids, payment.payment_id])
        message = RefundPayment(
            order_id=self.data.order_id,
            payment_id=payment.payment_id,
            amount=payment.amount,  # what was taken, whatever the order total
            currency=payment.currency,
            reason=self.transition.replace("_", " "),
        )
        self._send(message, discriminator=str(payment.payment_id))

    def remember_payment(self) -> None:
        """Keep an early payment until the reservation outcome arrives."""
        self._update(early_payment=self._expect(PaymentCompleted))

    def remember_failure(self) -> None:
        """Keep an early payment failure until the reservation outcome arrives."""
        self._update(early_payment_failure=self._expect(PaymentFailed))

    def remember_mismatch_as_failure(self) -> None:
        """Keep a payment of the wrong amount as an early payment failure."""
        paid = self._expect(PaymentCompleted)
        failure = PaymentFailed(
            order_id=paid.order_id, payment_id=paid.payment_id, reason=self._mismatch(paid)
        )
        self._update(early_payment_failure=failure)

    def note_anomaly(self) -> None:
        """Record something that should not happen, for the caller to count and alert on."""
        event = self.event
        detail = (
            event.model_dump(mode="json", exclude={"order_id"})
            if isinstance(event, Message)
            else event
        )
        self.anomaly = _clip(f"{self.transition}: {type(event).__name__} {detail}")
        self._update(anomalies=[*self.data.anomalies, self.anomaly][-MAX_ANOMALIES:])

    def refuse_checkout(self) -> None:
        """Refuse a conflicting CheckoutStarted, saying what differs; the saga stays as it is."""
        differences = checkout_differences(self.data, self._expect(CheckoutStarted))
        self.outcome = Outcome.REJECTED
        self.reason = _clip(
            f"CheckoutStarted conflicts with the checkout that started order "
            f"{self.data.order_id}, which stands: {'; '.join(differences)}"
        )

    def ignore_duplicate(self) -> None:
        """Nothing to do: the event repeats what the saga already knows."""
        self.outcome = Outcome.DUPLICATE
        self.reason = f"{type(self.event).__name__} is a duplicate here ({self.transition})"


def checkout_differences(kept: SagaData, sent: CheckoutStarted) -> list[str]:
    """What a CheckoutStarted says unlike the saga's data, field by field; empty for a repeat.

    The saga keeps no vendors or e-mail, so those are not compared. It compares unit prices,
    line charges and the shipping charge when it keeps them (a partial checkout, whose amount
    drops with rejected lines), otherwise the amount (the grand total of a priced checkout),
    which an all-or-nothing saga never changes.
    """
    found = [
        f"{name} {new!r} (the saga has {old!r})"
        for name, old, new in (
            ("buyer_id", kept.buyer_id, sent.buyer_id),
            ("cart_id", _text(kept.cart_id), _text(sent.cart_id)),
            ("currency", kept.currency, sent.currency),
            ("policy", kept.policy.value, sent.policy.value),
        )
        if old != new
    ]
    quantities = {i.sku: i.quantity for i in sent.items}
    found += _lines_differ("quantities", {i.sku: i.quantity for i in kept.items}, quantities)
    if kept.unit_prices:
        found += _priced_lines_differ(kept, sent)
    elif sent.total != kept.amount:
        found.append(f"amount {sent.total} (the saga has {kept.amount})")
    return found


def _priced_lines_differ(kept: SagaData, sent: CheckoutStarted) -> list[str]:
    """A partial saga's prices against a repeat: unit prices, line charges, shipping charge."""
    prices = {i.sku: i.unit_price for i in sent.items}
    found = _lines_differ("unit prices", dict(kept.unit_prices), prices)
    charges = {} if sent.pricing is None else sent.pricing.charges()
    found += _lines_differ("line charges", dict(kept.line_charges), charges)
    shipping = None if sent.pricing is None else sent.pricing.shipping_charge
    if shipping != kept.shipping_charge:
        found.append(f"shipping charge {shipping} (the saga has {kept.shipping_charge})")
    return found


def rejected_value(kept: SagaData, line: RejectedLine) -> Decimal:
    """What a rejected line takes off the amount: its charge when priced, else its price."""
    if line.sku in kept.line_charges:
        return kept.line_charges[line.sku]
    price = kept.unit_prices.get(line.sku)
    return Decimal(0) if price is None else price * line.quantity


def _lines_differ(what: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    skus = sorted(sku for sku in old.keys() | new.keys() if old.get(sku) != new.get(sku))
    return [f"{what} of {', '.join(skus)}"] if skus else []


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)
