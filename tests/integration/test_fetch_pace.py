"""The adaptive fetch wait reaches aiokafka's fetcher (a private attribute: guard it here)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from services.platform.batch_loop import _FetchPace
from services.platform.settings import KafkaSettings


async def test_the_pace_sets_the_wait_a_started_aiokafka_fetcher_uses(kafka_bootstrap: str) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, idle_fetch_max_wait_ms=321, idle_after_s=0.001
    )
    client = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, fetch_max_wait_ms=25)
    await client.start()
    try:
        pace = _FetchPace(kafka)
        await asyncio.sleep(0.01)  # longer than idle_after_s without a record
        pace.saw(client, 0)
        assert client._fetcher._fetch_max_wait_ms == 321
        pace.saw(client, 1)
        assert client._fetcher._fetch_max_wait_ms == kafka.fetch_max_wait_ms
    finally:
        await client.stop()
