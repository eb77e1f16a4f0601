"""Replaying dead letters over the admin API: `POST /admin/v1/dead-letters/replay`.

Letters are read from the `checkout.dead_letter` topic (services/platform/dlq.py, as the CLI
does: the topic outlives the outbox's purge) and republished with their original bytes, key and
headers. Only named letters are replayed, never "everything": a client lists them first.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from ops.admin.context import AdminContext
from ops.admin.routes import NOT_FOUND, UNREADABLE
from services.platform.dlq import DeadLetter, read_dead_letters, replay

router = APIRouter(tags=["admin"])


class ReplayRequest(BaseModel):
    """The dead letters to republish: their ids (a letter's own id or its message's id)."""

    model_config = ConfigDict(extra="forbid")

    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=1000)]


class ReplayResult(BaseModel):
    """How many letters were found by those ids and republished; the ids that named none."""

    replayed: int
    missing: list[uuid.UUID]


def named(letters: Sequence[DeadLetter], ids: Sequence[uuid.UUID]) -> list[DeadLetter]:
    """The letters whose own id or message id is one of `ids`, each once, in topic order."""
    wanted = {str(i) for i in ids}
    return [
        letter
        for letter in letters
        if str(letter.letter_id) in wanted or (letter.message_id or "") in wanted
    ]


def missing(found: Sequence[DeadLetter], ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """The ids that name none of the found letters."""
    seen = {str(letter.letter_id) for letter in found}
    seen |= {letter.message_id for letter in found if letter.message_id}
    return [i for i in ids if str(i) not in seen]


@router.post(
    "/dead-letters/replay", response_model=ReplayResult, responses={**NOT_FOUND, **UNREADABLE}
)
async def replay_dead_letters(request: Request, body: ReplayRequest) -> ReplayResult:
    """Republish dead letters to their original topics; 404 when no id names a dead letter.

    A replayed message is consumed as a new delivery: applied once if its cause is gone, or
    dead-lettered again (under a new offset) if it still cannot be applied.
    """
    context: AdminContext = request.app.state.admin
    found = named(await read_dead_letters(context.settings.kafka), body.ids)
    if not found:
        raise HTTPException(404, "none of these ids names a dead letter on the topic")
    sent = await replay(context.settings.kafka, found)
    return ReplayResult(replayed=sent, missing=missing(found, body.ids))
