"""`checkout-saga demo`: drive checkouts through a stack and print a summary table.

Two parts: checkouts published as a plain upstream would (latency, throughput, stock), then
multi-vendor carts checked out through the cart service under both policies, counted by how
their checkout groups ended (ops.cli.demo.drive_marketplace).

Against a running stack (CHECKOUT_* URLs set, or a live `checkout-saga dev`) it only drives;
otherwise it starts the embedded servers and every service in this process, and stops them after.
`checkout-saga bench` measures with services in processes of their own (ops.bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from contracts.topics import all_topics
from ops.bench.stack import running_stack
from ops.cli.demo import DEMO_CATALOG, GroupTally, drive_marketplace, seed_catalog, tally_rows
from ops.devstack import DevOptions, Infrastructure, dev_settings, quiet_client_logs
from ops.loadgen import LoadResult, commit_rate, drive, make_checkouts
from services.platform import migrate
from services.platform.db import create_engine
from services.platform.embedded import free_port
from services.platform.settings import PaymentSimulatorSettings, SagaSettings, Settings
from services.platform.topics import ensure_topics
from services.runtime import SERVICES, Runtime

DEMO_PAYMENTS = PaymentSimulatorSettings(decline_rate=0.1, silent_rate=0.02, duplicate_rate=0.05)
"""The demo's payer declines some, ignores a few and answers some twice, so every path shows."""


@dataclass(frozen=True)
class LoadOptions:
    """What the user asked to drive."""

    orders: int
    concurrency: int
    seed: int
    timeout_s: float
    carts: int | None = None

    @property
    def marketplace_carts(self) -> int:
        """Multi-vendor carts to check out after the checkouts (default: a fifth, at least 10)."""
        return self.carts if self.carts is not None else max(10, self.orders // 5)


@contextlib.asynccontextmanager
async def _stack(settings: Settings) -> AsyncIterator[Settings]:
    """Every service in this process, with the demo's payment rules and a short deadline."""
    tuned = settings.model_copy(
        update={
            "payments": DEMO_PAYMENTS,
            "saga": SagaSettings(payment_timeout_s=3.0, timeout_poll_interval_s=0.2),
        }
    )
    await ensure_topics(tuned.kafka, all_topics())
    await seed_catalog(tuned)
    runtime = Runtime(tuned, SERVICES)
    await runtime.start()
    try:
        yield tuned
    finally:
        await runtime.stop()


Report = Callable[[LoadResult, float, GroupTally], None]


def run_load(options: LoadOptions, report: Report, *, baseline: bool) -> None:
    """Drive the checkouts against a running stack, or an embedded one started for the run."""
    quiet_client_logs()
    configured = running_stack()
    if configured is not None:
        typer.echo(f"driving the running stack at {configured.kafka.bootstrap_servers}")
        asyncio.run(_drive_and_report(configured, options, report, baseline))
        return
    with tempfile.TemporaryDirectory(prefix="checkout-saga-") as scratch:
        infra = Infrastructure(
            DevOptions(data_dir=Path(scratch), kafka_port=free_port()), environ={}
        )
        try:
            settings = Settings()
            database_url = infra.start_database(settings)
            bootstrap = infra.start_kafka(settings)
            migrate.upgrade(database_url)
            embedded = dev_settings(settings, database_url, bootstrap, short=True)
            asyncio.run(_embedded_run(embedded, options, report, baseline))
        finally:
            infra.stop()


async def _embedded_run(
    settings: Settings,
    options: LoadOptions,
    report: Report,
    baseline: bool,
) -> None:
    typer.echo("starting every service (joining consumer groups takes a few seconds)")
    async with _stack(settings) as tuned:
        await _drive_and_report(tuned, options, report, baseline)


async def _drive_and_report(
    settings: Settings,
    options: LoadOptions,
    report: Report,
    baseline: bool,
) -> None:
    engine = create_engine(settings, pool_size=4)
    try:
        checkouts = make_checkouts(DEMO_CATALOG, options.orders, options.seed)
        with typer.progressbar(length=options.orders, label="checkouts") as bar:
            done = 0

            def progress(finished: int) -> None:
                nonlocal done
                bar.update(finished - done)
                done = finished

            result = await drive(
                settings,
                engine,
                checkouts,
                concurrency=options.concurrency,
                timeout_s=options.timeout_s,
                progress=progress,
            )
        carts = options.marketplace_carts
        typer.echo(f"checking out {carts} multi-vendor carts (partial and all_or_nothing)")
        tally = await drive_marketplace(settings, engine, carts, options.seed, options.timeout_s)
        rate = await commit_rate(engine) if baseline else 0.0
        report(result, rate, tally)
    finally:
        await engine.dispose()


def demo_report(result: LoadResult, _commits_per_s: float, groups: GroupTally) -> None:
    """The summary table `checkout-saga demo` prints."""
    rows = [
        ("checkouts", str(result.orders)),
        ("confirmed", str(result.confirmed)),
        *((f"failed: {reason}", str(n)) for reason, n in result.failed_by_reason.most_common()),
        ("unfinished", str(result.unfinished)),
        ("refunded payments", str(result.refunded)),
        ("latency p50 / p95 / p99", _latencies(result)),
        ("throughput", f"{result.throughput:.1f} sagas/s"),
        ("stock conserved", "yes" if result.stock_conserved else "NO"),
        *tally_rows(groups),
    ]
    width = max(len(k) for k, _ in rows)
    typer.echo("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    if result.unfinished or not result.stock_conserved or groups.unfinished or groups.refused:
        raise typer.Exit(1)


def _latencies(result: LoadResult) -> str:
    return " / ".join(f"{result.percentile(p) * 1000:.0f} ms" for p in (50, 95, 99))
