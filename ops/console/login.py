"""Logging in to the console: the admin token, once, traded for a session cookie."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from ops.console.auth import COOKIE, LOGIN_PATH, safe_next, session_value
from ops.console.web import check_origin, context_of, first, form, page

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_origin)])


def _token(request: Request) -> str:
    token = context_of(request).settings.admin.token
    return token.get_secret_value() if token is not None else ""


@router.get(LOGIN_PATH)
async def login_page(request: Request, next: str | None = None) -> Response:
    """The login form (straight to the console when no token is set)."""
    if not _token(request):
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, "login.html", target=safe_next(next), error=None)


@router.post(LOGIN_PATH)
async def log_in(request: Request) -> Response:
    """Check the token; on success set the session cookie and go where the operator was headed."""
    fields = await form(request)
    token, target = _token(request), safe_next(first(fields, "next"))
    given = first(fields, "token")
    if not token or not secrets.compare_digest(given.encode(), token.encode()):
        return page(
            request, "login.html", status_code=401, target=target, error="That is not the token."
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session_value(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/console/logout")
async def log_out(request: Request) -> Response:
    """Forget the session cookie."""
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
