"""Priced orders: a vendor order keeps its lines' charges and its share of the shipping charge.

A priced checkout's vendor order costs its lines' charges (discounted, taxed) plus its share of
the shipping; both NULL for orders of unpriced checkouts, whose lines cost their unit prices.
A priced order may settle above its total when it takes over the shipping share of a vendor
order of its group left with no line, so the adjusted total's upper bound holds only for
unpriced orders now.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"
OLD_CHECK = ("ck_orders_adjusted_total_within_total", "adjusted_total BETWEEN 0 AND total")
NEW_CHECK = (
    "ck_orders_adjusted_total_in_range",
    "adjusted_total >= 0 AND (charges IS NOT NULL OR adjusted_total <= total)",
)
PRICED_CHECK = (
    "ck_orders_priced",
    "(charges IS NULL) = (shipping_share IS NULL) AND coalesce(shipping_share, 0) >= 0",
)


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("charges", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "orders",
        sa.Column("shipping_share", sa.Numeric(precision=16, scale=2), nullable=True),
        schema=SCHEMA,
    )
    op.drop_constraint(OLD_CHECK[0], "orders", schema=SCHEMA, type_="check")
    # NOT VALID: rows written under the old bound satisfy this one, except a priced order kept
    # through a downgrade (its charges dropped, its total above the bound): it keeps its row.
    _add_unchecked(*NEW_CHECK)
    op.create_check_constraint(PRICED_CHECK[0], "orders", PRICED_CHECK[1], schema=SCHEMA)


def downgrade() -> None:
    op.drop_constraint(PRICED_CHECK[0], "orders", schema=SCHEMA, type_="check")
    op.drop_constraint(NEW_CHECK[0], "orders", schema=SCHEMA, type_="check")
    # NOT VALID: a priced order that took over shipping keeps its row (and its adjusted total
    # above its total); the old bound applies to every row written from now on.
    _add_unchecked(*OLD_CHECK)
    for column in ("shipping_share", "charges"):
        op.drop_column("orders", column, schema=SCHEMA)


def _add_unchecked(name: str, condition: str) -> None:
    """A CHECK that binds every row written from now on, and leaves the existing ones be."""
    op.execute(f"ALTER TABLE {SCHEMA}.orders ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
