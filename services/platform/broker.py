"""Kafka broker factory and the subscriber binding that feeds deliveries to a Consumer."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from contracts import Message
from contracts.topics import topic_for
from services.platform.consumer import Consumer, Delivery, Route
from services.platform.offsets import OffsetCommitter, first_offsets, next_offsets
from services.platform.settings import KafkaSettings


def security_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """SASL/SSL options in aiokafka's keyword form (empty for PLAINTEXT)."""
    kwargs: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=kafka.ssl_cafile)
        if kafka.ssl_certfile:
            context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile)
        kwargs["ssl_context"] = context
    if kafka.sasl_mechanism:
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        kwargs["sasl_plain_username"] = kafka.sasl_username
        kwargs["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return kwargs


def producer_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka producer options (the relay's producer)."""
    return {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": f"{kafka.client_id}-relay",
        "acks": kafka.acks if kafka.acks == "all" else int(kafka.acks),
        "enable_idempotence": kafka.enable_idempotence,
        "linger_ms": kafka.linger_ms,
        **security_kwargs(kafka),
    }


def broker_security(kafka: KafkaSettings) -> BaseSecurity | None:
    """The same SASL/SSL options as FastStream security (it also documents them in AsyncAPI)."""
    sec = security_kwargs(kafka)
    context = sec.get("ssl_context")
    use_ssl = context is not None
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    username = kafka.sasl_username or ""
    if kafka.sasl_mechanism == "PLAIN":
        return SASLPlaintext(username, password, ssl_context=context, use_ssl=use_ssl)
    if kafka.sasl_mechanism == "SCRAM-SHA-256":
        return SASLScram256(username, password, ssl_context=context, use_ssl=use_ssl)
    if kafka.sasl_mechanism == "SCRAM-SHA-512":
        return SASLScram512(username, password, ssl_context=context, use_ssl=use_ssl)
    return BaseSecurity(ssl_context=context, use_ssl=use_ssl) if use_ssl else None


def make_broker(kafka: KafkaSettings, **extra: Any) -> KafkaBroker:
    """A FastStream Kafka broker; its consumers only, since handlers never publish directly."""
    return KafkaBroker(
        kafka.bootstrap_servers,
        client_id=kafka.client_id,
        allow_auto_create_topics=False,
        security=broker_security(kafka),
        # Per-message access lines would drown everything else: keep them at DEBUG.
        log_level=logging.DEBUG,
        **extra,
    )


async def _raw_body(message: StreamMessage[Any]) -> Any:
    # Our Consumer decodes and validates itself, so a malformed body reaches it as bytes
    # and is dead-lettered there instead of failing inside the framework.
    return message.body


def group_id(service: str) -> str:
    """The consumer group of a service (one group, one consumer per service per process)."""
    return f"checkout-saga.{service}"


def delivery_of(record: ConsumerRecord[bytes, bytes]) -> Delivery:
    """A Kafka record as the Consumer sees it."""
    return Delivery(
        value=record.value or b"",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key else None,
        headers={k: v.decode(errors="replace") for k, v in record.headers},
    )


def _records(raw: Any) -> list[ConsumerRecord[bytes, bytes]]:
    # A fetched batch is a tuple of records; FastStream's in-memory test broker nests each
    # published record in a list of its own.
    if not isinstance(raw, tuple | list):
        return [raw]
    return [record for part in raw for record in _records(part)]


def subscribe(
    broker: KafkaBroker,
    kafka: KafkaSettings,
    consumer: Consumer,
    routes: Mapping[type[Message], Route],
) -> OffsetCommitter:
    """One batch consumer for all of a service's topics; offsets committed after the database.

    One consumer per service, not per topic: every consumer runs its own fetch loop, and
    sixteen of them spent a fifth of a core just polling an idle Tansu (measured), and each
    group join costs about half the session timeout at startup. A batch is what one fetch
    returns; its offsets are committed (services.platform.offsets) only after every record's
    transaction committed. When some record must come back later, every partition of the batch
    is rewound to its first record: the inbox recognises the ones that did commit.
    """
    by_topic = {topic_for(cls): route for cls, route in routes.items()}
    committer = OffsetCommitter(consumer.service)

    async def on_batch(msg: KafkaMessage) -> None:
        batch = _records(msg.raw_message)
        try:
            await consumer.process_batch([(delivery_of(r), by_topic[r.topic]) for r in batch])
        except BaseException:
            for tp, offset in first_offsets(batch).items():
                msg.consumer.seek(tp, offset)
            raise
        committer.commit(msg.consumer, next_offsets(batch))

    on_batch.__name__ = f"on_{consumer.service}_batch"
    broker.subscriber(
        *sorted(by_topic),
        group_id=group_id(consumer.service),
        # Acked by this binding, not by FastStream: explicit offsets of what was applied.
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        rebalance_timeout_ms=kafka.rebalance_timeout_ms,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        batch=True,
        max_records=kafka.max_poll_records,
        batch_timeout_ms=consumer.settings.batch_wait_ms,
        decoder=_raw_body,
        include_in_schema=False,
    )(on_batch)
    return committer
