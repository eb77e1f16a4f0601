"""The dead-letters pages: list and filter, inspect one (bytes, headers, reason), replay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from contracts import DEAD_LETTER_TOPIC
from ops.admin.letters import named
from ops.console.web import check_origin, context_of, first, form, page
from services.platform.dlq import DeadLetter, DeadLetterFilter, read_dead_letters, replay

router = APIRouter(
    prefix="/console/dead-letters",
    include_in_schema=False,
    dependencies=[Depends(check_origin)],
)
HEX_WIDTH = 16


@dataclass(frozen=True)
class LetterQuery:
    """The page's filter: original topic, rejecting service, and text in the reason, id or key."""

    topic: str = ""
    service: str = ""
    text: str = ""

    def matches(self, letter: DeadLetter) -> bool:
        """True when every given criterion holds."""
        where = DeadLetterFilter(topic=self.topic or None, service=self.service or None)
        needle = self.text.lower()
        haystack = [letter.error, letter.key or "", letter.message_id or "", str(letter.letter_id)]
        return where.matches(letter) and any(needle in part.lower() for part in haystack)

    def query_string(self) -> str:
        """The filter as the list page's query string."""
        return urlencode({k: v for k, v in vars(self).items() if v})


class BrokerUnavailableError(Exception):
    """The dead-letter topic could not be read: the broker does not answer."""


async def _letters(request: Request) -> list[DeadLetter]:
    kafka = context_of(request).settings.kafka
    try:
        letters = await read_dead_letters(kafka)
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailableError(f"the broker at {kafka.bootstrap_servers}: {exc}") from exc
    # Newest first: the topic is read oldest first per partition.
    return sorted(letters, key=lambda letter: (letter.offset, letter.partition), reverse=True)


async def broker_unavailable(request: Request, exc: Exception) -> Response:
    """A page that says the broker does not answer (503), instead of a server error."""
    return page(
        request, "unavailable.html", status_code=503, problem=str(exc), topic=DEAD_LETTER_TOPIC
    )


@router.get("", response_class=HTMLResponse)
async def list_page(
    request: Request, topic: str = "", service: str = "", text: str = "", replayed: int = -1
) -> Response:
    """Every dead letter on the topic that matches the filter, newest first."""
    query = LetterQuery(topic.strip(), service.strip(), text.strip())
    every = await _letters(request)
    return page(
        request,
        "letters.html",
        letters=[letter for letter in every if query.matches(letter)],
        total=len(every),
        query=query,
        topics=sorted({letter.original_topic for letter in every}),
        services=sorted({letter.rejected_by for letter in every}),
        replayed=replayed,
    )


@router.get("/{letter_id}", response_class=HTMLResponse)
async def letter_page(request: Request, letter_id: uuid.UUID) -> Response:
    """One dead letter: why, where from, its headers and its original bytes."""
    found = [each for each in await _letters(request) if each.letter_id == letter_id]
    if not found:
        raise HTTPException(404, f"no dead letter {letter_id}")
    letter = found[0]
    return page(
        request,
        "letter.html",
        letter=letter,
        text=_text(letter.value),
        dump=hex_dump(letter.value),
        dlq_headers={k: v for k, v in letter.headers.items() if k not in letter.original_headers()},
    )


@router.post("/replay")
async def replay_letters(request: Request) -> Response:
    """Replay the checked letters, or every letter matching the filter; back to the list."""
    fields = await form(request)
    query = LetterQuery(first(fields, "topic"), first(fields, "service"), first(fields, "text"))
    every = await _letters(request)
    if first(fields, "scope") == "matching":
        chosen = [letter for letter in every if query.matches(letter)]
    else:
        chosen = named(every, _ids(fields.get("letter", [])))
    sent = await replay(context_of(request).settings.kafka, chosen)
    back = f"{router.prefix}?{urlencode({**vars(query), 'replayed': sent})}"
    return RedirectResponse(back, status_code=303)


def _ids(values: Sequence[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(value) for value in values]
    except ValueError as exc:
        raise HTTPException(422, f"not a letter id: {exc}") from exc


def _text(value: bytes) -> str | None:
    """The bytes as UTF-8 text, or None when they are not (the hex dump says what they are)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def hex_dump(value: bytes) -> list[str]:
    """The bytes as `offset  hex  ascii` lines, 16 bytes a line."""
    lines = []
    for start in range(0, len(value), HEX_WIDTH):
        chunk = value[start : start + HEX_WIDTH]
        shown = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{start:08x}  {chunk.hex(' '):<{HEX_WIDTH * 3}}  {shown}")
    return lines
