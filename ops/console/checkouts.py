"""The stuck and checkout pages, and the operator's abort and retry posted from them.

The figures come from ops/admin/stuck.py and ops/admin/timeline.py, the actions go through
ops/admin/actions.py: the console shows what the admin API answers, with nothing of its own.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ops.admin.actions import ActionRequest, perform
from ops.admin.stuck import limits_of, stuck_sagas
from ops.admin.timeline import checkout_view
from ops.console.web import check_origin, context_of, first, form, page
from saga.operator import Action

router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(check_origin)])
STUCK_LIMIT = 500
CONSOLE_OPERATOR = "console"
"""Who acted, when the form leaves the operator's name empty."""


@router.get("/stuck", response_class=HTMLResponse)
async def stuck_page(request: Request) -> Response:
    """Sagas past their state's limit, oldest first, with what each waits for."""
    context = context_of(request)
    limits = limits_of(context.settings.saga)
    async with context.engine.connect() as conn:
        stuck = await stuck_sagas(conn, limits, STUCK_LIMIT)
    return page(request, "stuck.html", section="stuck", stuck=stuck, limits=limits)


@router.get("/checkouts", response_class=HTMLResponse)
async def search(request: Request, id: str = "") -> Response:
    """The search box's target: on to the checkout's page, or the form again with why not."""
    if not id.strip():
        return page(request, "search.html", error=None, given="")
    try:
        checkout_id = uuid.UUID(id.strip())
    except ValueError:
        error = "An order or group id is a UUID."
        return page(request, "search.html", status_code=422, error=error, given=id)
    return RedirectResponse(f"{router.prefix}/checkouts/{checkout_id}", status_code=303)


@router.get("/checkouts/{checkout_id}", response_class=HTMLResponse)
async def checkout_page(
    request: Request, checkout_id: uuid.UUID, done: str = "", refused: str = ""
) -> Response:
    """One checkout: its timeline in order, its saga, orders, reservations and cart; actions."""
    context = context_of(request)
    async with context.engine.connect() as conn:
        view = await checkout_view(conn, context.schemas, checkout_id)
    if view is None:
        error = f"Nothing is known of {checkout_id}: no saga, order or journal entry."
        return page(request, "search.html", status_code=404, error=error, given=str(checkout_id))
    return page(request, "checkout.html", view=view, done=done, refused=refused)


@router.post("/sagas/{order_id}/{action}")
async def act_on_saga(request: Request, order_id: uuid.UUID, action: Action) -> Response:
    """Abort or retry a saga with the operator's reason; back to its checkout page."""
    fields = await form(request)
    reason, actor = first(fields, "reason"), first(fields, "operator") or CONSOLE_OPERATOR
    back = f"{router.prefix}/checkouts/{first(fields, 'checkout') or order_id}"
    if not reason:
        return RedirectResponse(f"{back}?{urlencode({'refused': 'A reason is required.'})}", 303)
    try:
        body = ActionRequest(reason=reason, operator=actor)
        done = await perform(context_of(request), order_id, action, body, actor)
    except HTTPException as exc:
        return RedirectResponse(f"{back}?{urlencode({'refused': str(exc.detail)})}", 303)
    except ValueError as exc:  # the request model refused the text (too long, NUL)
        return RedirectResponse(f"{back}?{urlencode({'refused': str(exc)[:300]})}", 303)
    note = f"{action.value}: {done.transition} ({done.from_state} → {done.to_state})"
    return RedirectResponse(f"{back}?{urlencode({'done': note})}", 303)
