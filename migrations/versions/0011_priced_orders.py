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
    for name, condition in (NEW_CHECK, PRICED_CHECK):
        op.create_check_constraint(name, "orders", condition, schema=SCHEMA)


def downgrade() -> None:
    op.drop_constraint(PRICED_CHECK[0], "orders", schema=SCHEMA, type_="check")
    op.drop_constraint(NEW_CHECK[0], "orders", schema=SCHEMA, type_="check")
    # A priced order that took over an emptied one's shipping settled above its total; without
    # its charges the old bound would refuse it: its total becomes what it settled at.
    op.execute(
        f"UPDATE {SCHEMA}.orders SET total = adjusted_total "
        "WHERE charges IS NOT NULL AND adjusted_total > total"
    )
    op.create_check_constraint(OLD_CHECK[0], "orders", OLD_CHECK[1], schema=SCHEMA)
    for column in ("shipping_share", "charges"):
        op.drop_column("orders", column, schema=SCHEMA)
