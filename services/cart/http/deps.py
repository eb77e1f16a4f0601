"""What every cart route needs: the app's context, the buyer, If-Match, and idempotent execution.

The buyer is `Authorization: Bearer <buyer id>` or the configured header (X-Buyer-Id). Neither
is checked here: a real deployment puts an authenticating proxy in front of this API. A guest
is `Authorization: Guest <token>`, a token this API issued and checks (`guests`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.cart import guests, idempotency
from services.cart.cache import CartCache, NoCache
from services.cart.guest_rules import GUEST_PREFIX, guest_buyer_id, is_guest
from services.cart.http.problems import ProblemError
from services.cart.http.schemas import FieldError
from services.cart.idempotency import StoredResponse
from services.cart.pricing import Pricer
from services.platform.settings import Settings

MAX_BUYER_ID = 128
_ETAG = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')


@dataclass(frozen=True, slots=True)
class ApiContext:
    """The app's engine, settings and cart cache, shared by every request."""

    engine: AsyncEngine
    settings: Settings
    cache: CartCache = field(default_factory=NoCache)
    pricer: Pricer = field(default_factory=Pricer)

    def __post_init__(self) -> None:
        # The shop's setting decides how every quote treats tax; the pricer's rules are shared.
        self.pricer.prices_include_tax = self.settings.cart.prices_include_tax

    @property
    def lanes(self) -> int:
        """Relay lanes of the cart's outbox."""
        return self.settings.relay.lanes

    @property
    def key_ttl(self) -> timedelta:
        """How long an idempotency key replays its first response."""
        return timedelta(seconds=self.settings.cart.idempotency_ttl_s)

    @property
    def guest_ttl(self) -> timedelta:
        """How long a guest token stays valid after it is issued."""
        return timedelta(seconds=self.settings.cart.guest_ttl_s)


def context(request: Request) -> ApiContext:
    """The context create_http_app stored on the app."""
    ctx = request.app.state.cart_api
    assert isinstance(ctx, ApiContext)
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]

_bearer = HTTPBearer(
    auto_error=False,
    description="The buyer id as the bearer token (or the X-Buyer-Id header).",
)


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "Unauthorized", detail, FieldError(field="Authorization", reason=detail)
    )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes the request: a buyer id, and whether it is a guest's."""

    buyer_id: str
    guest: bool


GUEST_SCHEME = "guest"


async def caller(
    request: Request,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The buyer or guest the request is made for; 401 when there is none (or two)."""
    header = request.headers.get(ctx.settings.cart.buyer_header)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == GUEST_SCHEME:
        if header:
            raise _unauthorized("send a guest token or a buyer id, not both")
        return Caller(await _guest(ctx, token.strip()), guest=True)
    return Caller(_buyer(ctx, header, credentials.credentials if credentials else None), False)


async def _guest(ctx: ApiContext, token: str) -> str:
    async with ctx.engine.connect() as conn:
        session_id = await guests.live_session(conn, token) if token else None
    if session_id is None:
        raise _unauthorized("unknown, expired or ended guest token; start a new guest session")
    return guest_buyer_id(session_id)


def _buyer(ctx: ApiContext, header: str | None, token: str | None) -> str:
    if token and header and token != header:
        raise _unauthorized("the bearer token and the buyer header name different buyers")
    identity = (token or header or "").strip()
    if not identity:
        raise _unauthorized(
            f"send Authorization: Bearer <buyer id>, {ctx.settings.cart.buyer_header}, "
            "or Authorization: Guest <token>"
        )
    if len(identity) > MAX_BUYER_ID:
        raise _unauthorized(f"a buyer id has at most {MAX_BUYER_ID} characters")
    if is_guest(identity):
        raise _unauthorized(f"buyer ids starting with {GUEST_PREFIX!r} are reserved for guests")
    return identity


CallerDep = Annotated[Caller, Depends(caller)]


def buyer(who: CallerDep) -> str:
    """The buyer id the request is made for (a guest's own id for a guest)."""
    return who.buyer_id


Buyer = Annotated[str, Depends(buyer)]


def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='The cart version last seen (its ETag, e.g. "3"); 409 when stale.',
        ),
    ] = None,
) -> int | None:
    """The cart version the client expects, or None to apply the change to any version."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        reason = 'expected a cart version as an entity tag, e.g. "3"'
        raise ProblemError(400, "Bad request", reason, FieldError(field="If-Match", reason=reason))
    return int(match.group(1))


IfMatch = Annotated[int | None, Depends(if_match)]

KeyHeader = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=255,
    description="A unique key per intended operation; a retry with it replays the first answer.",
)
OptionalKey = Annotated[str | None, KeyHeader]
RequiredKey = Annotated[str, KeyHeader]

Work = Callable[[AsyncConnection], Awaitable[StoredResponse]]


async def run_once(
    ctx: ApiContext, buyer_id: str, key: str | None, request_hash: str, work: Work
) -> tuple[StoredResponse, bool]:
    """Run work in one transaction, at most once per idempotency key; (response, replayed).

    Every work here changes the buyer's cart, so its cached copy is invalidated once the
    transaction has ended.
    """
    async with changing(ctx, buyer_id), ctx.engine.begin() as conn:
        await guests.hold(conn, buyer_id)
        if key is not None:
            stored = await idempotency.claim(conn, buyer_id, key, request_hash, ctx.key_ttl)
            if stored is not None:
                return stored, True
        response = await work(conn)
        if key is not None:
            await idempotency.record(conn, buyer_id, key, response)
    return response, False


@asynccontextmanager
async def changing(ctx: ApiContext, buyer_id: str) -> AsyncIterator[None]:
    """Around a transaction that may change the buyer's cart: invalidate its cache afterwards."""
    try:
        yield
    finally:
        # After the commit (a reader's stale store is then refused, see services.cart.cache),
        # and also after a failure: a commit whose answer was lost may still have happened.
        await ctx.cache.invalidate(buyer_id)


def respond(response: StoredResponse, replayed: bool = False, **headers: str) -> JSONResponse:
    """A stored or fresh response, with the cart's ETag when the body carries its version."""
    body: Any = response.body
    out = JSONResponse(body, status_code=response.status)
    if isinstance(body, dict) and "version" in body:
        out.headers["ETag"] = f'"{body["version"]}"'
    if replayed:
        out.headers["Idempotent-Replayed"] = "true"
    out.headers.update(headers)
    return out
