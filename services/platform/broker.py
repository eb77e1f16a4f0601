"""Kafka client options, the broker that documents the topics, and records as deliveries."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from services.platform.consumer import Delivery
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
    """A FastStream Kafka broker: the AsyncAPI document of the topics and the app it runs in.

    It consumes nothing (services.platform.batch_loop does) and publishes nothing (the relay
    does): handlers never publish directly.
    """
    return KafkaBroker(
        kafka.bootstrap_servers,
        client_id=kafka.client_id,
        allow_auto_create_topics=False,
        security=broker_security(kafka),
        # Per-message access lines would drown everything else: keep them at DEBUG.
        log_level=logging.DEBUG,
        **extra,
    )


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
