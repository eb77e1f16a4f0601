"""Mounting the console on the admin app: its routers under /console and its static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ops.console import checkouts, letters, login, pages
from ops.console.auth import STATIC_PREFIX
from ops.console.web import STATIC_DIR


def mount_console(app: FastAPI) -> None:
    """Serve the console's pages and assets from this app (left out of its OpenAPI document)."""
    app.include_router(login.router)
    app.include_router(pages.router)
    app.include_router(checkouts.router)
    app.include_router(letters.router)
    app.add_exception_handler(letters.BrokerUnavailableError, letters.broker_unavailable)
    app.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC_DIR), name="console-static")
