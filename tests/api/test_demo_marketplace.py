"""The demo's marketplace carts: three vendors each, both policies, counted from the group view."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ops.cli.demo import (
    DEMO_CATALOG,
    SHORT_SKU,
    drive_marketplace,
    seed_catalog,
    tally_rows,
)
from services.cart import catalog
from services.cart.checkout_rules import GroupStatus
from services.cart.tables import checkout_groups, order_status
from services.platform.settings import Settings


async def test_the_demo_catalog_spans_three_vendors(
    handler_settings: Settings, engine: AsyncEngine
) -> None:
    await seed_catalog(handler_settings)

    async with engine.connect() as conn:
        offers = await catalog.get_offers(conn, (*DEMO_CATALOG, SHORT_SKU))
    assert {o.vendor_id for o in offers.values()} == {"acme", "globex", "initech"}
    assert offers[SHORT_SKU].moq == 2


async def test_the_demo_checks_out_multi_vendor_carts_and_waits_for_their_groups(
    handler_settings: Settings, engine: AsyncEngine
) -> None:
    await seed_catalog(handler_settings)

    # No services run here: every group stays processing, and the demo says so.
    tally = await drive_marketplace(handler_settings, engine, 4, seed=3, timeout_s=0.5)

    assert (tally.carts, tally.vendors, tally.refused) == (4, ("acme", "globex", "initech"), {})
    assert tally.by_status == {GroupStatus.PROCESSING: 4}
    assert ("groups unfinished", "4") in tally_rows(tally)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(checkout_groups.c.group_id, checkout_groups.c.policy).where(
                checkout_groups.c.buyer_id.like("demo-shopper-%")
            )
        )
        policies = {row.group_id: row.policy for row in rows}
        vendors = await conn.execute(
            select(order_status.c.checkout_group_id, order_status.c.vendor_id).where(
                order_status.c.checkout_group_id.in_(list(policies))
            )
        )
        by_group: dict[object, set[str]] = {}
        for row in vendors:
            by_group.setdefault(row.checkout_group_id, set()).add(row.vendor_id)
    assert sorted(policies.values()) == ["all_or_nothing"] * 2 + ["partial"] * 2
    assert all(found == {"acme", "globex", "initech"} for found in by_group.values())
    assert len(by_group) == 4
