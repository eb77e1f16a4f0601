"""The admin API application: `create_admin_app(settings, engine, runtime)`."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from services.admin import ops, routes
from services.admin.context import AdminContext
from services.admin.queries import SagaStateProbe
from services.platform.settings import Settings
from services.platform.telemetry import Telemetry
from services.platform.telemetry.probes import ConsumerLagProbe, OutboxProbe
from services.runtime import SERVICES, Runtime, build_specs, consumer_groups

API_PREFIX = "/admin/v1"
OPEN_PREFIX = "/health/"
"""Paths that never need the token: orchestrators probe them without credentials."""

_DESCRIPTION = """\
The operator's view of checkout-saga: sagas, orders, stock and dead letters, setting stock,
health checks, Prometheus metrics and the AsyncAPI document of the Kafka wire.

**Auth**: when `CHECKOUT_ADMIN__TOKEN` is set, every path but `/health/*` wants
`Authorization: Bearer <token>` (401 otherwise). Orders, stock and dead letters are read
straight from the services' schemas: this is an operator tool, not a service.
"""


def create_admin_app(
    settings: Settings,
    engine: AsyncEngine,
    runtime: Runtime | None = None,
    *,
    telemetry: Telemetry | None = None,
) -> FastAPI:
    """The admin API over this engine; the caller creates and disposes engine and runtime.

    Metrics are the runtime's (its consumers, saga and relay) when one is given, else
    telemetry's, else a fresh Telemetry's; the database gauges are added to them here.
    """
    shared = runtime.telemetry if runtime is not None else telemetry or Telemetry()
    schemas = _watch(shared, settings, engine, alone=runtime is None)
    app = FastAPI(
        title="checkout-saga admin API",
        version="1.0.0",
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
    )
    app.state.admin = AdminContext(settings, engine, shared, schemas, runtime)
    # Documents the scheme in OpenAPI; the token itself is checked by the middleware below.
    bearer = Security(HTTPBearer(auto_error=False))
    app.include_router(routes.router, prefix=API_PREFIX, dependencies=[bearer])
    app.include_router(ops.router)
    _require_token(app, settings.admin.token)
    return app


def _watch(
    telemetry: Telemetry, settings: Settings, engine: AsyncEngine, *, alone: bool
) -> list[str]:
    """Add the database gauges (and, alone, every group's lag); returns the service schemas."""
    specs = build_specs(settings, SERVICES)
    schemas = [spec.mailbox.schema for spec in specs]
    telemetry.add_probe("sagas", SagaStateProbe(engine))
    telemetry.add_probe("outbox", OutboxProbe(engine, schemas))
    if alone:  # a runtime reports its own groups' lag
        lag = ConsumerLagProbe(settings.kafka, consumer_groups(specs))
        telemetry.add_probe("consumer_lag:all", lag)
    return schemas


def _require_token(app: FastAPI, token: SecretStr | None) -> None:
    """Refuse every request but /health/* without `Authorization: Bearer <token>` (if set)."""
    if token is None or not token.get_secret_value():
        return
    expected = f"Bearer {token.get_secret_value()}".encode()

    @app.middleware("http")
    async def check_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith(OPEN_PREFIX):
            return await call_next(request)
        given = request.headers.get("authorization", "").encode()
        if not secrets.compare_digest(given, expected):
            return JSONResponse(
                {"detail": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)
