"""Message builders with sensible defaults, and deliveries as a Kafka consumer hands them over."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    ClearCart,
    ConfirmOrder,
    DeductStock,
    Envelope,
    LineItem,
    Message,
    OrderFailed,
    PaymentRequested,
    RefundPayment,
    ReleaseStockReservations,
    ReserveStockForOrder,
    StockItem,
)
from contracts.codec import encode, headers_for
from contracts.topics import TOPICS
from services.platform.consumer import Delivery

# Dead-letter ids derive from (topic, partition, offset): every delivery built here gets a fresh
# offset, also across runs against a reused database, so tests never share a dead letter.
_offsets = itertools.count(random.randrange(1 << 40))


def new_id() -> uuid.UUID:
    """A fresh order (or other) id: tests isolate by unique ids, never by truncating."""
    return uuid.uuid4()


def unique_sku(prefix: str = "SKU") -> str:
    """A product code no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def line_items(items: Sequence[tuple[str, int, str]]) -> list[LineItem]:
    """Line items from (sku, quantity, unit price) tuples."""
    return [LineItem(sku=s, quantity=q, unit_price=Decimal(p)) for s, q, p in items]


def checkout_started(
    order_id: uuid.UUID | None = None,
    items: Sequence[tuple[str, int, str]] = (("SKU-1", 2, "9.99"),),
    *,
    buyer_id: str = "buyer-1",
    currency: str = "EUR",
    cart_id: uuid.UUID | None = None,
) -> CheckoutStarted:
    """A CheckoutStarted with (sku, quantity, unit price) lines."""
    return CheckoutStarted(
        order_id=order_id or new_id(),
        buyer_id=buyer_id,
        currency=currency,
        cart_id=cart_id,
        items=line_items(items),
    )


def reserve_stock(
    order_id: uuid.UUID | None = None,
    items: Sequence[tuple[str, int]] = (("SKU-1", 1),),
    policy: CheckoutPolicy = CheckoutPolicy.ALL_OR_NOTHING,
) -> ReserveStockForOrder:
    """A ReserveStockForOrder with (sku, quantity) lines."""
    return ReserveStockForOrder(
        order_id=order_id or new_id(),
        items=[StockItem(sku=s, quantity=q) for s, q in items],
        policy=policy,
    )


def deduct_stock(order_id: uuid.UUID) -> DeductStock:
    """A DeductStock for the order."""
    return DeductStock(order_id=order_id)


def release_stock(
    order_id: uuid.UUID, reservation_ids: Sequence[uuid.UUID] = (), reason: str = "payment failed"
) -> ReleaseStockReservations:
    """A ReleaseStockReservations (all of the order's when no ids are given)."""
    return ReleaseStockReservations(
        order_id=order_id, reservation_ids=list(reservation_ids), reason=reason
    )


def confirm_order(order_id: uuid.UUID, payment_id: uuid.UUID | None = None) -> ConfirmOrder:
    """A ConfirmOrder (with a fresh payment id unless given)."""
    return ConfirmOrder(order_id=order_id, payment_id=payment_id or new_id())


def order_failed(order_id: uuid.UUID, reason: str = "payment declined") -> OrderFailed:
    """An OrderFailed command."""
    return OrderFailed(order_id=order_id, reason=reason)


def clear_cart(
    order_id: uuid.UUID, buyer_id: str = "buyer-1", cart_id: uuid.UUID | None = None
) -> ClearCart:
    """A ClearCart for the order's buyer."""
    return ClearCart(order_id=order_id, buyer_id=buyer_id, cart_id=cart_id)


def payment_requested(
    order_id: uuid.UUID | None = None,
    amount: str = "19.98",
    *,
    buyer_id: str = "buyer-1",
    currency: str = "EUR",
) -> PaymentRequested:
    """A PaymentRequested for the order."""
    return PaymentRequested(
        order_id=order_id or new_id(), buyer_id=buyer_id, amount=Decimal(amount), currency=currency
    )


def refund_payment(
    order_id: uuid.UUID,
    payment_id: uuid.UUID,
    amount: str = "19.98",
    *,
    currency: str = "EUR",
    reason: str = "late payment",
) -> RefundPayment:
    """A RefundPayment of one payment."""
    return RefundPayment(
        order_id=order_id,
        payment_id=payment_id,
        amount=Decimal(amount),
        currency=currency,
        reason=reason,
    )


def envelope(message: Message, message_id: uuid.UUID | None = None) -> Envelope:
    """The message in its envelope (a fresh message id unless given)."""
    return message.to_envelope(message_id=message_id or uuid.uuid4())


def delivery(message: Message | Envelope, message_id: uuid.UUID | None = None) -> Delivery:
    """The message as one Kafka record on its topic, keyed by order id, encoded for the wire."""
    env = message if isinstance(message, Envelope) else envelope(message, message_id)
    return Delivery(
        value=encode(env),
        topic=TOPICS[env.message_type],
        partition=0,
        offset=next(_offsets),
        key=str(env.correlation_id),
        headers=headers_for(env),
    )


def raw_delivery(value: bytes, topic: str, key: str | None = None) -> Delivery:
    """Arbitrary bytes as a Kafka record (malformed or hostile input)."""
    return Delivery(
        value=value, topic=topic, partition=0, offset=next(_offsets), key=key, headers={}
    )


def tampered(message: Message, **payload: Any) -> bytes:
    """The encoded envelope of a message with payload fields overridden (bypassing validation)."""
    document = envelope(message).model_dump(mode="json")
    document["payload"].update(payload)
    return json.dumps(document).encode()


def retyped(message: Message, message_type: str) -> bytes:
    """The encoded envelope of a message that claims another message type."""
    document = envelope(message).model_dump(mode="json")
    document["message_type"] = message_type
    return json.dumps(document).encode()
