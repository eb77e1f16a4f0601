"""Explicit topic creation at startup (auto-created topics would get the broker's default layout)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.platform.broker import security_kwargs
from services.platform.settings import KafkaSettings

log = logging.getLogger("checkout_saga.topics")


async def ensure_topics(kafka: KafkaSettings, topics: Sequence[str]) -> None:
    """Create the missing topics with the configured partitions; existing ones are left alone."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id=f"{kafka.client_id}-admin",
        **security_kwargs(kafka),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        # Another process may create them between our list and create: that is fine.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(t, kafka.topic_partitions, kafka.replication_factor) for t in missing]
            )
        log.info("created topics", extra={"topics": missing})
    finally:
        await admin.close()
