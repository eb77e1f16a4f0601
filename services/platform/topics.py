"""Explicit topic creation at startup (auto-created topics would get the broker's default layout)."""

from __future__ import annotations

from collections.abc import Sequence

from services.platform.broker import security_kwargs
from services.platform.embedded.kafka import create_topics
from services.platform.settings import KafkaSettings


async def ensure_topics(kafka: KafkaSettings, topics: Sequence[str]) -> None:
    """Create the missing topics with the configured partitions; existing ones are left alone."""
    await create_topics(
        kafka.bootstrap_servers,
        topics,
        kafka.topic_partitions,
        kafka.replication_factor,
        client_id=f"{kafka.client_id}-admin",
        **security_kwargs(kafka),
    )
