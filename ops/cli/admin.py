"""`checkout-saga stock ...` and `checkout-saga saga ...`: small admin reads and writes for walkthroughs.

They talk to the database only (never Kafka), the one ops/cli/stack.py finds: CHECKOUT_DATABASE_URL,
else a running `checkout-saga dev`'s (see --data-dir), else the settings default.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ops.admin.timeline import CheckoutView, checkout_view
from ops.cli import stack
from ops.cli.timeline import timeline_text
from saga import repository as saga_repo
from saga.instance import SagaState
from services.inventory import repository as inventory_repo
from services.platform.db import connect_args
from services.platform.settings import Settings

T = TypeVar("T")

stock_app = typer.Typer(help="Read and set product stock.", no_args_is_help=True)
saga_app = typer.Typer(help="Inspect checkout sagas.", no_args_is_help=True)


def run_on_database(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction of a short-lived engine; a clear exit 2 if unreachable."""

    async def in_transaction(engine: AsyncEngine) -> T:
        async with engine.begin() as conn:
            return await work(conn)

    return run_with_engine(in_transaction)


def run_with_engine(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` with a short-lived engine on the stack found; a clear exit 2 if unreachable."""
    found = stack.resolve(Settings())
    url = found.settings.database_url.get_secret_value()
    typer.echo(found.describe(), err=True)

    async def main() -> T:
        # One short command: no pool to keep, so nothing outlives the call.
        tls = connect_args(found.settings.database_tls)
        engine = create_async_engine(url, poolclass=NullPool, connect_args=tls)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except (OSError, DBAPIError) as exc:
        # A missing server, database or schema: say which URL, not a driver traceback.
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        where = make_url(url).render_as_string(hide_password=True)
        typer.echo(f"database {where}: {reason}", err=True)
        typer.echo(stack.hint(), err=True)
        raise typer.Exit(2) from None


def _echo_stock(rows: list[dict[str, Any]]) -> None:
    typer.echo(f"{'SKU':<24} {'AVAILABLE':>10} {'RESERVED':>10} {'DEDUCTED':>10}")
    for row in rows:
        typer.echo(
            f"{row['sku']:<24} {row['available']:>10} {row['reserved']:>10} {row['deducted']:>10}"
        )


@stock_app.command("set")
def stock_set(
    sku: Annotated[str, typer.Argument(help="Product id, e.g. DEMO-KEYBOARD.")],
    available: Annotated[int, typer.Argument(min=0, help="Units available to reserve.")],
) -> None:
    """Create a product or set its available units (reserved and deducted units stay)."""

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        await inventory_repo.set_stock(conn, sku, available)
        return await inventory_repo.stock(conn, [sku])

    _echo_stock(run_on_database(work))


@stock_app.command("show")
def stock_show(
    skus: Annotated[
        list[str] | None, typer.Argument(help="Products to show (default: all).")
    ] = None,
) -> None:
    """Show available, reserved and deducted units per product."""

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        return await inventory_repo.stock(conn, skus or None)

    rows = run_on_database(work)
    missing = sorted(set(skus or ()) - {str(r["sku"]) for r in rows})
    _echo_stock(rows)
    if missing:
        typer.echo(f"unknown: {', '.join(missing)}", err=True)
        raise typer.Exit(1)


def _summary(saga: saga_repo.StoredSaga) -> dict[str, Any]:
    data = saga.data.model_dump(mode="json")
    return {"id": str(saga.id), "state": saga.state.value, "version": saga.version, "data": data}


@saga_app.command("show")
def saga_show(
    order_id: Annotated[uuid.UUID, typer.Argument(help="Order id (= saga id).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one saga: its state, version and everything it remembers."""

    async def work(conn: AsyncConnection) -> saga_repo.StoredSaga | None:
        return await saga_repo.load(conn, order_id)

    saga = run_on_database(work)
    if saga is None:
        typer.echo(f"no saga {order_id}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(_summary(saga), indent=2))
        return
    typer.echo(f"saga     {saga.id}\nstate    {saga.state.value}\nversion  {saga.version}")
    typer.echo(f"data     {json.dumps(_summary(saga)['data'], indent=2)}")


@saga_app.command("list")
def saga_list(
    state: Annotated[SagaState | None, typer.Option(help="Only sagas in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List sagas, newest first."""

    async def work(conn: AsyncConnection) -> list[saga_repo.StoredSaga]:
        return await saga_repo.list_sagas(conn, state, limit)

    sagas = run_on_database(work)
    if as_json:
        typer.echo(json.dumps([_summary(saga) for saga in sagas], indent=2))
        return
    for saga in sagas:
        data = saga.data
        reason = f"  {data.failure_reason}" if data.failure_reason else ""
        typer.echo(
            f"{saga.id}  {saga.state.value:<13} {data.amount:>10} {data.currency}  "
            f"{data.buyer_id}{reason}"
        )


@saga_app.command("timeline")
def saga_timeline(
    checkout_id: Annotated[uuid.UUID, typer.Argument(help="Order id or checkout group id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one checkout's timeline: every message each service consumed and produced, in order."""
    from services.runtime import SERVICES  # the services' apps: only this command needs them

    schemas = list(SERVICES)  # every service schema has a journal

    async def work(conn: AsyncConnection) -> CheckoutView | None:
        return await checkout_view(conn, schemas, checkout_id)

    view = run_on_database(work)
    if view is None:
        typer.echo(f"nothing is known about checkout {checkout_id}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
        return
    typer.echo("\n".join(timeline_text(view)))
