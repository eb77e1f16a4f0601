"""The one command-line entry point: `checkout-saga` (run services, migrate, the embedded stack)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from ops.bench.groups import GroupPolicy
from ops.cli.admin import saga_app, stock_app
from ops.cli.catalog import catalog_cli
from ops.cli.dlq import dlq_app
from ops.cli.outbox import outbox_app
from ops.cli.pricing import pricing_cli
from ops.cli.saga_actions import register as register_saga_actions
from ops.cli.stack import DATA_DIR_ENV, choose_data_dir, chosen_data_dir
from services.platform.settings import Settings
from services.platform.telemetry.logs import configure_logging

cli = typer.Typer(
    name="checkout-saga",
    help="Event-driven checkout saga over Kafka and PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
)
cli.add_typer(stock_app, name="stock")
register_saga_actions(saga_app)
cli.add_typer(saga_app, name="saga")
cli.add_typer(catalog_cli, name="catalog")
cli.add_typer(pricing_cli, name="pricing")
cli.add_typer(dlq_app, name="dlq")
cli.add_typer(outbox_app, name="outbox")


@cli.callback()
def _root(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar=DATA_DIR_ENV,
            help=(
                "The data dir of a `checkout-saga dev` stack: `dev` keeps its data there, every "
                "other command talks to the stack running from it (default .checkout-saga)."
            ),
        ),
    ] = None,
) -> None:
    """Event-driven checkout saga over Kafka and PostgreSQL."""
    choose_data_dir(data_dir)


def _settings() -> Settings:
    settings = Settings()
    # CHECKOUT_LOG_FORMAT=json: JSON lines with order, message and causation ids, e-mails masked.
    configure_logging(settings.log_level, settings.log_format)
    # `transitions` logs every callback of every saga step at INFO: per-message noise.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    return settings


@cli.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the database migrations (CHECKOUT_DATABASE_URL) up to a revision."""
    from services.platform import migrate as migrations
    from services.platform.db import connect_args

    settings = _settings()
    tls = connect_args(settings.database_tls)
    migrations.upgrade(settings.database_url.get_secret_value(), revision, connect_args=tls)
    typer.echo(f"database migrated to {revision}")


@cli.command()
def run(
    services: Annotated[
        list[str] | None,
        typer.Argument(
            help=(
                "Services to run: saga inventory orders cart payments (default: all); "
                "`relay` alone runs only the outbox relay of every service."
            )
        ),
    ] = None,
    relay: Annotated[
        bool, typer.Option(help="Also run the outbox relay for these services.")
    ] = True,
    admin_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help=(
                "Also serve the admin API on this port (CHECKOUT_ADMIN__HTTP_HOST): "
                "/health/live, /health/ready and this process's /metrics."
            ),
        ),
    ] = None,
) -> None:
    """Run services (and their outbox relay) here until Ctrl-C; `run relay` runs only a relay."""
    from services.runtime import SERVICES, Runtime, app_for

    settings = _settings()
    names = list(services or SERVICES)
    if names == ["relay"]:
        from ops.cli.relay import run_relay

        run_relay(settings, admin_port)
        return
    with_relay = relay or "relay" in names
    runtime = Runtime(settings, [n for n in names if n != "relay"], relay=with_relay)
    app = app_for(runtime)
    if admin_port is not None:
        from ops.admin.serve import on_port, serve_alongside

        serve_alongside(app, on_port(settings, admin_port), runtime)
    asyncio.run(app.run())


_DEV_HELP = (
    "Run the whole product here: embedded PostgreSQL and Kafka unless the environment names "
    "them (CHECKOUT_DATABASE_URL, CHECKOUT_KAFKA__BOOTSTRAP_SERVERS). Migrates, creates topics, "
    "seeds demo stock, runs every service and the outbox relay in this process, prints where "
    "everything listens, writes <data-dir>/dev.json (pid and URLs) while it runs, and stops "
    "everything on Ctrl-C or SIGTERM."
)


@cli.command(help=_DEV_HELP, short_help="Run the whole product here, on embedded servers.")
def dev(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help=(
                "PostgreSQL data, logs and the dev.json state file (default: the root "
                f"--data-dir, ${DATA_DIR_ENV}, or .checkout-saga)."
            )
        ),
    ] = None,
    without: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME", help="Leave a service out, e.g. --without payments (repeatable)."
        ),
    ] = None,
    seed: Annotated[bool, typer.Option(help="Create the demo products if missing.")] = True,
    kafka_port: Annotated[
        int, typer.Option(help="Embedded broker port (a free one if taken).")
    ] = 9092,
) -> None:
    """Run the whole product on this machine (help text in _DEV_HELP)."""
    from ops.devstack import DevOptions, run_dev, services_to_run

    _settings()
    try:
        services_to_run(without or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--without") from None
    chosen = data_dir if data_dir is not None else chosen_data_dir()
    run_dev(DevOptions(chosen, tuple(without or ()), seed, kafka_port))


@cli.command()
def demo(
    orders: Annotated[int, typer.Option(min=1, help="How many checkouts to drive.")] = 200,
    concurrency: Annotated[int, typer.Option(min=1, help="Checkouts in flight at once.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the generated checkouts.")] = 1,
) -> None:
    """Drive checkouts through the stack (embedded if none runs) and print a summary."""
    from ops.cli.load import LoadOptions, demo_report, run_load

    _settings()
    run_load(LoadOptions(orders, concurrency, seed, timeout_s=120), demo_report, baseline=False)


@cli.command()
def bench(
    orders: Annotated[int, typer.Option(min=1, help="Closed loop: checkouts to drive.")] = 1000,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Closed loop: checkouts unfinished at once.")
    ] = 100,
    rate: Annotated[
        float | None, typer.Option(min=0.01, help="Open loop: checkouts/s (Poisson arrivals).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Open loop: seconds of sending.")
    ] = None,
    processes: Annotated[int, typer.Option(min=1, help="Processes per service and relays.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the checkouts and arrival times.")] = 1,
    decline_rate: Annotated[float, typer.Option(min=0, max=1, help="Payer declines.")] = 0.1,
    silent_rate: Annotated[float, typer.Option(min=0, max=1, help="Payer never answers.")] = 0.0,
    duplicate_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Payer answers twice.")
    ] = 0.02,
    payment_timeout: Annotated[
        float | None, typer.Option(min=0.1, help="Saga payment deadline, s (3 if silent, else 60).")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=1,
            help="Give up on unfinished sagas (closed loop: whole run; "
            "open loop: after the last send), s.",
        ),
    ] = 600.0,
    history: Annotated[
        int,
        typer.Option(
            min=0, help="Finished checkouts seeded into the database first (owned stack only)."
        ),
    ] = 0,
    vendors: Annotated[
        int,
        typer.Option(
            min=1,
            help="Vendors per checkout: each checkout is a group of one vendor order per vendor, "
            "measured to its checkout_group_completed (1: plain checkouts).",
        ),
    ] = 1,
    policy: Annotated[
        GroupPolicy, typer.Option(help="Groups' policy (mixed: every other group partial).")
    ] = GroupPolicy.ALL_OR_NOTHING,
    short_vendor_share: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Share of groups in which one vendor's product is short of stock."
        ),
    ] = 0.0,
    json_out: Annotated[Path | None, typer.Option(help="Also write the JSON report here.")] = None,
) -> None:
    """Load benchmark, services in their own processes: sagas/s, latency, cost per saga (JSON).

    Starts embedded PostgreSQL and Kafka and spawns every service unless a stack runs
    (CHECKOUT_* URLs or a live `checkout-saga dev`); exits 1 when a saga is lost or stock is not
    conserved. See docs/performance.md.
    """
    from ops.bench.command import run_bench
    from ops.bench.groups import GroupOptions
    from ops.bench.run import BenchOptions
    from ops.bench.stack import Payer

    _settings()
    if (rate is None) != (duration is None):
        raise typer.BadParameter("--rate and --duration go together (open loop)")
    payer = Payer(decline_rate, silent_rate, duplicate_rate, payment_timeout)
    groups = GroupOptions(vendors, policy, short_vendor_share)
    try:
        options = BenchOptions(
            orders,
            concurrency,
            rate,
            duration,
            seed,
            processes,
            payer,
            timeout,
            history=history,
            groups=groups,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    raise typer.Exit(run_bench(options, json_out))


@cli.command("bench-idle")
def bench_idle(
    seconds: Annotated[float, typer.Option(min=1, help="CPU is read over this window.")] = 30.0,
    processes: Annotated[int, typer.Option(min=1, help="Processes per service and relays.")] = 1,
) -> None:
    """What the stack costs with nothing in flight: CPU per group in % of a core (JSON).

    Starts embedded PostgreSQL and Kafka and every service as in `bench`, waits until the
    consumers have gone idle, then reads CPU over the window. See docs/performance.md.
    """
    from ops.bench.idle import run_idle
    from ops.devstack import quiet_client_logs

    _settings()
    quiet_client_logs()
    typer.echo(run_idle(seconds, processes, lambda line: typer.echo(line, err=True)))


@cli.command("cart-api")
def cart_api() -> None:
    """Serve the shoppers' cart and checkout HTTP API (CHECKOUT_CART__HTTP_HOST/PORT)."""
    from services.cart.http.app import serve_http

    asyncio.run(serve_http(_settings()))


@cli.command("admin")
def admin_api(
    port: Annotated[
        int | None, typer.Option(help="Port (default CHECKOUT_ADMIN__HTTP_PORT, 8081).")
    ] = None,
) -> None:
    """Serve the admin API alone: sagas, orders, stock, dead letters, health, /metrics, docs.

    Against CHECKOUT_DATABASE_URL / CHECKOUT_KAFKA__BOOTSTRAP_SERVERS, else the running
    `checkout-saga dev` of this directory (which serves one itself, on 8081).
    """
    from ops.admin.serve import serve_admin, standalone_settings

    settings = standalone_settings(_settings(), port)
    asyncio.run(serve_admin(settings, announce=True))


@cli.command()
def asyncapi() -> None:
    """Print the AsyncAPI document (every topic, payload and header) as JSON."""
    from services.runtime import asyncapi_json

    typer.echo(asyncapi_json(Settings()), nl=False)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
