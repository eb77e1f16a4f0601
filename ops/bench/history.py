"""`bench --history N`: N finished checkouts seeded in set-based SQL before the services start.

The six templates of ops.bench.history_template (1-3 lines, confirmed or declined) are
loaded into temp tables; `hist_c` holds one row per seeded checkout (its template, a random
32-character id prefix, buyer, products and time); then one INSERT ... SELECT per table joins
the two and rewrites the template's placeholders with `replace`. Every table a finished
checkout leaves rows in gets them: the saga row, every service's inbox and sent outbox rows,
the order, the reservations (deducted or released) and their outcome, the payment, the cart's
order view and clearance. Products move the confirmed quantities from available to deducted,
so available + reserved + deducted is unchanged. Checkouts are spread over the last
HISTORY_SPAN_S, younger than the relay's retention windows (24 h sent outbox rows, 7 days
inbox), so no purge deletes them during the run. A VACUUM (ANALYZE) follows, as on a database
whose history was written long ago (fresh statistics, visibility map set, nothing left for
autovacuum to do during the measured run).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ops.bench.history_template import (
    BUYER_PLACEHOLDER,
    ID_PREFIX,
    SKU_PLACEHOLDER,
    Template,
    templates,
)

HISTORY_SPAN_S = 6 * 3600.0
"""Seeded checkouts happened over the last 6 hours."""
SCHEMAS = ("saga", "inventory", "orders", "cart", "payments")
SENT_AFTER = "interval '5 milliseconds'"
"""How long after its insert a seeded outbox row was published."""

_TEMP_TABLES = (
    "CREATE TEMP TABLE hist_t (k int, confirmed bool, state text, version int, data text, "
    "total numeric, items text, payment_id text, cart_id text, failure_reason text, "
    "span_ms int, line_count int) ON COMMIT DROP",
    "CREATE TEMP TABLE hist_mail (k int, box text, schema text, message_id text, "
    "message_type text, at_ms int, topic text, payload text, headers text) ON COMMIT DROP",
    "CREATE TEMP TABLE hist_line (k int, number int, quantity int, unit_price numeric, "
    "reservation_id text) ON COMMIT DROP",
)

_CHECKOUTS = """
CREATE TEMP TABLE hist_c ON COMMIT DROP AS
SELECT g AS i, 2 * (g % 3) + CASE WHEN g % 10 = 0 THEN 1 ELSE 0 END AS k,
       left(gen_random_uuid()::text, 32) AS p, 'hist-buyer-' || (g % 997) AS buyer,
       s[1 + g % n] AS s1, s[1 + (g + 1) % n] AS s2, s[1 + (g + 2) % n] AS s3,
       now() - make_interval(secs => CAST(:span AS float8) * (:count - g + 1) / :count) AS at,
       g % :lanes AS lane
FROM generate_series(1, :count) AS g,
     (SELECT CAST(:skus AS text[]) AS s, cardinality(CAST(:skus AS text[])) AS n) AS catalog
"""


def _id(column: str) -> str:
    """A template UUID column as this checkout's uuid."""
    return f"CAST(replace({column}, '{ID_PREFIX}', c.p) AS uuid)"


def _fill(column: str) -> str:
    """A template text with this checkout's ids, products and buyer."""
    expr = f"replace({column}, '{ID_PREFIX}', c.p)"
    for n in (1, 2, 3):
        expr = f"replace({expr}, '{SKU_PLACEHOLDER}{n}', c.s{n})"
    return f"replace({expr}, '{BUYER_PLACEHOLDER}', c.buyer)"


ORDER_ID = "CAST(c.p || '0000' AS uuid)"
DONE_AT = "c.at + t.span_ms * interval '1 millisecond'"
FROM_T = "FROM hist_c c JOIN hist_t t USING (k)"
FINAL = "CASE WHEN t.confirmed THEN 'confirmed' ELSE 'failed' END"


def _inbox(schema: str) -> str:
    return (
        f"INSERT INTO {schema}.inbox (message_id, message_type, received_at) "
        f"SELECT {_id('m.message_id')}, m.message_type, c.at + m.at_ms * interval '1 millisecond' "
        f"FROM hist_c c JOIN hist_mail m USING (k) WHERE m.box = 'inbox' AND m.schema = '{schema}'"
    )


def _outbox(schema: str) -> str:
    at = "c.at + m.at_ms * interval '1 millisecond'"
    return (
        f"INSERT INTO {schema}.outbox (message_id, topic, message_key, lane, payload, headers, "
        "created_at, available_at, sent_at) "
        f"SELECT {_id('m.message_id')}, m.topic, c.p || '0000', c.lane, "
        f"convert_to({_fill('m.payload')}, 'UTF8'), CAST({_fill('m.headers')} AS jsonb), "
        f"{at}, {at}, {at} + {SENT_AFTER} "
        f"FROM hist_c c JOIN hist_mail m USING (k) WHERE m.box = 'outbox' AND m.schema = '{schema}'"
    )


_DOMAIN = {
    "saga.sagas": "INSERT INTO saga.sagas (id, state, version, data, payment_deadline, "
    f"created_at, updated_at) SELECT {ORDER_ID}, t.state, t.version, "
    f"CAST({_fill('t.data')} AS jsonb), NULL, c.at, {DONE_AT} {FROM_T}",
    # A plain checkout is a group of one order under its own id; no line was rejected.
    "orders.orders": "INSERT INTO orders.orders (order_id, checkout_group_id, buyer_id, status, "
    "currency, total, adjusted_total, items, payment_id, failure_reason, created_at, updated_at) "
    f"SELECT {ORDER_ID}, {ORDER_ID}, c.buyer, {FINAL}, 'EUR', t.total, t.total, "
    f"CAST({_fill('t.items')} AS jsonb), CASE WHEN t.confirmed THEN {_id('t.payment_id')} END, "
    f"t.failure_reason, c.at, {DONE_AT} {FROM_T}",
    "inventory.reservations": "INSERT INTO inventory.reservations (reservation_id, order_id, "
    f"sku, quantity, status, created_at, updated_at) SELECT {_id('l.reservation_id')}, "
    f"{ORDER_ID}, (ARRAY[c.s1, c.s2, c.s3])[l.number], l.quantity, "
    f"CASE WHEN t.confirmed THEN 'deducted' ELSE 'released' END, c.at, {DONE_AT} "
    f"{FROM_T} JOIN hist_line l USING (k)",
    "inventory.reservation_outcomes": "INSERT INTO inventory.reservation_outcomes (order_id, "
    f"succeeded, reason, shortages, created_at) SELECT {ORDER_ID}, true, NULL, '[]', "
    f"c.at + interval '60 milliseconds' {FROM_T}",
    "payments.payments": "INSERT INTO payments.payments (order_id, payment_id, amount, "
    f"currency, decision, reason, decided_at) SELECT {ORDER_ID}, {_id('t.payment_id')}, "
    "t.total, 'EUR', CASE WHEN t.confirmed THEN 'completed' ELSE 'declined' END, "
    f"CASE WHEN t.confirmed THEN NULL ELSE 'card declined' END, c.at + interval '90 milliseconds' "
    f"{FROM_T}",
    "cart.order_status": "INSERT INTO cart.order_status (order_id, buyer_id, cart_id, status, "
    "failure_reason, currency, total, items, created_at, updated_at) "
    f"SELECT {ORDER_ID}, c.buyer, {_id('t.cart_id')}, {FINAL}, t.failure_reason, 'EUR', "
    f"t.total, CAST({_fill('t.items')} AS jsonb), c.at, {DONE_AT} {FROM_T}",
    "cart.clearances": "INSERT INTO cart.clearances (order_id, cart_id, items_removed, "
    f"cleared_at) SELECT {ORDER_ID}, {_id('t.cart_id')}, t.line_count, {DONE_AT} "
    f"{FROM_T} WHERE t.confirmed",
}
"""Per table, the statement that writes its rows of every seeded checkout."""

_DEDUCT = f"""
UPDATE inventory.products AS p
SET available = p.available - d.q, deducted = p.deducted + d.q, updated_at = now()
FROM (SELECT (ARRAY[c.s1, c.s2, c.s3])[l.number] AS sku, sum(l.quantity) AS q
      {FROM_T} JOIN hist_line l USING (k) WHERE t.confirmed GROUP BY 1) AS d
WHERE p.sku = d.sku
"""


def statements() -> dict[str, str]:
    """Every seeding statement by the table it writes."""
    mail = {f"{s}.inbox": _inbox(s) for s in SCHEMAS} | {f"{s}.outbox": _outbox(s) for s in SCHEMAS}
    return {**_DOMAIN, **mail}


_TEMPLATE_INSERTS = {
    "heads": "INSERT INTO hist_t VALUES (:k, :confirmed, :state, :version, :data, :total, "
    ":items, :payment_id, :cart_id, :reason, :span_ms, :line_count)",
    "mails": "INSERT INTO hist_mail VALUES (:k, :box, :schema, :message_id, :message_type, "
    ":at_ms, :topic, :payload, :headers)",
    "lines": "INSERT INTO hist_line VALUES (:k, :number, :quantity, :unit_price, :reservation_id)",
}


def _template_rows(built: Sequence[Template]) -> dict[str, list[dict[str, object]]]:
    rows: dict[str, list[dict[str, object]]] = {"heads": [], "mails": [], "lines": []}
    for k, t in enumerate(built):
        rows["heads"].append(
            {"k": k, "confirmed": t.confirmed, "state": t.saga_state, "version": t.saga_version}
            | {"data": t.saga_data, "total": t.total, "items": t.order_items}
            | {"payment_id": t.payment_id, "cart_id": t.cart_id, "reason": t.failure_reason}
            | {"span_ms": t.span_ms, "line_count": len(t.lines)}
        )
        rows["mails"] += [{"k": k, "box": "inbox", **asdict(m)} for m in t.inbox]
        rows["mails"] += [{"k": k, "box": "outbox", **asdict(m)} for m in t.outbox]
        rows["lines"] += [{"k": k, **asdict(line)} for line in t.lines]
    return rows


async def _load_templates(conn: AsyncConnection, built: Sequence[Template]) -> None:
    for statement in _TEMP_TABLES:
        await conn.execute(text(statement))
    for name, rows in _template_rows(built).items():
        await conn.execute(text(_TEMPLATE_INSERTS[name]), rows)


async def seed_history(
    engine: AsyncEngine, count: int, skus: Sequence[str], lanes: int
) -> dict[str, object]:
    """Seed `count` finished checkouts (one transaction), then VACUUM (ANALYZE); what was written."""
    if len(skus) < 3:
        raise ValueError("seeding history needs at least 3 products (orders of up to 3 lines)")
    began = time.monotonic()
    rows: dict[str, int] = {}
    async with engine.begin() as conn:
        await _load_templates(conn, templates())
        await conn.execute(
            text(_CHECKOUTS),
            {"count": count, "span": HISTORY_SPAN_S, "skus": list(skus), "lanes": lanes},
        )
        for table, statement in statements().items():
            rows[table] = (await conn.execute(text(statement))).rowcount
        await conn.execute(text(_DEDUCT))
    inserted_s = time.monotonic() - began
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(text("VACUUM (ANALYZE)"))
    return {
        "checkouts": count,
        "span_h": HISTORY_SPAN_S / 3600,
        "insert_s": round(inserted_s, 2),
        "seeding_s": round(time.monotonic() - began, 2),
        "rows": {table: n for table, n in sorted(rows.items()) if n},
    }


async def final_sagas(engine: AsyncEngine) -> int:
    """Confirmed or Failed rows in saga.sagas (history and driven checkouts alike)."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM saga.sagas WHERE state IN ('Confirmed', 'Failed')")
        )
    return int(found or 0)
