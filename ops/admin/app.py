"""The admin API application: `create_admin_app(settings, engine, runtime)`."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from ops.admin import business, letters, ops, pricing, routes
from ops.admin.context import AdminContext
from ops.admin.queries import SagaStateProbe
from ops.admin.stuck import limits_of
from ops.console import auth as console_auth
from ops.console.mount import mount_console
from services.cart.business_queries import BusinessProbe
from services.cart.cache import cart_cache
from services.platform.settings import Settings
from services.platform.telemetry import Telemetry
from services.platform.telemetry.probes import ConsumerLagProbe, OutboxProbe
from services.runtime import SERVICES, Runtime, build_specs, consumer_groups

API_PREFIX = "/admin/v1"
OPEN_PREFIX = "/health/"
"""Paths that never need the token: orchestrators probe them without credentials."""

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "No bearer token, or not the one set (only when a token is set)",
        "headers": {
            "WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}
        },
        # Spelled out: with a model, FastAPI would file it under the route's media type (HTML).
        "content": {"application/json": {"schema": routes.Refusal.model_json_schema()}},
    }
}

_DESCRIPTION = """\
The operator's view of checkout-saga: sagas, orders, stock and dead letters, setting stock,
the cart's business figures, the shop's pricing rules (promotions, shipping methods, tax
rates), health checks, Prometheus metrics and the AsyncAPI document of the Kafka wire.

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
    """The admin API over this engine; the caller creates and disposes engine and runtime,
    and closes `app.state.admin.cart_cache` (the cart cache pricing rule changes invalidate).

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
    # The cache's client connects lazily: building it here costs nothing until a rule changes.
    cache = cart_cache(settings.cart)
    app.state.admin = AdminContext(settings, engine, shared, schemas, runtime, cart_cache=cache)
    app.add_exception_handler(RequestValidationError, _invalid_input)
    # Documents the scheme in OpenAPI; the token itself is checked by the middleware below.
    bearer = [Security(HTTPBearer(auto_error=False))]
    app.include_router(
        routes.router, prefix=API_PREFIX, dependencies=bearer, responses=UNAUTHORIZED
    )
    app.include_router(
        letters.router, prefix=API_PREFIX, dependencies=bearer, responses=UNAUTHORIZED
    )
    app.include_router(
        business.router, prefix=API_PREFIX, dependencies=bearer, responses=UNAUTHORIZED
    )
    app.include_router(
        pricing.router, prefix=API_PREFIX, dependencies=bearer, responses=UNAUTHORIZED
    )
    app.include_router(ops.router, dependencies=bearer, responses=UNAUTHORIZED)
    app.include_router(ops.health)
    mount_console(app)
    _require_token(app, settings.admin.token)
    _count_refusals(app, shared)  # added last, so it also sees the token's 401s
    return app


def _watch(
    telemetry: Telemetry, settings: Settings, engine: AsyncEngine, *, alone: bool
) -> list[str]:
    """Add the database gauges (and, alone, every group's lag); returns the service schemas."""
    specs = build_specs(settings, SERVICES)
    schemas = [spec.mailbox.schema for spec in specs]
    telemetry.add_probe("sagas", SagaStateProbe(engine, limits_of(settings.saga)))
    telemetry.add_probe("outbox", OutboxProbe(engine, schemas))
    telemetry.add_probe("cart_business", BusinessProbe(engine))
    if alone:  # a runtime reports its own groups' lag
        lag = ConsumerLagProbe(settings.kafka, consumer_groups(specs))
        telemetry.add_probe("consumer_lag:all", lag)
    return schemas


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 answer, but an echoed input JSON cannot carry (1e400, NaN) goes as text.

    FastAPI's own handler fails on those (strict JSON has no infinity), turning a rejected
    request into a 500.
    """
    if not isinstance(exc, RequestValidationError):  # registered for that class only
        raise exc
    detail = _json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": detail}, status_code=422)


def _json_safe(value: Any) -> Any:
    """The value with every infinity and NaN in it replaced by its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _require_token(app: FastAPI, token: SecretStr | None) -> None:
    """Refuse every request but /health/* without the token (if set): bearer header or cookie.

    The console's session cookie (ops/console/auth.py) stands for the token in a browser; a
    console page without either is sent to the login page rather than answered 401.
    """
    if token is None or not token.get_secret_value():
        return
    secret = token.get_secret_value()

    @app.middleware("http")
    async def check_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith(OPEN_PREFIX) or console_auth.needs_no_token(path):
            return await call_next(request)
        if console_auth.bearer_accepted(request, secret):
            return await call_next(request)
        if console_auth.cookie_accepted(request, secret):
            # A cookie rides along with any request the browser makes: changes need our origin.
            if not console_auth.same_origin(request):
                return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
            return await call_next(request)
        if console_auth.is_console(path):
            return console_auth.refuse(request)
        return JSONResponse(
            {"detail": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )


def _count_refusals(app: FastAPI, telemetry: Telemetry) -> None:
    """Count every 4xx answer in the process's metrics: refused input is seen, not just logged."""
    refusals = telemetry.metrics.http_refusals

    @app.middleware("http")
    async def count_refusals(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if 400 <= response.status_code < 500:
            refusals.labels("admin", str(response.status_code)).inc()
        return response
