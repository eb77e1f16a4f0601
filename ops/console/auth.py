"""Who may use the admin app: the bearer token, or the console's session cookie derived from it.

Browsers send no bearer header when they navigate, so `/console/login` trades the token for an
HttpOnly, SameSite=Strict cookie. The cookie holds an HMAC of the token, not the token, so the
browser's cookie store never holds the credential the API and the CLI use. Actions posted from
the console also need an Origin (or Referer) of this very host: SameSite keeps a cross-site page
from riding the cookie, and the origin check covers an open console (no token) as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

COOKIE = "checkout_console"
CONSOLE_PREFIX = "/console"
LOGIN_PATH = f"{CONSOLE_PREFIX}/login"
STATIC_PREFIX = f"{CONSOLE_PREFIX}/static/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION_LABEL = b"checkout-saga console session"


def session_value(token: str) -> str:
    """The cookie's value for this token: an HMAC of it (the token itself never leaves the form)."""
    return hmac.new(token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def bearer_accepted(request: Request, token: str) -> bool:
    """True when the request carries `Authorization: Bearer <token>`."""
    given = request.headers.get("authorization", "").encode()
    return secrets.compare_digest(given, f"Bearer {token}".encode())


def cookie_accepted(request: Request, token: str) -> bool:
    """True when the request carries the session cookie of this token."""
    cookie = request.cookies.get(COOKIE, "").encode()
    return secrets.compare_digest(cookie, session_value(token).encode())


def needs_no_token(path: str) -> bool:
    """The login page and the static files (htmx, CSS) are open: they hold nothing secret."""
    return path == LOGIN_PATH or path.startswith(STATIC_PREFIX)


def is_console(path: str) -> bool:
    """A console page (answered with a redirect to the login page, not a 401 JSON)."""
    return path == CONSOLE_PREFIX or path.startswith(f"{CONSOLE_PREFIX}/")


def same_origin(request: Request) -> bool:
    """A state-changing request must come from a page of this host (Origin, else Referer)."""
    if request.method in SAFE_METHODS:
        return True
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc == request.headers.get("host")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path only (no open redirect), else the flow page."""
    if target and target.startswith(f"{CONSOLE_PREFIX}/") and not target.startswith("//"):
        return target
    return f"{CONSOLE_PREFIX}/"


def refuse(request: Request) -> Response:
    """A console request without the token: to the login page (htmx is told to go there too)."""
    query = request.url.query
    back = request.url.path + (f"?{query}" if query else "")
    login = f"{LOGIN_PATH}?{urlencode({'next': back})}"
    if request.headers.get("hx-request"):
        # A partial cannot show a login page; htmx follows HX-Redirect with a full navigation.
        return Response("login needed", status_code=401, headers={"HX-Redirect": login})
    return RedirectResponse(login, status_code=303)
