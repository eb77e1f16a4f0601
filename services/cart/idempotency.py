"""Idempotency keys: the first response of each (buyer, key), replayed for a repeated request.

A key is claimed by inserting its row in the transaction that does the work, and the response
is stored in that same transaction. A concurrent request with the same key blocks on the
primary key until the first one ends: then it replays the committed response, or, when the
first rolled back (it failed), does the work itself. Only successful responses are kept, so a
refused request may be corrected and retried under the same key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The response first given under a key."""

    status: int
    body: Any


class KeyReusedError(Exception):
    """The key was already used for a different request."""


def fingerprint(method: str, path: str, body: Any) -> str:
    """A hash of what makes two requests the same: method, path and the parsed JSON body."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    conn: AsyncConnection, buyer_id: str, key: str, request_hash: str, ttl: timedelta
) -> StoredResponse | None:
    """Claim the key for this request (None), or the response it already has.

    Raises KeyReusedError when the key belongs to another request. An expired key is
    forgotten first, so it is claimed afresh.
    """
    mine = (idempotency_keys.c.buyer_id == buyer_id) & (idempotency_keys.c.key == key)
    await conn.execute(
        delete(idempotency_keys).where(mine, idempotency_keys.c.created_at < func.now() - ttl)
    )
    inserted = await conn.execute(
        pg_insert(idempotency_keys)
        .values(buyer_id=buyer_id, key=key, request_hash=request_hash)
        .on_conflict_do_nothing(index_elements=["buyer_id", "key"])
        .returning(idempotency_keys.c.key)
    )
    if inserted.first() is not None:
        return None
    row = (await conn.execute(select(idempotency_keys).where(mine))).one()
    if row.request_hash != request_hash:
        raise KeyReusedError(key)
    return StoredResponse(row.response_status, row.response_body)


async def record(conn: AsyncConnection, buyer_id: str, key: str, response: StoredResponse) -> None:
    """Store the response of the request that claimed the key."""
    await conn.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.buyer_id == buyer_id, idempotency_keys.c.key == key)
        .values(response_status=response.status, response_body=response.body)
    )


async def purge_expired(conn: AsyncConnection, ttl: timedelta, limit: int = 1000) -> int:
    """Delete up to `limit` keys older than the TTL; returns how many went."""
    table = idempotency_keys
    expired = (
        select(table.c.buyer_id, table.c.key)
        .where(table.c.created_at < func.now() - ttl)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await conn.execute(
        delete(table).where(tuple_(table.c.buyer_id, table.c.key).in_(expired))
    )
    return result.rowcount
