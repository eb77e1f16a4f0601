"""The flow page: the saga's state diagram with live counts, throughput, latency, backlog, lag."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ops.console.diagram import diagram
from ops.console.flow import WINDOW_MIN, FlowStats, flow_stats
from ops.console.web import check_origin, context_of, page

router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(check_origin)])
REFRESH = "every 2s"
"""How often the flow page's figures reload (an htmx trigger)."""


async def _stats(request: Request) -> FlowStats:
    context = context_of(request)
    async with context.engine.connect() as conn:
        return await flow_stats(conn, context.telemetry, context.schemas)


@router.get("")
async def console_root() -> Response:
    """/console and /console/ are the same page."""
    return RedirectResponse("/console/", status_code=308)


@router.get("/", response_class=HTMLResponse)
async def flow_page(request: Request) -> Response:
    """The whole flow page; its figures then reload themselves."""
    stats = await _stats(request)
    return page(request, "flow.html", **_values(stats))


@router.get("/flow/figures", response_class=HTMLResponse)
async def flow_figures(request: Request) -> Response:
    """The figures part of the flow page alone (what the page polls)."""
    stats = await _stats(request)
    return page(request, "flow_figures.html", **_values(stats))


def _values(stats: FlowStats) -> dict[str, Any]:
    peak = max((minute.finished for minute in stats.minutes), default=0)
    return {
        "stats": stats,
        "drawing": diagram(stats.counts),
        "window_min": WINDOW_MIN,
        "peak": peak,
        "refresh": REFRESH,
    }
