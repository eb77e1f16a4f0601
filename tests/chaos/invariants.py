"""The invariants of a chaos run, read from every service's tables; each check lists violations."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, TOPICS, CheckoutStarted
from contracts.vendor_orders import lines_total, shipping_after_rejections, split
from services.payments.domain import decide
from services.runtime import SERVICES
from tests.chaos.load import ChaosLoad, Checkout

FINAL = {"Confirmed": "confirmed", "Failed": "failed"}
"""Final saga states and the order status each must agree with."""


async def rows(db: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Dict rows of a read-only query."""
    async with db.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql), params)]


async def until(
    probe: Callable[[], Awaitable[list[str]]], timeout_s: float, interval_s: float = 0.5
) -> list[str]:
    """Re-run an invariant probe until it reports nothing or time is up; its last report."""
    deadline = time.monotonic() + timeout_s
    while True:
        problems = await probe()
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(interval_s)


async def saga_states(db: AsyncEngine, load: ChaosLoad) -> dict[uuid.UUID, dict[str, Any]]:
    """Saga rows (state, data) of the run's orders."""
    found = await rows(
        db, "SELECT id, state, data FROM saga.sagas WHERE id = ANY(:ids)", ids=load.order_ids
    )
    return {r["id"]: r for r in found}


async def violations(db: AsyncEngine, load: ChaosLoad) -> list[str]:
    """Every broken invariant of the run, empty when all hold."""
    sagas = await saga_states(db, load)
    problems = _sagas_final(load, sagas)
    if problems:
        # The rest only means something once every saga is final; unsent rows hint at why not.
        return problems + await _outboxes_drained(db)
    confirmed = {o for o, r in sagas.items() if r["state"] == "Confirmed"}
    by_order = {c.start.order_id: c for c in load.checkouts}
    kept = {o: accepted_lines(by_order[o], sagas[o]) for o in confirmed}
    problems += await _orders_agree(db, load, sagas)
    problems += await _groups_complete_once(db, load, sagas)
    problems += await _stock_balances(db, load, kept)
    problems += await _reservations_settled(db, load, kept)
    problems += await _carts_cleared_once(db, load, confirmed)
    problems += await _payments_refunded_once(db, load, sagas)
    problems += await _payments_decided_as_seeded(db, load)
    problems += await _outboxes_drained(db)
    problems += await _nothing_parked(db, load)
    return problems


def accepted_lines(checkout: Checkout, saga: dict[str, Any]) -> dict[str, int]:
    """The lines a confirmed group bought, by SKU: its items less those inventory rejected."""
    rejected = {r["sku"] for r in saga["data"].get("rejected", [])}
    return {i.sku: i.quantity for i in checkout.start.items if i.sku not in rejected}


def expected_totals(
    start: CheckoutStarted, accepted: dict[str, int]
) -> dict[uuid.UUID, Decimal | None]:
    """What each vendor order of a checkout should end up costing (None: it bought nothing).

    Unpriced: its bought lines at their prices. Priced: its bought lines' charges plus its
    shipping share, the shares of vendor orders left with nothing going to the others.
    """
    parts = split(start)
    bought = [[i for i in part.items if i.sku in accepted] for part in parts]
    if start.pricing is None:
        return {
            p.order_id: lines_total(b) if b else None for p, b in zip(parts, bought, strict=True)
        }
    charges = start.pricing.charges()
    kept: list[Decimal | None] = [
        sum((charges[i.sku] for i in b), Decimal("0.00")) if b else None for b in bought
    ]
    shares = shipping_after_rejections([p.shipping_share for p in parts], kept)
    return {
        p.order_id: None if k is None else k + share
        for p, k, share in zip(parts, kept, shares, strict=True)
    }


def _sagas_final(load: ChaosLoad, sagas: dict[uuid.UUID, dict[str, Any]]) -> list[str]:
    missing = [o for o in load.order_ids if o not in sagas]
    open_ = [f"{o}={r['state']}" for o, r in sagas.items() if r["state"] not in FINAL]
    problems = [f"no saga for {len(missing)} orders, e.g. {missing[:3]}"] if missing else []
    if open_:
        problems.append(f"{len(open_)} sagas not final, e.g. {open_[:3]}")
    return problems


async def _orders_agree(
    db: AsyncEngine, load: ChaosLoad, sagas: dict[uuid.UUID, dict[str, Any]]
) -> list[str]:
    """Each group became its vendor orders, each in the state its saga and rejections imply."""
    found = await rows(
        db,
        "SELECT order_id, checkout_group_id AS g, status, coalesce(adjusted_total, total) AS t "
        "FROM orders.orders WHERE checkout_group_id = ANY(:ids)",
        ids=load.order_ids,
    )
    actual = {r["order_id"]: (r["status"], r["t"]) for r in found}
    wrong = []
    for c in load.checkouts:
        saga = sagas[c.start.order_id]
        accepted = accepted_lines(c, saga) if saga["state"] == "Confirmed" else {}
        for order_id, total in expected_totals(c.start, accepted).items():
            status = "confirmed" if total is not None else "failed"
            got = actual.get(order_id)
            if got is None or got[0] != status or (total is not None and got[1] != total):
                wrong.append(f"{order_id}: saga {saga['state']}, order {got}")
    problems = [f"{len(wrong)} orders disagree with their saga, e.g. {wrong[:3]}"] if wrong else []
    return problems + await _announced_once(db, load)


async def _announced_once(db: AsyncEngine, load: ChaosLoad) -> list[str]:
    """Every vendor order's order_created was written exactly once."""
    vendor_orders = [o.order_id for c in load.checkouts for o in split(c.start)]
    created = await rows(
        db,
        "SELECT message_key, count(*) AS n FROM orders.outbox WHERE topic = :t "
        "AND message_key = ANY(:keys) GROUP BY message_key",
        t=TOPICS["order_created"],
        keys=[str(o) for o in vendor_orders],
    )
    announced = {r["message_key"]: r["n"] for r in created}
    return [
        f"order {o} announced {announced.get(str(o), 0)} times"
        for o in vendor_orders
        if announced.get(str(o), 0) != 1
    ]


async def _groups_complete_once(
    db: AsyncEngine, load: ChaosLoad, sagas: dict[uuid.UUID, dict[str, Any]]
) -> list[str]:
    """One checkout_group_completed per group, agreeing with its orders and with the charge."""
    per_group = await group_events(db, load.order_ids)
    problems = []
    for group, saga in sagas.items():
        got = per_group.get(str(group), [])
        if len(got) != 1:
            problems.append(f"group {group}: checkout_group_completed emitted {len(got)} times")
            continue
        problems += _group_agrees(group, saga, got[0])
    return problems


async def group_outcomes(db: AsyncEngine, load: ChaosLoad) -> Counter[str]:
    """How the run's marketplace groups ended (plain checkouts left out), for the run's summary."""
    groups = [c.start.order_id for c in load.checkouts if c.start.items[0].vendor_id]
    events = await group_events(db, groups)
    return Counter(e["outcome"] for sent in events.values() for e in sent)


async def group_events(db: AsyncEngine, groups: list[uuid.UUID]) -> dict[str, list[dict[str, Any]]]:
    """The checkout_group_completed payloads the orders service wrote, by group id."""
    events = await rows(
        db,
        "SELECT message_key, convert_from(payload, 'UTF8')::jsonb -> 'payload' AS p "
        "FROM orders.outbox WHERE topic = :t AND message_key = ANY(:keys)",
        t=TOPICS["checkout_group_completed"],
        keys=[str(g) for g in groups],
    )
    per_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        per_group[e["message_key"]].append(e["p"])
    return per_group


def _group_agrees(group: uuid.UUID, saga: dict[str, Any], event: dict[str, Any]) -> list[str]:
    statuses = {o["status"] for o in event["orders"]}
    outcome = (
        "completed"
        if statuses == {"confirmed"}
        else "failed"
        if statuses == {"failed"}
        else "partially_completed"
    )
    confirmed = [Decimal(o["total"]) for o in event["orders"] if o["status"] == "confirmed"]
    balance, charged = Decimal(event["balance_due"]), Decimal(saga["data"]["amount"])
    problems = []
    if event["outcome"] != outcome:
        problems.append(f"group {group}: outcome {event['outcome']}, its orders say {outcome}")
    if balance != sum(confirmed, Decimal(0)):
        problems.append(f"group {group}: balance due {balance} != confirmed orders {confirmed}")
    if saga["state"] == "Confirmed" and balance != charged:
        problems.append(f"group {group}: balance due {balance} != the charge {charged}")
    if saga["state"] == "Failed" and statuses != {"failed"}:
        problems.append(f"group {group}: saga Failed, orders {statuses}")
    return problems


async def _stock_balances(
    db: AsyncEngine, load: ChaosLoad, kept: dict[uuid.UUID, dict[str, int]]
) -> list[str]:
    sold: Counter[str] = Counter()
    for lines in kept.values():
        sold.update(lines)
    found = await rows(
        db,
        "SELECT sku, available, reserved, deducted FROM inventory.products WHERE sku = ANY(:s)",
        s=list(load.stock),
    )
    problems = []
    for p in found:
        initial, total = load.stock[p["sku"]], p["available"] + p["reserved"] + p["deducted"]
        if total != initial or p["reserved"] != 0 or p["deducted"] != sold[p["sku"]]:
            problems.append(
                f"{p['sku']}: initial {initial} != available {p['available']} + reserved "
                f"{p['reserved']} + deducted {p['deducted']}, or reserved != 0, or deducted "
                f"!= {sold[p['sku']]} units of confirmed orders"
            )
    return problems


async def _reservations_settled(
    db: AsyncEngine, load: ChaosLoad, kept: dict[uuid.UUID, dict[str, int]]
) -> list[str]:
    found = await rows(
        db,
        "SELECT order_id, sku, quantity, status FROM inventory.reservations "
        "WHERE order_id = ANY(:ids)",
        ids=load.order_ids,
    )
    held: dict[uuid.UUID, dict[str, tuple[int, str]]] = defaultdict(dict)
    for r in found:
        held[r["order_id"]][r["sku"]] = (r["quantity"], r["status"])
    problems = []
    for c in load.checkouts:
        order = c.start.order_id
        if order in kept:
            # A rejected line never held stock: it has no reservation at all.
            expected = {sku: (quantity, "deducted") for sku, quantity in kept[order].items()}
            if held[order] != expected:
                problems.append(f"confirmed {order}: reservations {held[order]} != {expected}")
        elif any(status != "released" for _, status in held[order].values()):
            problems.append(f"failed {order}: reservations not all released: {held[order]}")
    return problems


async def _carts_cleared_once(
    db: AsyncEngine, load: ChaosLoad, confirmed: set[uuid.UUID]
) -> list[str]:
    found = await rows(
        db,
        "SELECT order_id, cart_id, items_removed FROM cart.clearances WHERE order_id = ANY(:ids)",
        ids=load.order_ids,
    )
    cleared = {r["order_id"]: (r["cart_id"], r["items_removed"]) for r in found}
    problems = []
    for c in load.checkouts:
        order, got = c.start.order_id, cleared.get(c.start.order_id)
        if order in confirmed and got != (c.start.cart_id, len(c.start.items)):
            problems.append(f"confirmed {order}: clearance {got}, expected one of its cart")
        if order not in confirmed and got is not None:
            problems.append(f"failed {order}: its cart was cleared {got}")
    return problems


async def _payments_refunded_once(
    db: AsyncEngine, load: ChaosLoad, sagas: dict[uuid.UUID, dict[str, Any]]
) -> list[str]:
    """Every payment an order did not keep is refunded exactly once; the kept one never."""
    taken = await _completed_payments(db, load)
    kept = {
        uuid.UUID(r["data"]["payment_id"])
        for r in sagas.values()
        if r["state"] == "Confirmed" and r["data"].get("payment_id")
    }
    owed = {p for payments in taken.values() for p in payments} - kept
    refunded = await rows(
        db, "SELECT payment_id FROM payments.refunds WHERE order_id = ANY(:ids)", ids=load.order_ids
    )
    got = {r["payment_id"] for r in refunded}
    commands = await _count_by_payment(db, "saga", TOPICS["RefundPayment"], load.order_ids)
    events = await _count_by_payment(db, "payments", TOPICS["PaymentRefunded"], load.order_ids)
    problems = [f"payments owed a refund but not refunded: {sorted(owed - got)[:5]}"]
    problems += [f"payments refunded but kept or never taken: {sorted(got - owed)[:5]}"]
    problems += [f"RefundPayment sent {n}x for {p}" for p, n in commands.items() if n != 1]
    problems += [f"PaymentRefunded sent {n}x for {p}" for p, n in events.items() if n != 1]
    problems += [f"no RefundPayment for owed {p}" for p in owed if p not in commands]
    return [p for p in problems if not p.endswith(": []")]


async def _payments_decided_as_seeded(db: AsyncEngine, load: ChaosLoad) -> list[str]:
    """Every charge was decided as the run's rules say, whichever simulator instance took it."""
    if load.simulator is None:
        return []
    found = await rows(
        db,
        "SELECT order_id, amount, decision FROM payments.payments WHERE order_id = ANY(:ids)",
        ids=load.order_ids,
    )
    wrong = [
        f"{r['order_id']}: {r['decision']}, the seed says {expected}"
        for r in found
        if r["decision"] != (expected := decide(r["order_id"], r["amount"], load.simulator).verdict)
    ]
    return [f"{len(wrong)} payments decided against the seed, e.g. {wrong[:3]}"] if wrong else []


async def _completed_payments(db: AsyncEngine, load: ChaosLoad) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Payments taken per order: the simulator's completed ones and the test's own."""
    found = await rows(
        db,
        "SELECT order_id, payment_id FROM payments.payments "
        "WHERE decision = 'completed' AND order_id = ANY(:ids)",
        ids=load.order_ids,
    )
    taken: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for r in found:
        taken[r["order_id"]].add(r["payment_id"])
    for order, payments in load.payments.items():
        taken[order] |= payments
    return taken


async def _count_by_payment(
    db: AsyncEngine, schema: str, topic: str, orders: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    found = await rows(
        db,
        "SELECT (convert_from(payload, 'UTF8')::jsonb -> 'payload' ->> 'payment_id')::uuid AS p, "
        f"count(*) AS n FROM {schema}.outbox WHERE topic = :t AND message_key = ANY(:keys) "
        "GROUP BY 1",
        t=topic,
        keys=[str(o) for o in orders],
    )
    return {r["p"]: r["n"] for r in found}


async def _outboxes_drained(db: AsyncEngine) -> list[str]:
    problems = []
    for schema in SERVICES:
        left = await rows(db, f"SELECT count(*) AS n FROM {schema}.outbox WHERE sent_at IS NULL")
        if left[0]["n"]:
            problems.append(f"{schema}.outbox has {left[0]['n']} unsent rows")
    return problems


async def _nothing_parked(db: AsyncEngine, load: ChaosLoad) -> list[str]:
    """None of the run's messages was dead-lettered: every fault here is one to survive."""
    problems = []
    for schema in SERVICES:
        letters = await rows(
            db,
            f"SELECT headers FROM {schema}.outbox WHERE topic = :t AND message_key = ANY(:keys)",
            t=DEAD_LETTER_TOPIC,
            keys=[str(o) for o in load.order_ids],
        )
        problems += [
            f"{schema} dead-lettered {h.get('message_type')}: {h.get('dlq_error')}"
            for h in (r["headers"] for r in letters)
        ]
    return problems
