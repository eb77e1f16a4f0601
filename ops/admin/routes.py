"""The operator endpoints under /admin/v1: sagas, checkouts, orders, stock (read, set), dead letters."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request
from pydantic import BaseModel

from contracts.types import Sku
from ops.admin.actions import (
    MAX_OPERATOR,
    REFUSED,
    ActionRequest,
    ActionView,
    operator_of,
    perform,
)
from ops.admin.context import AdminContext
from ops.admin.queries import (
    DeadLetterView,
    OrderView,
    SagaView,
    StockChange,
    StockView,
    dead_letters,
)
from ops.admin.stuck import StuckSaga, limits_of, stuck_sagas
from ops.admin.timeline import CheckoutView, checkout_view
from saga import repository as saga_repo
from saga.instance import SagaState
from saga.operator import Action
from services.inventory import repository as inventory_repo
from services.orders import repository as orders_repo

router = APIRouter(tags=["admin"])


class Refusal(BaseModel):
    """Why a request was refused (400, 401, 404, 409): FastAPI's `detail`, as one sentence."""

    detail: str


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Refusal, "description": "Nothing by that id or name"}
}
UNREADABLE: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Refusal,
        "description": "The body is not text FastAPI can parse (e.g. not UTF-8)",
    }
}


def _context(request: Request) -> AdminContext:
    context: AdminContext = request.app.state.admin
    return context


@router.get("/sagas", response_model=list[SagaView])
async def list_sagas(
    request: Request,
    state: SagaState | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[SagaView]:
    """Sagas, newest first, optionally only those in one state."""
    async with _context(request).engine.connect() as conn:
        found = await saga_repo.list_sagas(conn, state, limit)
    return [SagaView.of(saga) for saga in found]


# Before /sagas/{order_id}, which would otherwise take "stuck" for an order id.
@router.get("/sagas/stuck", response_model=list[StuckSaga])
async def list_stuck_sagas(
    request: Request, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[StuckSaga]:
    """Sagas in a state longer than its limit (CHECKOUT_SAGA__STUCK_AFTER_S__*), oldest first,
    each with what it waits for and why: not answered yet, or not even published (relay)."""
    context = _context(request)
    async with context.engine.connect() as conn:
        return await stuck_sagas(conn, limits_of(context.settings.saga), limit)


Operator = Annotated[str | None, Header(max_length=MAX_OPERATOR)]
ACTED: dict[int | str, dict[str, Any]] = {**NOT_FOUND, **REFUSED, **UNREADABLE}


@router.post("/sagas/{order_id}/abort", response_model=ActionView, responses=ACTED)
async def abort_saga(
    request: Request, order_id: uuid.UUID, body: ActionRequest, x_operator: Operator = None
) -> ActionView:
    """Fail a saga that is not final now, with compensation: release its stock, fail the order,
    refund a payment taken (answers that come later are released or refunded as late ones).
    A final saga is refused (409, with the reason). Recorded with who, when and why."""
    actor = operator_of(body, x_operator)
    return await perform(_context(request), order_id, Action.ABORT, body, actor)


@router.post("/sagas/{order_id}/retry", response_model=ActionView, responses=ACTED)
async def retry_saga(
    request: Request, order_id: uuid.UUID, body: ActionRequest, x_operator: Operator = None
) -> ActionView:
    """Re-send the command a saga that is not final waits on, under its first message id (a
    receiver that already applied it drops the copy); a payment request also gets a new
    deadline. A final saga is refused (409, with the reason). Recorded with who, when and why."""
    actor = operator_of(body, x_operator)
    return await perform(_context(request), order_id, Action.RETRY, body, actor)


@router.get("/sagas/{order_id}", response_model=SagaView, responses=NOT_FOUND)
async def get_saga(request: Request, order_id: uuid.UUID) -> SagaView:
    """One saga by its id (= the order id)."""
    async with _context(request).engine.connect() as conn:
        saga = await saga_repo.load(conn, order_id)
    if saga is None:
        raise HTTPException(404, f"no saga {order_id}")
    return SagaView.of(saga)


@router.get("/checkouts/{checkout_id}", response_model=CheckoutView, responses=NOT_FOUND)
async def get_checkout(request: Request, checkout_id: uuid.UUID) -> CheckoutView:
    """One checkout by its order or group id: its timeline across every service, in order (each
    message consumed and produced, with outcome and transition, and operator actions), plus its
    saga, orders, reservations and cart as they are now."""
    context = _context(request)
    async with context.engine.connect() as conn:
        view = await checkout_view(conn, context.schemas, checkout_id)
    if view is None:
        raise HTTPException(404, f"nothing is known about checkout {checkout_id}")
    return view


@router.get("/orders/{order_id}", response_model=OrderView, responses=NOT_FOUND)
async def get_order(request: Request, order_id: uuid.UUID) -> OrderView:
    """One order as the orders service keeps it (read straight from its schema)."""
    async with _context(request).engine.connect() as conn:
        order = await orders_repo.get_order(conn, order_id)
    if order is None:
        raise HTTPException(404, f"no order {order_id}")
    return OrderView.model_validate(order)


@router.get("/stock", response_model=list[StockView])
async def get_stock(
    request: Request, sku: Annotated[list[Sku] | None, Query()] = None
) -> list[StockView]:
    """Available, reserved and deducted units per product (all, or the named SKUs)."""
    async with _context(request).engine.connect() as conn:
        rows = await inventory_repo.stock(conn, sku or None)
    return [StockView.model_validate(row) for row in rows]


@router.put("/stock/{sku}", response_model=StockView, responses=UNREADABLE)
async def set_stock(
    request: Request,
    sku: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")],
    change: StockChange,
) -> StockView:
    """Create a product or set its available units; reserved and deducted units stay."""
    async with _context(request).engine.begin() as conn:
        await inventory_repo.set_stock(conn, sku, change.available)
        rows = await inventory_repo.stock(conn, [sku])
    return StockView.model_validate(rows[0])


@router.get("/dead-letters", response_model=list[DeadLetterView], responses=NOT_FOUND)
async def list_dead_letters(
    request: Request,
    schema: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetterView]:
    """Messages a service rejected, newest first, from every service's outbox (or one schema)."""
    context = _context(request)
    if schema is not None and schema not in context.schemas:
        raise HTTPException(404, f"no service schema {schema!r}; one of {list(context.schemas)}")
    schemas = [schema] if schema else list(context.schemas)
    async with context.engine.connect() as conn:
        return await dead_letters(conn, schemas, limit)
