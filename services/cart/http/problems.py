"""RFC 9457 problem details: every refusal of the cart API, with field-level reasons.

Maps the domain's errors (rule violations, not found, stale version, changed prices, reused
idempotency keys), request validation and plain HTTP errors to application/problem+json.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from services.cart.checkout_rules import PriceChangedError
from services.cart.coupons import CouponRefusedError
from services.cart.domain import CartNotFoundError, CartRuleError, StaleCartError
from services.cart.guesses import TooManyGuessesError
from services.cart.guests import GuestSessionError
from services.cart.http.schemas import FieldError, PriceDifference, Problem, TotalDifference, dump
from services.cart.idempotency import KeyReusedError
from services.cart.merging import InvalidGuestTokenError, MergedElsewhereError
from services.cart.shopping import TotalsChangedError

MEDIA_TYPE = "application/problem+json"
PREFIX = "urn:checkout-saga:problem:"


class ProblemError(Exception):
    """Answer the request with this problem (raised by the HTTP layer itself)."""

    def __init__(self, status: int, title: str, detail: str, *errors: FieldError) -> None:
        super().__init__(detail)
        self.problem = Problem(
            type=f"{PREFIX}{title.lower().replace(' ', '-')}",
            title=title,
            status=status,
            detail=detail,
            errors=list(errors),
        )


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    """The problem as a response, its instance being the request path."""
    problem = problem.model_copy(update={"instance": request.url.path})
    body = dump(problem)
    for optional in ("differences", "total_differences"):
        if body.get(optional) is None:
            body.pop(optional, None)
    return JSONResponse(body, status_code=problem.status, media_type=MEDIA_TYPE)


def _problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Problem:
    return Problem(type=PREFIX + slug, title=title, status=status, detail=detail, **extra)


_SOURCES = ("body", "header", "path", "query")


def _field(loc: Sequence[int | str]) -> str:
    # ("body", "items", 3, "sku") -> "items.3.sku"; ("header", "Idempotency-Key") -> the header.
    parts = loc[1:] if loc and loc[0] in _SOURCES else loc
    return ".".join(str(part) for part in parts) or "body"


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [FieldError(field=_field(e["loc"]), reason=e["msg"]) for e in exc.errors()]
    # A missing or malformed header is a bad request; a body that breaks the rules is not
    # processable.
    on_headers = any(e["loc"] and e["loc"][0] == "header" for e in exc.errors())
    status = 400 if on_headers else 422
    title = "Bad request" if on_headers else "Invalid request"
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return problem_response(
        _problem(status, title.lower().replace(" ", "-"), title, detail, errors=errors), request
    )


async def _on_rule(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CartRuleError)
    errors = [FieldError(field=v.field, reason=v.reason) for v in exc.violations]
    problem = _problem(422, "cart-rule", "Cart rule violated", str(exc), errors=errors)
    return problem_response(problem, request)


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(_problem(404, "not-found", "Not found", str(exc)), request)


async def _on_stale(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StaleCartError)
    detail = f"If-Match does not name the cart's current version ({exc.current}); re-read it"
    problem = _problem(409, "stale-cart", "Stale cart version", detail, current_version=exc.current)
    return problem_response(problem, request)


async def _on_price_changed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PriceChangedError)
    differences = [PriceDifference.of(d) for d in exc.differences]
    detail = (
        "offers changed (price, currency or vendor) since the items were added; the cart is "
        "still active: review it"
    )
    problem = _problem(409, "price-changed", "Prices changed", detail, differences=differences)
    return problem_response(problem, request)


async def _on_totals_changed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TotalsChangedError)
    found = [TotalDifference(field=d.field, was=d.was, now=d.now) for d in exc.differences]
    detail = f"{exc}; the cart is still active: review its totals"
    problem = _problem(409, "totals-changed", "Totals changed", detail, total_differences=found)
    return problem_response(problem, request)


async def _on_key_reused(request: Request, exc: Exception) -> JSONResponse:
    detail = "this Idempotency-Key was already used for a different request"
    problem = _problem(
        409,
        "idempotency-key-reused",
        "Idempotency key reused",
        detail,
        errors=[FieldError(field="Idempotency-Key", reason=detail)],
    )
    return problem_response(problem, request)


async def _on_guest_ended(request: Request, exc: Exception) -> JSONResponse:
    detail = f"{exc}; start a new guest session"
    errors = [FieldError(field="Authorization", reason=detail)]
    problem = _problem(401, "unauthorized", "Unauthorized", detail, errors=errors)
    return problem_response(problem, request)


async def _on_invalid_guest_token(request: Request, exc: Exception) -> JSONResponse:
    detail = f"{exc}: nothing to merge"
    errors = [FieldError(field="guest_token", reason=str(exc))]
    problem = _problem(422, "invalid-guest-token", "Invalid guest token", detail, errors=errors)
    return problem_response(problem, request)


async def _on_merged_elsewhere(request: Request, exc: Exception) -> JSONResponse:
    errors = [FieldError(field="guest_token", reason=str(exc))]
    problem = _problem(
        409, "guest-cart-merged", "Guest cart already merged", str(exc), errors=errors
    )
    return problem_response(problem, request)


async def _on_coupon_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CouponRefusedError)
    errors = [FieldError(field="code", reason=exc.reason)]
    problem = _problem(422, "coupon-refused", "Code not applied", exc.reason, errors=errors)
    return problem_response(problem, request)


async def _on_too_many_guesses(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyGuessesError)
    detail = f"too many codes were refused; try again in {exc.retry_after_s} s"
    problem = _problem(429, "too-many-code-attempts", "Too many code attempts", detail)
    response = problem_response(problem, request)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.problem, request)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    problem = Problem(title=str(exc.detail), status=exc.status_code, detail=str(exc.detail))
    response = problem_response(problem, request)
    response.headers.update(exc.headers or {})
    return response


def install(app: FastAPI) -> None:
    """Answer every refusal of the app with a problem detail."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(CartRuleError, _on_rule)
    app.add_exception_handler(CartNotFoundError, _on_not_found)
    app.add_exception_handler(StaleCartError, _on_stale)
    app.add_exception_handler(PriceChangedError, _on_price_changed)
    app.add_exception_handler(TotalsChangedError, _on_totals_changed)
    app.add_exception_handler(KeyReusedError, _on_key_reused)
    app.add_exception_handler(GuestSessionError, _on_guest_ended)
    app.add_exception_handler(InvalidGuestTokenError, _on_invalid_guest_token)
    app.add_exception_handler(MergedElsewhereError, _on_merged_elsewhere)
    app.add_exception_handler(CouponRefusedError, _on_coupon_refused)
    app.add_exception_handler(TooManyGuessesError, _on_too_many_guesses)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(HTTPException, _on_http)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries: these statuses answer with a problem detail."""
    reasons = {
        400: "Missing or malformed header (identity, Idempotency-Key, If-Match)",
        401: "No buyer identity, or an unknown, expired or ended guest token",
        403: "Guests may not do this (sign in first)",
        404: "No such cart, item or order for this buyer",
        409: "Stale If-Match, changed prices or totals, a reused Idempotency-Key, or a guest "
        "cart merged by another buyer",
        422: "The request breaks a cart rule (field-level reasons)",
        429: "Too many refused coupon codes from this buyer or address (see Retry-After)",
    }
    return {s: {"model": Problem, "description": reasons[s]} for s in statuses}


def as_problems(openapi: dict[str, Any]) -> None:
    """Make every error response of an OpenAPI document a problem detail, and only that.

    FastAPI documents error models as application/json and adds its own validation-error
    schema; this API answers every error as application/problem+json with `Problem`.
    """
    problem = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if str(status).startswith(("4", "5")):
                    response["content"] = problem
    schemas = openapi.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
