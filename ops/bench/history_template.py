"""Templates of finished checkouts, built by the real code paths, for seeding history in SQL.

One template per (line count, outcome): the saga's rows come from the real saga machine
(`saga.machine.start`/`step`, so `data` is what `model_dump_json` stores), every message is
wrapped by `OutboxMessage.of` (so payloads and headers are the bytes a relay would send), and
each service's inbox and outbox rows follow the order the messages travel in. Every UUID of a
template is then rewritten to `ID_PREFIX` + a 4-hex-digit slot (the order id is slot 0), so SQL
gives a checkout new ids with one `replace` of the prefix; SKUs and the buyer are placeholders.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from contracts import (
    CheckoutStarted,
    LineItem,
    Message,
    OrderConfirmed,
    OrderCreated,
    OrderMarkedFailed,
    PaymentCompleted,
    PaymentFailed,
    Reservation,
    StockReservationCompleted,
)
from contracts.messages import CheckoutGroupCompleted, GroupOutcome, VendorOrderResult
from saga import machine
from saga.instance import Outgoing, SagaPolicy
from services.platform.outbox import OutboxMessage

ID_PREFIX = "0badc0de-0000-4000-8000-00000000"
"""The first 32 characters of every template UUID (a 36-character UUID string)."""
SKU_PLACEHOLDER = "HISTSKU-"
"""Line j (1-based) of a template names the product `HISTSKU-j`."""
BUYER_PLACEHOLDER = "hist-buyer-template"
DECLINED = "card declined"
HOP_MS = 15
"""Milliseconds between two consecutive hops of a template checkout (inbox or outbox rows)."""
RECEIVER = {
    "ReserveStockForOrder": "inventory",
    "DeductStock": "inventory",
    "ReleaseStockReservations": "inventory",
    "PaymentRequested": "payments",
    "ConfirmOrder": "orders",
    "OrderFailed": "orders",
    "ClearCart": "cart",
}
"""The schema whose inbox receives each saga command."""
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Mail:
    """One inbox row (no topic) or one outbox row of a template, `at_ms` after the checkout."""

    schema: str
    message_id: str
    message_type: str
    at_ms: int
    topic: str = ""
    payload: str = ""
    headers: str = ""


@dataclass(frozen=True)
class Line:
    """One order line: the product placeholder's number, quantity, price and reservation id."""

    number: int
    quantity: int
    unit_price: Decimal
    reservation_id: str


@dataclass
class Template:
    """Everything one finished checkout leaves in the database, with placeholder ids."""

    confirmed: bool
    lines: list[Line]
    cart_id: str = ""
    payment_id: str = ""
    saga_state: str = ""
    saga_version: int = 0
    saga_data: str = ""
    order_items: str = ""
    failure_reason: str | None = None
    inbox: list[Mail] = field(default_factory=list)
    outbox: list[Mail] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        """The order total."""
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0.00"))

    @property
    def span_ms(self) -> int:
        """From the checkout to its last row."""
        return max(mail.at_ms for mail in [*self.inbox, *self.outbox])


class _Journal:
    """Records the rows of one checkout as its messages travel."""

    def __init__(self, template: Template) -> None:
        self.t = template
        self.clock = 0

    def publish(self, schema: str, message: Message, cause: uuid.UUID | None = None) -> uuid.UUID:
        return self.command(schema, Outgoing(message, uuid.uuid4()), cause)

    def command(self, schema: str, out: Outgoing, cause: uuid.UUID | None) -> uuid.UUID:
        self.clock += HOP_MS
        row = OutboxMessage.of(out.message, message_id=out.message_id, causation_id=cause)
        mail = Mail(schema, str(row.message_id), out.message.message_type, self.clock)
        headers = json.dumps(row.headers)
        self.t.outbox.append(
            replace(mail, topic=row.topic, payload=row.payload.decode(), headers=headers)
        )
        return row.message_id

    def receive(self, schema: str, message_id: uuid.UUID, message_type: str) -> None:
        self.clock += HOP_MS
        self.t.inbox.append(Mail(schema, str(message_id), message_type, self.clock))


class _Saga:
    """The saga's side of a template checkout, stepped by the real machine."""

    def __init__(self, journal: _Journal, checkout: CheckoutStarted, cause: uuid.UUID) -> None:
        self.journal = journal
        self.now = datetime.now(UTC)
        self.policy = SagaPolicy(payment_timeout=timedelta(seconds=60))
        journal.receive("saga", cause, checkout.message_type)
        self.result = machine.start(checkout, self.now, self.policy)
        self.version = 1
        self.sent = self._emit(cause)

    def step(self, message: Message, message_id: uuid.UUID) -> dict[str, uuid.UUID]:
        self.journal.receive("saga", message_id, message.message_type)
        r = self.result
        self.result = machine.step(r.state, r.data, message, self.now, self.policy)
        self.version += 1
        self.sent = self._emit(message_id)
        return self.sent

    def _emit(self, cause: uuid.UUID) -> dict[str, uuid.UUID]:
        return {
            out.message.message_type: self.journal.command("saga", out, cause)
            for out in self.result.commands
        }


def build(line_count: int, confirmed: bool) -> Template:
    """A finished checkout of `line_count` lines, confirmed or declined by the payer."""
    lines = [
        Line(n, 1 + n % 2, Decimal(f"{9 + 10 * n}.90"), str(uuid.uuid4()))
        for n in range(1, line_count + 1)
    ]
    t = Template(confirmed, lines, str(uuid.uuid4()), str(uuid.uuid4()))
    j = _Journal(t)
    checkout = CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id=BUYER_PLACEHOLDER,
        cart_id=uuid.UUID(t.cart_id),
        currency="EUR",
        items=[
            LineItem(
                sku=f"{SKU_PLACEHOLDER}{x.number}", quantity=x.quantity, unit_price=x.unit_price
            )
            for x in lines
        ],
    )
    started = j.publish("cart", checkout)
    _orders_create(j, checkout, started)
    saga = _Saga(j, checkout, started)
    payment_request = _reserve(j, saga, checkout)
    _deliver(j, _pay(j, saga, payment_request), saga, checkout)
    t.saga_state, t.saga_version = saga.result.state.value, saga.version
    t.saga_data = saga.result.data.model_dump_json()
    t.order_items = json.dumps([i.model_dump(mode="json") for i in checkout.items])
    t.failure_reason = saga.result.data.failure_reason
    return _with_slot_ids(t, str(checkout.order_id))


def _reserve(j: _Journal, saga: _Saga, checkout: CheckoutStarted) -> uuid.UUID:
    """Inventory holds every line; the saga asks for the payment (returns that message's id)."""
    reserve = saga.sent["ReserveStockForOrder"]
    j.receive("inventory", reserve, "ReserveStockForOrder")
    held = [
        Reservation(reservation_id=uuid.UUID(x.reservation_id), sku=i.sku, quantity=x.quantity)
        for x, i in zip(j.t.lines, checkout.items, strict=True)
    ]
    reserved = StockReservationCompleted(order_id=checkout.order_id, reservations=held)
    request = saga.step(reserved, j.publish("inventory", reserved, reserve))["PaymentRequested"]
    j.receive("payments", request, "PaymentRequested")
    return request


def _pay(j: _Journal, saga: _Saga, request: uuid.UUID) -> dict[str, uuid.UUID]:
    """The payer completes or declines; the saga's final commands (type -> message id)."""
    order_id, payment_id, t = saga.result.data.order_id, uuid.UUID(j.t.payment_id), j.t
    answer: Message = (
        PaymentCompleted(order_id=order_id, payment_id=payment_id, amount=t.total, currency="EUR")
        if t.confirmed
        else PaymentFailed(order_id=order_id, payment_id=payment_id, reason=DECLINED)
    )
    return saga.step(answer, j.publish("payments", answer, request))


def _orders_create(j: _Journal, checkout: CheckoutStarted, started: uuid.UUID) -> None:
    """Orders creates the order from the checkout; the cart's order view hears of it."""
    j.receive("orders", started, checkout.message_type)
    created = OrderCreated(
        order_id=checkout.order_id,
        buyer_id=checkout.buyer_id,
        currency=checkout.currency,
        total=checkout.total,
        items=checkout.items,
    )
    j.receive("cart", j.publish("orders", created, started), created.message_type)


def _deliver(
    j: _Journal, commands: dict[str, uuid.UUID], saga: _Saga, checkout: CheckoutStarted
) -> None:
    """The saga's final commands reach their services; orders announces the order and group."""
    data = saga.result.data
    for message_type, message_id in commands.items():
        j.receive(RECEIVER[message_type], message_id, message_type)
        if message_type not in ("ConfirmOrder", "OrderFailed"):
            continue
        final: Message = (
            OrderConfirmed(order_id=data.order_id, payment_id=data.payment_id or uuid.uuid4())
            if message_type == "ConfirmOrder"
            else OrderMarkedFailed(order_id=data.order_id, reason=data.failure_reason or DECLINED)
        )
        # One transaction writes both: the order is its group's only vendor order.
        announced = j.publish("orders", final, message_id)
        j.publish("orders", _group_completed(checkout, final), message_id)
        j.receive("cart", announced, final.message_type)


def _group_completed(checkout: CheckoutStarted, final: Message) -> CheckoutGroupCompleted:
    """The group event of a one-vendor checkout whose order just became final."""
    failure = final.reason if isinstance(final, OrderMarkedFailed) else None
    confirmed = failure is None
    only = VendorOrderResult(
        order_id=checkout.order_id,
        status="confirmed" if confirmed else "failed",
        total=checkout.total,
        items=checkout.items,
        failure_reason=failure,
    )
    return CheckoutGroupCompleted(
        order_id=checkout.order_id,
        buyer_id=checkout.buyer_id,
        currency=checkout.currency,
        outcome=GroupOutcome.COMPLETED if confirmed else GroupOutcome.FAILED,
        balance_due=checkout.total if confirmed else Decimal("0.00"),
        orders=[only],
    )


def _with_slot_ids(t: Template, order_id: str) -> Template:
    """Every UUID of the template rewritten to ID_PREFIX + slot, the order id being slot 0."""
    slots = {order_id: f"{ID_PREFIX}0000"}

    def slot(match: re.Match[str]) -> str:
        return slots.setdefault(match.group(0), f"{ID_PREFIX}{len(slots):04x}")

    def ids(text: str) -> str:
        return _UUID.sub(slot, text)

    def mail(m: Mail) -> Mail:
        return replace(
            m, message_id=ids(m.message_id), payload=ids(m.payload), headers=ids(m.headers)
        )

    t.lines = [replace(x, reservation_id=ids(x.reservation_id)) for x in t.lines]
    t.cart_id, t.payment_id = ids(t.cart_id), ids(t.payment_id)
    t.saga_data = ids(t.saga_data)
    t.inbox, t.outbox = [mail(m) for m in t.inbox], [mail(m) for m in t.outbox]
    return t


def templates() -> list[Template]:
    """Template k = 2 * (lines - 1) + (0 confirmed, 1 declined), for 1 to 3 lines."""
    return [build(lines, confirmed) for lines in (1, 2, 3) for confirmed in (True, False)]
