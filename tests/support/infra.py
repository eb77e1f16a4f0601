"""Test backends: environment URLs, else testcontainers when Docker answers, else embedded servers.

PostgreSQL, Kafka and Redis (the cart cache) are chosen independently. Set CHECKOUT_TEST_NO_DOCKER=1 to skip the Docker
probe (e.g. a Docker engine that answers but cannot pull images).
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from sqlalchemy.engine import make_url

from contracts.topics import all_topics
from services.platform import migrate
from services.platform.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    EmbeddedValkey,
    create_database,
    create_topics,
    drop_database,
    run_blocking,
    url_with_database,
)

DATABASE_ENV = "CHECKOUT_TEST_DATABASE_URL"
KAFKA_ENV = "CHECKOUT_TEST_KAFKA_BOOTSTRAP"
REDIS_ENV = "CHECKOUT_TEST_REDIS_URL"
REDIS_IMAGE = "redis:7-alpine"
NO_DOCKER_ENV = "CHECKOUT_TEST_NO_DOCKER"
POSTGRES_IMAGE = "postgres:16-alpine"
DATABASE_PREFIX = "checkout_test_"

log = logging.getLogger("tests.infra")

Source = Literal["env", "docker", "embedded"]
DockerProbe = Callable[[], bool]


@dataclass(frozen=True)
class Choice:
    """Which backend to use and why; value is the environment's URL when source is "env"."""

    source: Source
    reason: str
    value: str = ""


def docker_available(timeout_s: float = 2.0) -> bool:
    """True when a Docker engine answers a ping within timeout_s (DOCKER_HOST honoured)."""
    try:
        import docker  # type: ignore[import-untyped, unused-ignore]

        client = docker.from_env(timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    # Any failure (no SDK, no socket, refused, timeout) means "no Docker" for test purposes.
    except Exception:
        return False


@functools.cache
def docker_available_once() -> bool:
    """docker_available, probed at most once per process (both backends ask)."""
    return docker_available()


def choose(env_var: str, environ: Mapping[str, str], docker_probe: DockerProbe) -> Choice:
    """Environment URL first, then Docker if it answers, then embedded."""
    value = environ.get(env_var, "").strip()
    if value:
        return Choice("env", f"{env_var} is set", value)
    if environ.get(NO_DOCKER_ENV, "").strip():
        return Choice("embedded", f"{NO_DOCKER_ENV} is set")
    if docker_probe():
        return Choice("docker", "a Docker engine answers")
    return Choice("embedded", f"{env_var} unset and no Docker engine answers")


def to_asyncpg_url(url: str) -> str:
    """The same PostgreSQL URL with the asyncpg driver (accepts postgres://, +psycopg2, ...)."""
    parsed = make_url(url)
    if parsed.drivername.split("+")[0] not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string()}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def announce(kind: str, choice: Choice) -> None:
    """Say which backend was picked: on stderr (shown with -s) and in the log."""
    message = f"[checkout tests] {kind}: {choice.source} ({choice.reason})"
    print(message, file=sys.stderr)
    log.info(message)


@contextmanager
def postgres_server(
    environ: Mapping[str, str] = os.environ, docker_probe: DockerProbe = docker_available_once
) -> Iterator[str]:
    """Yield an asyncpg URL of a PostgreSQL server, started here unless the env names one."""
    choice = choose(DATABASE_ENV, environ, docker_probe)
    announce("postgres", choice)
    if choice.source == "env":
        yield to_asyncpg_url(choice.value)
    elif choice.source == "docker":
        with _postgres_container() as container:
            yield to_asyncpg_url(container.get_connection_url())
    else:
        with EmbeddedPostgres() as server:
            yield server.url


@contextmanager
def kafka_broker(
    environ: Mapping[str, str] = os.environ, docker_probe: DockerProbe = docker_available_once
) -> Iterator[str]:
    """Yield a Kafka bootstrap string, with a broker started here unless the env names one."""
    choice = choose(KAFKA_ENV, environ, docker_probe)
    announce("kafka", choice)
    if choice.source == "env":
        yield choice.value
    elif choice.source == "docker":
        with _kafka_container() as container:
            yield str(container.get_bootstrap_server())
    else:
        with EmbeddedKafka() as broker:
            yield broker.bootstrap


@contextmanager
def redis_server(
    environ: Mapping[str, str] = os.environ, docker_probe: DockerProbe = docker_available_once
) -> Iterator[str]:
    """Yield a redis:// URL of a Redis-protocol server, started here unless the env names one."""
    choice = choose(REDIS_ENV, environ, docker_probe)
    announce("redis", choice)
    if choice.source == "env":
        yield choice.value
    elif choice.source == "docker":
        with _redis_container() as container:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
    else:
        with EmbeddedValkey() as server:
            yield server.url


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Yield the URL of a new database on server_url, dropped afterwards (best effort)."""
    name = f"{DATABASE_PREFIX}{secrets.token_hex(6)}"
    run_blocking(create_database(server_url, name))
    print(f"[checkout tests] database: {name}", file=sys.stderr)
    try:
        yield url_with_database(server_url, name)
    finally:
        try:
            run_blocking(drop_database(server_url, name))
        # Teardown must not hide the test outcome; a leftover database only costs disk.
        except Exception as exc:
            print(f"[checkout tests] could not drop {name}: {exc!r}", file=sys.stderr)


def _postgres_container() -> Any:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers before the community namespace
        from testcontainers.postgres import PostgresContainer
    return PostgresContainer(POSTGRES_IMAGE, driver="asyncpg")


def _kafka_container() -> Any:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers before the community namespace
        from testcontainers.kafka import KafkaContainer
    return KafkaContainer()


def _redis_container() -> Any:
    from testcontainers.community.redis import RedisContainer

    return RedisContainer(REDIS_IMAGE)


@contextmanager
def tier_broker(partitions: int) -> Iterator[str]:
    """A Tansu broker of one test tier only, with every topic created up front."""
    with EmbeddedKafka() as broker:
        run_blocking(create_topics(broker.bootstrap, all_topics(), partitions))
        yield broker.bootstrap


@contextmanager
def tier_database(server_url: str) -> Iterator[str]:
    """A fresh database of one test tier, migrated to the newest revision, dropped afterwards."""
    with fresh_database(server_url) as url:
        migrate.upgrade(url)
        yield url


@asynccontextmanager
async def plain_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain Kafka producer, as an upstream service in any language would have one."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()
