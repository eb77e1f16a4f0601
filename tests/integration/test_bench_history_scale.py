"""`bench --history N` at the size the issue asks for: the checkouts' spread fits any N."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ops.bench.history import _CHECKOUTS, HISTORY_SPAN_S
from services.platform.db import create_engine
from services.platform.settings import Settings


@pytest.mark.parametrize("count", [500, 100_000])
async def test_the_history_checkouts_table_builds_at_any_size(
    integration_settings: Settings, count: int
) -> None:
    # span * count overflowed a 32-bit integer at 100,000 (found by the real run): only the
    # temporary table of checkouts is built here, in a transaction that is rolled back.
    engine = create_engine(integration_settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(
                text(_CHECKOUTS),
                {"count": count, "span": HISTORY_SPAN_S, "skus": ["A", "B", "C"], "lanes": 8},
            )
            built = await conn.scalar(text("SELECT count(*) FROM hist_c"))
            oldest = await conn.scalar(
                text("SELECT extract(epoch FROM now() - min(at)) FROM hist_c")
            )
            await conn.rollback()
    finally:
        await engine.dispose()
    assert built == count
    assert 0 < oldest <= HISTORY_SPAN_S + 1
