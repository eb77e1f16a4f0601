"""The topic table: one topic per message type, keyed by order id (= correlation id)."""

from __future__ import annotations

from contracts.messages import Message
from contracts.registry import ALL_MESSAGES

TOPIC_PREFIX = "checkout."

TOPICS: dict[str, str] = {
    cls.message_type: TOPIC_PREFIX
    + "".join(
        "_" + ch.lower() if ch.isupper() and i else ch.lower()
        for i, ch in enumerate(cls.message_type)
    ).replace(".", "_")
    for cls in ALL_MESSAGES
}
"""message_type -> topic, e.g. CheckoutStarted -> checkout.checkout_started.

Dotted event types flatten to underscores (cart.item.added -> checkout.cart_item_added), so
every name has one dot, after the prefix.
"""

DEAD_LETTER_TOPIC = TOPIC_PREFIX + "dead_letter"
"""Messages a consumer rejected for good, with the reason in headers."""

_BY_TYPE: dict[str, type[Message]] = {cls.message_type: cls for cls in ALL_MESSAGES}


def topic_for(message: type[Message] | Message) -> str:
    """The topic a message type travels on."""
    return TOPICS[message.message_type]


def message_class_for_type(message_type: str) -> type[Message] | None:
    """The payload class of a message type, None when the type is unknown."""
    return _BY_TYPE.get(message_type)


def all_topics() -> list[str]:
    """Every topic the product uses, dead letters included (created at startup)."""
    return [*TOPICS.values(), DEAD_LETTER_TOPIC]
