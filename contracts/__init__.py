"""The wire: every message checkout-saga sends or accepts, its envelope and its topic.

Pure pydantic models; imports only the standard library and pydantic.
"""

from contracts.cart_events import (
    CartAbandoned,
    CartCheckedOut,
    CartEvent,
    CartItemAdded,
    CartItemRemoved,
)
from contracts.envelope import Envelope, MessageHeaders, command_id
from contracts.messages import (
    CheckoutStarted,
    ClearCart,
    ConfirmOrder,
    DeductStock,
    LineItem,
    Message,
    OrderConfirmed,
    OrderCreated,
    OrderFailed,
    OrderMarkedFailed,
    PaymentCompleted,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
    RefundPayment,
    ReleaseStockReservations,
    Reservation,
    ReserveStockForOrder,
    StockItem,
    StockReservationCompleted,
    StockReservationFailed,
    StockShortage,
)
from contracts.registry import ALL_MESSAGES
from contracts.topics import DEAD_LETTER_TOPIC, TOPICS, message_class_for_type, topic_for

__all__ = [
    "ALL_MESSAGES",
    "DEAD_LETTER_TOPIC",
    "TOPICS",
    "CartAbandoned",
    "CartCheckedOut",
    "CartEvent",
    "CartItemAdded",
    "CartItemRemoved",
    "CheckoutStarted",
    "ClearCart",
    "ConfirmOrder",
    "DeductStock",
    "Envelope",
    "LineItem",
    "Message",
    "MessageHeaders",
    "OrderConfirmed",
    "OrderCreated",
    "OrderFailed",
    "OrderMarkedFailed",
    "PaymentCompleted",
    "PaymentFailed",
    "PaymentRefunded",
    "PaymentRequested",
    "RefundPayment",
    "ReleaseStockReservations",
    "Reservation",
    "ReserveStockForOrder",
    "StockItem",
    "StockReservationCompleted",
    "StockReservationFailed",
    "StockShortage",
    "command_id",
    "message_class_for_type",
    "topic_for",
]
