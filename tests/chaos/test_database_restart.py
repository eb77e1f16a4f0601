"""The product rides out a PostgreSQL restart mid-load with no manual action and no lost effect."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from contracts import CheckoutStarted, LineItem
from contracts.topics import all_topics
from services.platform import migrate
from services.platform.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    create_database,
    create_topics,
    run_blocking,
    url_with_database,
)
from tests.support.payer import publish
from tests.support.processes import PROCESSES, Fleet, clean_environ

pytestmark = pytest.mark.chaos

CHECKOUTS = 30
STOCK = 20
OUTAGE_S = 4.0


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test alone: restarting the session's server would hurt the others."""
    # Not pytest's tmp dir: its 0700 parents keep out the system user PostgreSQL runs as.
    root = Path(tempfile.mkdtemp(prefix="checkout-restart-"))
    server = EmbeddedPostgres(data_dir=root / "pgdata").start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _count(url: str, sql: str) -> int:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text(sql)) or 0)
    finally:
        await engine.dispose()


async def _settled(url: str, order_ids: list[uuid.UUID], timeout_s: float = 120) -> None:
    ids = ",".join(f"'{o}'" for o in order_ids)
    query = (
        f"SELECT count(*) FROM saga.sagas WHERE id IN ({ids}) AND state IN ('Confirmed', 'Failed')"
    )
    # Quiescent: every saga final, nothing held, every outbox drained (compensations included).
    busy = "SELECT (SELECT count(*) FROM inventory.products WHERE reserved > 0) + " + " + ".join(
        f"(SELECT count(*) FROM {s}.outbox WHERE sent_at IS NULL)"
        for s in ("saga", "inventory", "orders", "cart", "payments")
    )
    deadline = time.monotonic() + timeout_s
    final, pending = 0, -1
    while time.monotonic() < deadline:
        final, pending = await _count(url, query), await _count(url, busy)
        if final == len(order_ids) and pending == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{final}/{len(order_ids)} sagas final, {pending} rows still busy")


def test_services_ride_out_a_database_restart(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    run_blocking(create_database(own_postgres.url, "restart"))
    url = url_with_database(own_postgres.url, "restart")
    migrate.upgrade(url)
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    run_blocking(_seed(url, sku))
    with EmbeddedKafka() as broker:
        run_blocking(create_topics(broker.bootstrap, all_topics(), 4))
        env = {
            **clean_environ(),
            "PYTHONUNBUFFERED": "1",
            "CHECKOUT_DATABASE_URL": url,
            "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
            "CHECKOUT_KAFKA__TOPIC_PARTITIONS": "4",
            "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "CHECKOUT_SAGA__PAYMENT_TIMEOUT_S": "60",
        }
        fleet = Fleet(env, tmp_path, PROCESSES)
        try:
            fleet.start_all()
            order_ids = run_blocking(_load_across_restart(broker.bootstrap, sku, own_postgres))
            run_blocking(_settled(url, order_ids))
            units = run_blocking(
                _count(
                    url,
                    f"SELECT available + reserved + deducted FROM inventory.products WHERE sku = '{sku}'",
                )
            )
            reserved = run_blocking(
                _count(url, f"SELECT reserved FROM inventory.products WHERE sku = '{sku}'")
            )
            confirmed = run_blocking(
                _count(url, "SELECT count(*) FROM orders.orders WHERE status = 'confirmed'")
            )
            deducted = run_blocking(
                _count(url, f"SELECT deducted FROM inventory.products WHERE sku = '{sku}'")
            )
        except BaseException:
            print(fleet.tails())
            raise
        finally:
            fleet.stop_all()
    assert units == STOCK, "stock was created or lost across the restart"
    assert reserved == 0
    assert confirmed == deducted == min(STOCK, CHECKOUTS)
    assert fleet.leftovers() == []
    logs = "".join(fleet.log(name).read_text(errors="replace") for name in PROCESSES)
    assert (
        "Connection refused" in logs or "ConnectionRefusedError" in logs or "No such file" in logs
    ), "no process noticed the outage: the test did not exercise the restart"


async def _seed(url: str, sku: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO inventory.products (sku, available) VALUES (:s, :n)"),
                {"s": sku, "n": STOCK},
            )
    finally:
        await engine.dispose()


async def _load_across_restart(
    bootstrap: str, sku: str, server: EmbeddedPostgres
) -> list[uuid.UUID]:
    """Publish half the checkouts, restart PostgreSQL while they flow, then the other half."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        starts = [
            CheckoutStarted(
                order_id=uuid.uuid4(),
                buyer_id=f"buyer-{i}",
                currency="EUR",
                items=[LineItem(sku=sku, quantity=1, unit_price=Decimal("10.00"))],
            )
            for i in range(CHECKOUTS)
        ]
        for start in starts[: CHECKOUTS // 2]:
            await publish(producer, start)
        restart = asyncio.create_task(asyncio.to_thread(_restart_in_place, server))
        await asyncio.sleep(OUTAGE_S / 4)
        # Published while PostgreSQL is down: every consumer meets refused connections.
        for start in starts[CHECKOUTS // 2 :]:
            await publish(producer, start)
        await restart
        return [s.order_id for s in starts]
    finally:
        await producer.stop()


def _restart_in_place(server: EmbeddedPostgres) -> None:
    """Stop PostgreSQL (in-flight transactions die), keep it down a while, start it again."""
    server.stop()
    time.sleep(OUTAGE_S)
    server.start()
