"""`checkout-saga saga abort|retry|stuck`: operator actions on a saga, and the sagas that are stuck.

Like the other `saga` commands they talk to the database only (ops/cli/admin.py finds it); the
actions go through the saga table (saga/operator.py) and are recorded with who and why.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ops.admin.stuck import StuckSaga, limits_of, stuck_sagas
from ops.cli.admin import run_on_database, run_with_engine
from saga.handlers import policy_of
from saga.operator import Action, ActionOutcome, ActionResult, act
from services.platform.settings import Settings

T = TypeVar("T")

Reason = Annotated[str, typer.Option("--reason", help="Why (kept with the action).")]
OrderId = Annotated[uuid.UUID, typer.Argument(help="Order id (= saga id).")]
OperatorName = Annotated[str | None, typer.Option("--operator", help="Who acts (default: $USER).")]


def _act(order_id: uuid.UUID, action: Action, reason: str, operator: str | None) -> None:
    actor = (operator or os.environ.get("USER") or "cli").strip()
    if not reason.strip() or not actor:
        typer.echo("a reason and an operator are required", err=True)
        raise typer.Exit(2)
    settings = Settings()
    policy = policy_of(settings.saga.payment_timeout_s)

    async def work(engine: AsyncEngine) -> ActionResult:
        return await act(
            engine, order_id, action, actor, reason, policy, lanes=settings.relay.lanes
        )

    result = run_with_engine(work)
    if result.outcome is ActionOutcome.NOT_FOUND:
        typer.echo(f"no saga {order_id}", err=True)
        raise typer.Exit(1)
    if result.outcome is ActionOutcome.REFUSED:
        typer.echo(f"{action.value} {order_id} refused: {result.detail}", err=True)
        raise typer.Exit(1)
    moved = f"{result.from_state} -> {result.to_state}"
    typer.echo(
        f"{action.value} {order_id} applied by {actor}: {result.detail} ({moved}), "
        f"{len(result.message_ids)} command(s) written"
    )


def saga_abort(order_id: OrderId, reason: Reason, operator: OperatorName = None) -> None:
    """Fail a saga that is not final now, with compensation (stock released, payment refunded)."""
    _act(order_id, Action.ABORT, reason, operator)


def saga_retry(order_id: OrderId, reason: Reason, operator: OperatorName = None) -> None:
    """Re-send the command a saga waits on, under the message id it was first sent with."""
    _act(order_id, Action.RETRY, reason, operator)


def saga_stuck(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List sagas in a state longer than its limit, oldest first, with why they wait."""
    limits = limits_of(Settings().saga)

    async def work(conn: AsyncConnection) -> list[StuckSaga]:
        return await stuck_sagas(conn, limits, limit)

    found = run_on_database(work)
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in found], indent=2))
        return
    for saga in found:
        typer.echo(f"{saga.order_id}  {saga.state.value:<13} {saga.age_s:>8.0f} s  {saga.why}")


def register(app: typer.Typer) -> None:
    """Add the commands to the `saga` command group."""
    app.command("abort")(saga_abort)
    app.command("retry")(saga_retry)
    app.command("stuck")(saga_stuck)
