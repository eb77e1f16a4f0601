"""Operator actions on a saga (abort, retry): one transaction through the saga table, on record.

Like the deadline poller (saga/timeouts.py) this is a way into the saga that is not a Kafka
message: load the saga with its version, step the pure machine with an internal event, write
the saga under the version check and its commands to the outbox, and record the action in
saga.operator_actions (who, when, why, what the table made of it), refusals included. A version
conflict (a reply applied at the same moment) re-reads and re-decides: the table decides, and
nothing is done twice.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import TextClause, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import utcnow
from saga import machine
from saga import repository as repo
from saga.handlers import record_step
from saga.instance import OperatorAbort, OperatorEvent, OperatorRetry, Outgoing, SagaState
from saga.machine import REJECTED_PAIRS, Outcome, SagaPolicy, trigger_name
from saga.tables import operator_actions, outbox
from services.platform import outbox as outbox_writer
from services.platform.consumer import ConflictError
from services.platform.outbox import NOTIFY_CHANNEL, OutboxMessage, lane_of
from services.platform.telemetry import scope

log = logging.getLogger("checkout_saga.saga.operator")

ATTEMPTS = 5
"""Tries at an action whose saga keeps changing under it (each try re-reads and re-decides)."""


class Action(StrEnum):
    """What an operator asks of a saga; stored in saga.operator_actions.action."""

    ABORT = "abort"
    RETRY = "retry"


class ActionOutcome(StrEnum):
    """What came of it: a row applied, refused by the table, or no such saga (not recorded)."""

    APPLIED = "applied"
    REFUSED = "refused"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class ActionResult:
    """An action's outcome; detail is the row applied or why it was refused."""

    order_id: uuid.UUID
    action: Action
    outcome: ActionOutcome
    from_state: SagaState | None
    to_state: SagaState | None
    detail: str
    message_ids: tuple[uuid.UUID, ...] = ()
    """The commands written (for a retry: re-sent under their first ids)."""


async def act(
    engine: AsyncEngine,
    order_id: uuid.UUID,
    action: Action,
    actor: str,
    reason: str,
    policy: SagaPolicy,
    *,
    lanes: int,
) -> ActionResult:
    """Abort or retry the saga in one transaction; raises ConflictError after ATTEMPTS conflicts.

    lanes: the relay's lane count (CHECKOUT_RELAY__LANES), which places outbox rows.
    """
    if not actor.strip() or not reason.strip():
        raise ValueError("an operator action needs an actor and a reason")
    kind = OperatorAbort if action is Action.ABORT else OperatorRetry
    event = kind(order_id, actor, reason)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            # What the step observes is counted only if this transaction commits.
            with scope.transaction():
                async with engine.begin() as conn:
                    result = await _act_once(conn, event, action, policy, lanes)
        except ConflictError:
            if attempt == ATTEMPTS:
                raise
            continue  # the saga changed since it was read: read it again and re-decide
        _log(result, actor, reason)
        return result
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _act_once(
    conn: AsyncConnection, event: OperatorEvent, action: Action, policy: SagaPolicy, lanes: int
) -> ActionResult:
    saga = await repo.load(conn, event.order_id)
    if saga is None:
        return ActionResult(
            event.order_id, action, ActionOutcome.NOT_FOUND, None, None, f"no saga {event.order_id}"
        )
    now = utcnow()
    result = machine.step(saga.state, saga.data, event, now, policy)
    if result.outcome is Outcome.APPLIED:
        record_step(saga, result, event, now)
        await repo.save(conn, saga, result.state, result.data)
        await _write(conn, action, result.commands, lanes)
        done = ActionResult(
            event.order_id,
            action,
            ActionOutcome.APPLIED,
            saga.state,
            result.state,
            result.transition or "",
            tuple(c.message_id for c in result.commands),
        )
    else:
        # Only a final saga refuses (REJECTED_PAIRS says why); the saga is left as it is.
        why = REJECTED_PAIRS.get((saga.state.value, trigger_name(event)))
        detail = why or result.reason or "refused by the saga table"
        done = ActionResult(
            event.order_id, action, ActionOutcome.REFUSED, saga.state, saga.state, detail
        )
    await _record(conn, done, event)
    return done


async def _write(
    conn: AsyncConnection, action: Action, commands: Sequence[Outgoing], lanes: int
) -> None:
    messages = [OutboxMessage.of(c.message, message_id=c.message_id) for c in commands]
    if action is Action.RETRY:
        await resend(conn, messages, lanes)
    else:
        await outbox_writer.write(conn, outbox, messages, lanes)


_RESEND: TextClause = text(
    "WITH r AS (INSERT INTO saga.outbox (message_id, topic, message_key, lane, payload, headers) "
    "SELECT m, t, k, l, p, CAST(h AS jsonb) FROM unnest(CAST(:ids AS uuid[]), "
    "CAST(:topics AS text[]), CAST(:keys AS text[]), CAST(:lanes AS int2[]), "
    "CAST(:payloads AS bytea[]), CAST(:headers AS text[])) AS u(m, t, k, l, p, h) "
    "ON CONFLICT (message_id) DO UPDATE SET sent_at = NULL, available_at = now(), "
    "lane = EXCLUDED.lane RETURNING lane) "
    f"SELECT pg_notify('{NOTIFY_CHANNEL}', 'saga:' || lane) FROM r"
)
"""Publish these messages (again): a row already there is marked unsent, so the relay publishes
the same message id once more; a purged one is written anew. The outbox's insert trigger does
not fire for an update, so the relay is woken here. Its lane is re-computed in case the lane
count changed since (a row in a lane no relay serves would never leave)."""


async def resend(conn: AsyncConnection, messages: Sequence[OutboxMessage], lanes: int) -> None:
    """Have the relay publish these saga commands again, under the same message ids.

    The receiving service's inbox knows an id it already applied, so nothing is doubled; a
    command it never applied (lost, or dead-lettered rather than claimed) is applied now.
    """
    if not messages:
        return
    await conn.execute(
        _RESEND,
        {
            "ids": [m.message_id for m in messages],
            "topics": [m.topic for m in messages],
            "keys": [m.key for m in messages],
            "lanes": [lane_of(m.key, lanes) for m in messages],
            "payloads": [m.payload for m in messages],
            "headers": [json.dumps(m.headers) for m in messages],
        },
    )


async def _record(conn: AsyncConnection, done: ActionResult, event: OperatorEvent) -> None:
    await conn.execute(
        insert(operator_actions).values(
            order_id=done.order_id,
            action=done.action.value,
            actor=event.actor,
            reason=event.reason,
            outcome=done.outcome.value,
            from_state=done.from_state.value if done.from_state else None,
            to_state=done.to_state.value if done.to_state else None,
            detail=done.detail,
        )
    )


def _log(result: ActionResult, actor: str, reason: str) -> None:
    if result.outcome is ActionOutcome.NOT_FOUND:
        return
    log.warning(
        "operator action on a saga",
        extra={
            "order_id": str(result.order_id),
            "action": result.action.value,
            "actor": actor,
            "reason": reason,
            "outcome": result.outcome.value,
            "detail": result.detail,
        },
    )
