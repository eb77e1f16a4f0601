"""Managing the shop's pricing rules: store, deactivate and list promotions, shipping methods, tax rates.

The write side of rules_store: each write takes a rule its pure type has accepted (built by the
caller, e.g. through rules_checks.built), refuses what the tables cannot hold (rules_checks,
RuleRefusedError) and stores exactly what rules_store reads back: a round trip gives an equal
rule. Codes are stored normalized and logged only masked. The caller owns the transaction and,
after its commit, forgets every cached cart's totals (`CartCache.invalidate_rules`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.promotion_types import Promotion, Selection, mask, normalize_code
from services.cart.rules_checks import (
    CodeTakenError,
    method_problems,
    promotion_problems,
    rate_problems,
    refuse_any,
)
from services.cart.rules_store import method_of, promotion_of, rate_table_of
from services.cart.shipping import ShippingMethod
from services.cart.tables import promotion_uses, promotions, shipping_methods, tax_rates
from services.cart.tax import RateTable

log = logging.getLogger("checkout_saga.cart.rules")

CODE_CONSTRAINT = "uq_promotions_code"


@dataclass(frozen=True, slots=True)
class StoredPromotion:
    """A promotion as the shop keeps it: the rule, whether it applies, and its uses so far."""

    promotion: Promotion
    active: bool
    uses: int


@dataclass(frozen=True, slots=True)
class StoredMethod:
    """A shipping method as the shop keeps it: the rule, its prices' currency, whether offered."""

    method: ShippingMethod
    currency: str
    active: bool


@dataclass(frozen=True, slots=True)
class StoredRate:
    """The rate table of a country ("DE") or region ("US-CA")."""

    area: str
    table: RateTable


def selection_json(selection: Selection) -> dict[str, list[str]]:
    """A selection as stored: every key present, each list sorted."""
    return {
        "skus": sorted(selection.skus),
        "categories": sorted(selection.categories),
        "brands": sorted(selection.brands),
    }


def _promotion_values(promotion: Promotion) -> dict[str, Any]:
    code = promotion.code
    return {
        "code": None if code is None else normalize_code(code),
        "kind": promotion.kind.value,
        "value": promotion.value,
        "stacking": promotion.stacking.value,
        # SQL NULL, not JSON null: "no target" (the whole cart) reads as NULL everywhere.
        "target": null() if promotion.target is None else selection_json(promotion.target),
        "exclusions": selection_json(promotion.exclusions),
        "min_spend": promotion.min_spend,
        "currency": promotion.currency,
        "valid_from": promotion.valid_from,
        "valid_until": promotion.valid_until,
        "limit_total": promotion.limit_total,
        "limit_per_buyer": promotion.limit_per_buyer,
        "priority": promotion.priority,
    }


def _upsert(table: Any, key: str, values: dict[str, Any]) -> Any:
    """Insert the row, or replace every given column of the row with that key."""
    insert = pg_insert(table).values(**values)
    changes = {name: insert.excluded[name] for name in values if name != key}
    return insert.on_conflict_do_update(
        index_elements=[key], set_={**changes, "updated_at": func.now()}
    ).returning(*table.c)


def _with_uses() -> Any:
    uses = func.coalesce(promotion_uses.c.uses, 0).label("uses")
    joined = promotions.outerjoin(
        promotion_uses, promotion_uses.c.promotion_id == promotions.c.promotion_id
    )
    return select(promotions, uses).select_from(joined)


def _stored_promotion(row: Any, uses: int) -> StoredPromotion:
    return StoredPromotion(promotion_of(row), row.active, uses)


async def put_promotion(
    conn: AsyncConnection, promotion: Promotion, *, active: bool = True
) -> StoredPromotion:
    """Create or replace a promotion by its id; CodeTakenError when another one has its code."""
    refuse_any(promotion_problems(promotion))
    values = {"promotion_id": promotion.promotion_id, **_promotion_values(promotion)}
    values["active"] = active
    try:
        # A savepoint, so that a refused code leaves the caller's transaction usable.
        async with conn.begin_nested():
            row = (await conn.execute(_upsert(promotions, "promotion_id", values))).one()
    except IntegrityError as exc:
        if CODE_CONSTRAINT not in str(exc.orig):
            raise
        raise await _code_taken(conn, promotion.promotion_id, values["code"]) from None
    found = await get_promotion(conn, promotion.promotion_id)
    _log_promotion("stored", row)
    return found if found is not None else _stored_promotion(row, 0)


async def _code_taken(conn: AsyncConnection, promotion_id: str, code: str) -> CodeTakenError:
    holder = await conn.scalar(select(promotions.c.promotion_id).where(promotions.c.code == code))
    return CodeTakenError(
        f"promotion {promotion_id}: its code is already promotion {holder}'s "
        "(codes are unique, whether their promotion is active or not)"
    )


def _log_promotion(change: str, row: Any) -> None:
    code = "none (automatic)" if row.code is None else mask(row.code)
    state = "active" if row.active else "inactive"
    log.info("pricing rules: promotion %s %s, code %s, %s", row.promotion_id, change, code, state)


async def deactivate_promotion(conn: AsyncConnection, promotion_id: str) -> StoredPromotion | None:
    """Stop a promotion applying (its code stays reserved, its uses stay); None if unknown."""
    statement = (
        update(promotions)
        .where(promotions.c.promotion_id == promotion_id)
        .values(active=False, updated_at=func.now())
        .returning(promotions.c.promotion_id, promotions.c.code, promotions.c.active)
    )
    row = (await conn.execute(statement)).one_or_none()
    if row is None:
        return None
    _log_promotion("deactivated", row)
    return await get_promotion(conn, promotion_id)


async def get_promotion(conn: AsyncConnection, promotion_id: str) -> StoredPromotion | None:
    """One promotion with its active flag and uses; None if unknown."""
    statement = _with_uses().where(promotions.c.promotion_id == promotion_id)
    row = (await conn.execute(statement)).one_or_none()
    return None if row is None else _stored_promotion(row, row.uses)


async def list_promotions(
    conn: AsyncConnection, active: bool | None = None
) -> list[StoredPromotion]:
    """Every promotion (or only the active or inactive ones) by id, with its uses."""
    statement = _with_uses().order_by(promotions.c.promotion_id)
    if active is not None:
        statement = statement.where(promotions.c.active == active)
    return [_stored_promotion(row, row.uses) for row in await conn.execute(statement)]


def _method_values(method: ShippingMethod, currency: str) -> dict[str, Any]:
    return {
        "method_id": method.method_id,
        "name": method.name,
        "currency": currency,
        "serves": sorted(method.serves),
        "bands": [{"up_to_grams": b.up_to_grams, "price": f"{b.price:.2f}"} for b in method.bands],
        "min_order_value": method.min_order_value,
        "max_order_value": method.max_order_value,
        "excluded_skus": sorted(method.excluded_skus),
        "excluded_categories": sorted(method.excluded_categories),
        "free_from": method.free_from,
    }


def _stored_method(row: Any) -> StoredMethod:
    return StoredMethod(method_of(row), row.currency, row.active)


async def put_shipping_method(
    conn: AsyncConnection, method: ShippingMethod, currency: str, *, active: bool = True
) -> StoredMethod:
    """Create or replace a shipping method by its id; its band prices are in `currency`."""
    refuse_any(method_problems(method, currency))
    values = {**_method_values(method, currency), "active": active}
    row = (await conn.execute(_upsert(shipping_methods, "method_id", values))).one()
    log.info("pricing rules: shipping method %s stored, %s", row.method_id, _state(row.active))
    return _stored_method(row)


def _state(active: bool) -> str:
    return "active" if active else "inactive"


async def deactivate_shipping_method(conn: AsyncConnection, method_id: str) -> StoredMethod | None:
    """Stop offering a shipping method; None if unknown."""
    statement = (
        update(shipping_methods)
        .where(shipping_methods.c.method_id == method_id)
        .values(active=False, updated_at=func.now())
        .returning(*shipping_methods.c)
    )
    row = (await conn.execute(statement)).one_or_none()
    if row is None:
        return None
    log.info("pricing rules: shipping method %s deactivated", method_id)
    return _stored_method(row)


async def get_shipping_method(conn: AsyncConnection, method_id: str) -> StoredMethod | None:
    """One shipping method with its currency and active flag; None if unknown."""
    statement = select(shipping_methods).where(shipping_methods.c.method_id == method_id)
    row = (await conn.execute(statement)).one_or_none()
    return None if row is None else _stored_method(row)


async def list_shipping_methods(
    conn: AsyncConnection, active: bool | None = None
) -> list[StoredMethod]:
    """Every shipping method (or only the active or inactive ones) by id."""
    statement = select(shipping_methods).order_by(shipping_methods.c.method_id)
    if active is not None:
        statement = statement.where(shipping_methods.c.active == active)
    return [_stored_method(row) for row in await conn.execute(statement)]


async def put_tax_rate(conn: AsyncConnection, area: str, table: RateTable) -> StoredRate:
    """Create or replace the rate table of a country ("DE") or region ("US-CA")."""
    refuse_any(rate_problems(area, table))
    # Rates as decimal strings: a JSON number would come back as a binary float.
    by_category = {name: f"{rate:f}" for name, rate in sorted(table.by_category.items())}
    values = {"area": area, "standard": table.standard, "by_category": by_category}
    row = (await conn.execute(_upsert(tax_rates, "area", values))).one()
    log.info("pricing rules: tax rates of %s stored", area)
    return StoredRate(row.area, rate_table_of(row))


async def delete_tax_rate(conn: AsyncConnection, area: str) -> bool:
    """Remove an area's rate table (a cart shipping there is then refused); False if none."""
    result = await conn.execute(delete(tax_rates).where(tax_rates.c.area == area))
    if result.rowcount == 0:
        return False
    log.info("pricing rules: tax rates of %s deleted", area)
    return True


async def get_tax_rate(conn: AsyncConnection, area: str) -> StoredRate | None:
    """The rate table of one area; None if it has none."""
    row = (await conn.execute(select(tax_rates).where(tax_rates.c.area == area))).one_or_none()
    return None if row is None else StoredRate(row.area, rate_table_of(row))


async def list_tax_rates(conn: AsyncConnection) -> list[StoredRate]:
    """Every area's rate table, by area."""
    rows = await conn.execute(select(tax_rates).order_by(tax_rates.c.area))
    return [StoredRate(row.area, rate_table_of(row)) for row in rows]
