"""Operator actions over HTTP: the request and answer of abort and retry, and how they map to codes.

The saga table decides (saga/operator.py); this module only names the operator, runs the
action and turns a refusal into 409 and an unknown saga into 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from ops.admin.context import AdminContext
from saga.handlers import policy_of
from saga.instance import SagaState
from saga.operator import Action, ActionOutcome, ActionResult, act
from services.platform.consumer import ConflictError

DEFAULT_OPERATOR = "admin-api"
"""Who acted, when neither the body nor the X-Operator header says."""
MAX_OPERATOR = 100
MAX_REASON = 500
_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"
"""Some text that is not only blanks, and no NUL (PostgreSQL's text cannot hold it)."""


class ActionRequest(BaseModel):
    """Why the operator acts (required, kept with the action) and, optionally, who they are."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_REASON, pattern=_TEXT)
    operator: str | None = Field(default=None, min_length=1, max_length=MAX_OPERATOR, pattern=_TEXT)


class ActionView(BaseModel):
    """An applied action: the row of the saga table it applied, and the commands it wrote."""

    order_id: uuid.UUID
    action: Action
    operator: str
    transition: str
    from_state: SagaState
    to_state: SagaState
    message_ids: list[uuid.UUID]
    """The commands written; for a retry, re-sent under the ids they were first sent with."""


REFUSED: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Refused by the saga table, with the reason (e.g. the saga is final)",
    }
}


def operator_of(body: ActionRequest, header: str | None) -> str:
    """The body's operator, else the X-Operator header's, else DEFAULT_OPERATOR."""
    for name in (body.operator, header):
        if name is not None and name.strip():
            return name.strip()
    return DEFAULT_OPERATOR


async def perform(
    context: AdminContext, order_id: uuid.UUID, action: Action, body: ActionRequest, actor: str
) -> ActionView:
    """Run the action; raise HTTPException 404 (no saga) or 409 (refused, or kept changing)."""
    settings = context.settings
    policy = policy_of(settings.saga.payment_timeout_s)
    try:
        result = await act(
            context.engine, order_id, action, actor, body.reason, policy, lanes=settings.relay.lanes
        )
    except ConflictError:
        detail = "the saga kept changing while the action was decided; try again"
        raise HTTPException(409, detail) from None
    return _view(result, actor)


def _view(result: ActionResult, actor: str) -> ActionView:
    if result.outcome is ActionOutcome.NOT_FOUND:
        raise HTTPException(404, f"no saga {result.order_id}")
    if result.outcome is ActionOutcome.REFUSED or result.from_state is None:
        raise HTTPException(409, result.detail)
    return ActionView(
        order_id=result.order_id,
        action=result.action,
        operator=actor,
        transition=result.detail,
        from_state=result.from_state,
        to_state=result.to_state or result.from_state,
        message_ids=list(result.message_ids),
    )
