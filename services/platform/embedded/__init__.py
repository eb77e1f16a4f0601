"""Embedded defaults from wheels: PostgreSQL, Tansu and Valkey; imports no service, no saga."""

from services.platform.embedded._process import EmbeddedStartError, free_port, run_blocking
from services.platform.embedded.kafka import EmbeddedKafka, create_topics
from services.platform.embedded.postgres import (
    EmbeddedPostgres,
    create_database,
    drop_database,
    url_with_database,
)
from services.platform.embedded.valkey import EmbeddedValkey

__all__ = [
    "EmbeddedKafka",
    "EmbeddedPostgres",
    "EmbeddedStartError",
    "EmbeddedValkey",
    "create_database",
    "create_topics",
    "drop_database",
    "free_port",
    "run_blocking",
    "url_with_database",
]
