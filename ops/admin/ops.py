"""Endpoints for machines and readers: liveness, readiness, Prometheus metrics, AsyncAPI."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ops.admin.context import AdminContext
from services.platform.broker import security_kwargs
from services.platform.settings import KafkaSettings
from services.runtime import SERVICES, Runtime, specification

CHECK_TIMEOUT_S = 2.0
"""How long readiness waits for the database and for the broker."""

health = APIRouter(tags=["health"])
"""Open to anyone: orchestrators probe these without credentials."""
router = APIRouter()
"""Behind the token, when one is set."""


class Readiness(BaseModel):
    """What readiness found: `ready` or `not ready`, and each dependency's `ok` or problem."""

    status: str
    checks: dict[str, str]


def _context(request: Request) -> AdminContext:
    context: AdminContext = request.app.state.admin
    return context


@health.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers (no dependency is checked)."""
    return {"status": "live"}


@health.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready"}},
)
async def ready(request: Request) -> JSONResponse:
    """The database answers `SELECT 1` and the broker answers a metadata request, in time."""
    context = _context(request)
    database, kafka = await asyncio.gather(
        database_problem(context.engine), kafka_problem(context.settings.kafka)
    )
    checks = {"database": database or "ok", "kafka": kafka or "ok"}
    ok = database is None and kafka is None
    body = Readiness(status="ready" if ok else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


async def database_problem(engine: AsyncEngine, timeout_s: float = CHECK_TIMEOUT_S) -> str | None:
    """None when the database answers in time, else what went wrong."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return _problem(exc)
    return None


async def kafka_problem(kafka: KafkaSettings, timeout_s: float = CHECK_TIMEOUT_S) -> str | None:
    """None when the broker answers a metadata request in time, else what went wrong."""
    client = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id=f"{kafka.client_id}-health",
        request_timeout_ms=int(timeout_s * 1000),
        **security_kwargs(kafka),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.start()
            await client.list_topics()
    except Exception as exc:
        return _problem(exc)
    finally:
        await client.close()
    return None


def _problem(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"[:300]


@router.get(
    "/metrics",
    tags=["telemetry"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Every metric in the Prometheus text format (database and broker gauges refreshed now)."""
    body = await _context(request).telemetry.scrape()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/asyncapi", tags=["docs"], response_class=HTMLResponse)
async def asyncapi_page(request: Request) -> HTMLResponse:
    """The AsyncAPI document rendered for reading: every topic, payload and header."""
    document = _specification(_context(request)).to_specification()
    return HTMLResponse(get_asyncapi_html(document, try_it_out_path=None))


@router.get("/asyncapi.json", tags=["docs"])
async def asyncapi_document(request: Request) -> Any:
    """The AsyncAPI 3 document as JSON."""
    return _specification(_context(request)).to_specification().to_jsonable()


def _specification(context: AdminContext) -> AsyncAPI:
    if context.asyncapi is None:
        # Without a runtime of its own, describe the whole product (a runtime that never starts).
        runtime = context.runtime or Runtime(context.settings, SERVICES)
        context.asyncapi = specification(runtime)
    return context.asyncapi
