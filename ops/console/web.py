"""What every console page shares: the templates, their filters, form reading, the origin guard."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ops.admin.context import AdminContext
from ops.console.auth import same_origin

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
MAX_FORM_BYTES = 1_000_000


@functools.cache
def templates() -> Jinja2Templates:
    """The console's templates, autoescaped; built once, on the first page served."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the operator
    )
    env.filters["when"] = when
    env.filters["age"] = age
    return Jinja2Templates(env=env)


def when(value: datetime | None) -> str:
    """A timestamp as an operator reads it (UTC, milliseconds)."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def age(seconds: float | None) -> str:
    """A duration in the largest unit that keeps it short."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def context_of(request: Request) -> AdminContext:
    """The admin app's state."""
    context: AdminContext = request.app.state.admin
    return context


def page(request: Request, name: str, *, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render a template with what every page needs (whether a token guards the console)."""
    token = context_of(request).settings.admin.token
    guarded = token is not None and bool(token.get_secret_value())
    return templates().TemplateResponse(
        request, name, {"guarded": guarded, **values}, status_code=status_code
    )


async def form(request: Request) -> Mapping[str, list[str]]:
    """An url-encoded form body, every value of each field (no multipart: the forms need none)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def first(fields: Mapping[str, list[str]], name: str) -> str:
    """The first value of a form field, stripped ('' when absent)."""
    return (fields.get(name) or [""])[0].strip()


async def check_origin(request: Request) -> None:
    """Dependency of every console route: a state-changing request must come from this host."""
    if not same_origin(request):
        raise HTTPException(403, "cross-site request refused: no Origin or Referer of this host")
