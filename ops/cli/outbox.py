"""`checkout-saga outbox status`: what every service's outbox owes Kafka, and how far behind it is.

Talks to the database only: CHECKOUT_DATABASE_URL when set, else a running `checkout-saga dev`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection

from ops.cli.admin import run_on_database
from services.platform.outbox import OutboxStatus, outbox_table, status
from services.runtime import SERVICES

outbox_app = typer.Typer(help="Inspect the services' transactional outboxes.", no_args_is_help=True)


@outbox_app.command("status")
def outbox_status(
    schemas: Annotated[
        list[str] | None,
        typer.Option("--schema", help="Only this schema (repeatable; default: every service)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Due and delayed unsent rows, the oldest due row's age, and sent rows not yet purged.

    Exits 1 when a due row has waited over a minute: no relay is publishing that schema.
    """
    metadata = MetaData()
    # Each service keeps its outbox in the schema named after it.
    tables = [outbox_table(metadata, schema) for schema in schemas or SERVICES]

    async def work(conn: AsyncConnection) -> list[OutboxStatus]:
        return [await status(conn, table) for table in tables]

    found = run_on_database(work)
    if as_json:
        typer.echo(json.dumps([_jsonable(s) for s in found], indent=2))
    else:
        _echo(found)
    if any(s.oldest_due_age_s > STALLED_AFTER_S for s in found):
        raise typer.Exit(1)


STALLED_AFTER_S = 60.0
"""A due row older than this means no relay serves its schema (they wake within a second)."""


def _jsonable(found: OutboxStatus) -> dict[str, Any]:
    data = asdict(found)
    data["last_sent_at"] = found.last_sent_at.isoformat() if found.last_sent_at else None
    return data


def _echo(found: list[OutboxStatus]) -> None:
    typer.echo(
        f"{'SCHEMA':<10} {'DUE':>8} {'DELAYED':>8} {'OLDEST DUE':>11} {'SENT':>9}  LAST SENT"
    )
    for s in found:
        last = s.last_sent_at.isoformat(timespec="seconds") if s.last_sent_at else "-"
        age = f"{s.oldest_due_age_s:.1f}s"
        typer.echo(f"{s.schema:<10} {s.due:>8} {s.delayed:>8} {age:>11} {s.sent:>9}  {last}")
