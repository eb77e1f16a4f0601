"""Every message type the product knows, in one tuple: the source of the topic table."""

from __future__ import annotations

from contracts.cart_events import CART_EVENTS
from contracts.messages import (
    CheckoutGroupCompleted,
    CheckoutStarted,
    ClearCart,
    ConfirmOrder,
    DeductStock,
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
    ReserveStockForOrder,
    StockReservationCompleted,
    StockReservationFailed,
)

ALL_MESSAGES: tuple[type[Message], ...] = (
    CheckoutStarted,
    ReserveStockForOrder,
    StockReservationCompleted,
    StockReservationFailed,
    PaymentRequested,
    PaymentCompleted,
    PaymentFailed,
    RefundPayment,
    PaymentRefunded,
    ConfirmOrder,
    OrderFailed,
    DeductStock,
    ReleaseStockReservations,
    ClearCart,
    OrderCreated,
    OrderConfirmed,
    OrderMarkedFailed,
    CheckoutGroupCompleted,
    *CART_EVENTS,
)
