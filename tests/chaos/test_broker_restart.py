"""The product rides out a Kafka broker restart mid-load with no manual action and no lost effect.

How the restart is staged, and why this is the honest way here: the embedded Tansu stores
everything in memory, so restarting its process would lose every topic, record and committed
offset, which a production Kafka restart never does (its log is durable). What a restart does
to the clients is: every connection dies at once, connections are refused while the broker is
down, consumer sessions expire so every group rebalances, and then the same address answers
with the same log and offsets. A TCP proxy in front of Tansu (tests/support/tcp_proxy.py) does
the network part, and Tansu advertises the proxy's port, so every client connection, including
the reconnects after a metadata refresh, goes through it. Tansu expires a silent member only
when someone joins its group, so the test joins each group while the proxy is down (see
_expire_silent_members); otherwise the services would keep their memberships across any outage.

The test's own producer has no way around the proxy either (metadata sends every client to the
advertised address), so the second half of the checkouts is published once the broker is back,
as an upstream that backed off would; the first half is still in flight when it goes down.
The tier's fixtures (conftest.py) are reused with `chaos_bootstrap` and `chaos_fleet` overridden
here, so the producer and the invariants' engine are the tier's own.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutStarted, LineItem
from contracts.topics import all_topics
from services.platform.broker import group_id
from services.platform.embedded import EmbeddedKafka, create_topics, free_port, run_blocking
from services.runtime import SERVICES
from tests.chaos.conftest import PARTITIONS, chaos_env
from tests.chaos.invariants import rows, saga_states, until, violations
from tests.chaos.load import ChaosLoad, Checkout, prepare
from tests.chaos.wire import check_wire
from tests.support.faults import expire_silent_members
from tests.support.payer import publish
from tests.support.processes import PROCESSES, Fleet
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]

CHECKOUTS = 30
STOCK = 20
SESSION_MS = 2000  # the consumers' group session timeout (chaos_env)
SESSION_S = SESSION_MS / 1000
OUTAGE_S = 6.0  # three sessions long: every group's member expires and the group rebalances
SETTLE_TIMEOUT_S = 60.0
# What aiokafka logs when its connection is reset or refused, and when its consumer (re)joins.
BROKER_LOST = ("Connect call failed", "Connection refused", "KafkaConnectionError")
REJOINED = ("Joined group",)


@pytest.fixture(scope="module")
def broker_proxy() -> Iterator[TcpProxy]:
    """Tansu behind a proxy that advertises the proxy's port; the topics created through it."""
    port = free_port()
    with (
        EmbeddedKafka(advertised_port=port) as broker,
        TcpProxy(port, ("127.0.0.1", broker.port)) as proxy,
    ):
        run_blocking(create_topics(proxy.address, all_topics(), PARTITIONS))
        yield proxy


@pytest.fixture(scope="module")
def chaos_bootstrap(broker_proxy: TcpProxy) -> str:
    """Overrides the tier's broker: every client of this module goes through the proxy."""
    return broker_proxy.address


@pytest.fixture(scope="module")
def chaos_fleet(
    chaos_bootstrap: str, chaos_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """One process per service plus a relay; every payment succeeds and none times out.

    The payment deadline outlasts the outage, so every checkout that got stock is confirmed.
    """
    env = {
        **chaos_env(chaos_bootstrap, chaos_database_url),
        "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS": str(SESSION_MS),
        "CHECKOUT_SAGA__PAYMENT_TIMEOUT_S": "60",
        "CHECKOUT_PAYMENTS__DECLINE_RATE": "0",
        "CHECKOUT_PAYMENTS__SILENT_RATE": "0",
        "CHECKOUT_PAYMENTS__DUPLICATE_RATE": "0",
    }
    with Fleet(env, tmp_path_factory.mktemp("broker-restart-logs"), PROCESSES) as fleet:
        yield fleet


def _plan() -> ChaosLoad:
    """CHECKOUTS checkouts of one unit each of one SKU stocked with STOCK units."""
    sku = f"BROKER-{uuid.uuid4().hex[:8]}"
    checkouts = [
        Checkout(
            start=CheckoutStarted(
                order_id=uuid.uuid4(),
                buyer_id=f"broker-buyer-{n}",
                cart_id=uuid.uuid4(),
                currency="EUR",
                items=[LineItem(sku=sku, quantity=1, unit_price=Decimal("10.00"))],
            ),
            message_id=uuid.uuid4(),
            redelivered=False,
            restarted=False,
            early_payment=None,
        )
        for n in range(CHECKOUTS)
    ]
    return ChaosLoad(seed=0, stock={sku: STOCK}, checkouts=checkouts)


async def _publish(producer: AIOKafkaProducer, load: ChaosLoad, part: list[Checkout]) -> None:
    for c in part:
        load.published.add(await publish(producer, c.start, c.message_id))


async def _final(db: AsyncEngine, load: ChaosLoad) -> int:
    states = await saga_states(db, load)
    return sum(1 for r in states.values() if r["state"] in ("Confirmed", "Failed"))


async def _restart_broker(proxy: TcpProxy) -> None:
    """Every connection reset, connections refused for OUTAGE_S, then the same address again.

    Meanwhile the services' group sessions run out and are expired, so each group rebalances.
    """
    began = time.monotonic()
    await asyncio.to_thread(proxy.cut)
    # Join only once every member's session has run out, or it is not expired but waited for.
    await asyncio.sleep(SESSION_S + 1.0)
    await asyncio.gather(
        *(expire_silent_members(proxy.upstream, group_id(s), SESSION_MS) for s in SERVICES)
    )
    await asyncio.sleep(OUTAGE_S - (time.monotonic() - began))
    await asyncio.to_thread(proxy.restore)


def _exited(fleet: Fleet) -> dict[str, int | None]:
    return {name: p.poll() for name, p in fleet.procs.items() if p.poll() is not None}


def _log_sizes(fleet: Fleet) -> dict[str, int]:
    return {name: fleet.log(name).stat().st_size for name in fleet.commands}


def _unaware(
    fleet: Fleet, since: dict[str, int], names: list[str], signs: tuple[str, ...]
) -> list[str]:
    """The named processes that logged none of the signs after the given log offsets."""
    unaware = []
    for name in names:
        with fleet.log(name).open("rb") as log:
            log.seek(since[name])
            text = log.read().decode("utf-8", "replace")
        if not any(sign in text for sign in signs):
            unaware.append(name)
    return unaware


async def test_services_ride_out_a_broker_restart(
    broker_proxy: TcpProxy,
    chaos_fleet: Fleet,
    chaos_db: AsyncEngine,
    chaos_producer: AIOKafkaProducer,
) -> None:
    load = _plan()
    await prepare(chaos_db, load)
    half = CHECKOUTS // 2
    await _publish(chaos_producer, load, load.checkouts[:half])
    in_flight, before = half - await _final(chaos_db, load), _log_sizes(chaos_fleet)
    await _restart_broker(broker_proxy)
    await _publish(chaos_producer, load, load.checkouts[half:])

    problems = await until(lambda: violations(chaos_db, load), SETTLE_TIMEOUT_S)
    assert not problems, "\n".join(problems[:40])
    await asyncio.sleep(1.0)  # quiescent: nothing more may change once the invariants hold
    assert await violations(chaos_db, load) == []
    await _assert_sold_exactly_the_stock(chaos_db, load)
    wire = await check_wire(broker_proxy.address, chaos_db, load.published)
    assert not wire.unaccounted, "\n".join(wire.unaccounted[:40])
    assert not wire.missing, "\n".join(wire.missing[:40])

    assert in_flight > 0, "every saga had finished before the outage: nothing was in flight"
    _assert_outage_was_ridden_out(chaos_fleet, before)
    print(
        f"\n[broker restart] {CHECKOUTS} checkouts, {in_flight} in flight at the cut, "
        f"{broker_proxy.cut_connections} connections reset, {OUTAGE_S}s down; "
        f"{wire.records} records on the wire ({wire.redundant} re-sent)",
        file=sys.stderr,
    )


async def _assert_sold_exactly_the_stock(db: AsyncEngine, load: ChaosLoad) -> None:
    """Units conserved, none held, and as many confirmed orders as units deducted."""
    ((sku, stock),) = load.stock.items()
    (product,) = await rows(
        db, "SELECT available, reserved, deducted FROM inventory.products WHERE sku = :s", s=sku
    )
    confirmed = sum(1 for r in (await saga_states(db, load)).values() if r["state"] == "Confirmed")
    assert product["available"] + product["reserved"] + product["deducted"] == stock
    assert product["reserved"] == 0
    assert confirmed == product["deducted"] == min(STOCK, CHECKOUTS)


def _assert_outage_was_ridden_out(fleet: Fleet, before: dict[str, int]) -> None:
    """Every process felt the outage (so it was exercised), none died, none is left behind."""
    consumers = [name for name in fleet.commands if name in SERVICES]
    assert _exited(fleet) == {}, "a process died instead of riding out the outage"
    assert _unaware(fleet, before, list(fleet.commands), BROKER_LOST) == [], "missed the outage"
    assert _unaware(fleet, before, consumers, REJOINED) == [], "a group never rebalanced"
    fleet.stop_all()
    assert fleet.leftovers() == []
