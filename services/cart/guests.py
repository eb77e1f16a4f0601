"""Guest sessions: issue an opaque expiring token, resolve it, and lock it for a merge.

Only the token's SHA-256 is stored. Times are the database's (`now()`), like every other
deadline of the cart, so expiry does not depend on the API process's clock.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import store
from services.cart.domain import CartStatus
from services.cart.guest_rules import guest_buyer_id, is_guest, session_of, token_digest
from services.cart.tables import carts, guest_sessions

TOKEN_BYTES = 32
"""Random bytes per token (secrets.token_urlsafe): 256 bits, not guessable."""


class GuestSessionError(Exception):
    """The guest token is unknown, expired or its session ended (a merge ends it)."""


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new guest session and its token (the only time the token is known in clear)."""

    session_id: uuid.UUID
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LockedSession:
    """A guest session locked for a merge: whether it is still usable, and any merge's answer."""

    session_id: uuid.UUID
    live: bool
    merged_by: str | None
    merge_result: Any


_LIVE = guest_sessions.c.ended_at.is_(None) & (guest_sessions.c.expires_at > func.now())


async def issue(conn: AsyncConnection, ttl: timedelta) -> IssuedSession:
    """A new guest session valid for ttl."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session_id = uuid.uuid4()
    expires_at = await conn.scalar(
        guest_sessions.insert()
        .values(
            session_id=session_id,
            token_sha256=token_digest(token),
            expires_at=func.now() + ttl,
        )
        .returning(guest_sessions.c.expires_at)
    )
    assert expires_at is not None
    return IssuedSession(session_id, token, expires_at)


async def live_session(conn: AsyncConnection, token: str) -> uuid.UUID | None:
    """The session of a token that is known, unexpired and not ended; else None."""
    return await conn.scalar(
        select(guest_sessions.c.session_id).where(
            guest_sessions.c.token_sha256 == token_digest(token), _LIVE
        )
    )


async def hold(conn: AsyncConnection, buyer_id: str) -> None:
    """Before a guest's change: take the guest's cart lock, then check the session still lives.

    A merge holds the same lock while it ends the session, so a change that waited for it
    sees the session ended (GuestSessionError) instead of opening a cart no token can reach.
    Nothing to do for a signed-in buyer.
    """
    if not is_guest(buyer_id):
        return
    await store.lock_buyer(conn, buyer_id)
    live = await conn.scalar(
        select(guest_sessions.c.session_id).where(
            guest_sessions.c.session_id == session_of(buyer_id), _LIVE
        )
    )
    if live is None:
        raise GuestSessionError("the guest session ended")


async def lock_for_merge(conn: AsyncConnection, token: str) -> LockedSession | None:
    """The token's session, row-locked until the transaction ends (None: unknown token).

    Two merges of one token queue here: the second sees what the first committed.
    """
    row = (
        await conn.execute(
            select(guest_sessions, _LIVE.label("live"))
            .where(guest_sessions.c.token_sha256 == token_digest(token))
            .with_for_update(of=guest_sessions)
        )
    ).first()
    if row is None:
        return None
    return LockedSession(row.session_id, bool(row.live), row.merged_by, row.merge_result)


async def record_merge(
    conn: AsyncConnection, session_id: uuid.UUID, buyer_id: str, answer: Any
) -> None:
    """End the session as merged by this buyer, keeping the merge's answer for retries."""
    await conn.execute(
        update(guest_sessions)
        .where(guest_sessions.c.session_id == session_id)
        .values(ended_at=func.now(), merged_by=buyer_id, merge_result=answer)
    )


async def purge(conn: AsyncConnection, after: timedelta) -> int:
    """Delete sessions over (expired or ended) for longer than `after`, and their dead carts.

    A guest cart that became an order stays (the order view and its receipt name it); one left
    abandoned or merged goes with its session: no token can reach it any more.
    """
    over = (
        delete(guest_sessions)
        .where(
            func.coalesce(guest_sessions.c.ended_at, guest_sessions.c.expires_at)
            < func.now() - after
        )
        .returning(guest_sessions.c.session_id)
    )
    ended = [row.session_id for row in await conn.execute(over)]
    if ended:
        await conn.execute(
            delete(carts).where(
                carts.c.buyer_id.in_([guest_buyer_id(s) for s in ended]),
                carts.c.status.in_([CartStatus.ABANDONED, CartStatus.MERGED]),
            )
        )
    return len(ended)
