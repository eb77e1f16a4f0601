"""Cart: a version of the shop's pricing rules, bumped by any change to them (triggers).

Processes keep the rules (promotions, shipping methods, tax rates) in memory and reload them only
when this version moved, so pricing a cart costs one small read instead of three. Triggers bump
it on every statement that changes a rules table, whoever writes it (admin API, CLI, plain SQL).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "cart"
RULES = ("promotions", "shipping_methods", "tax_rates")


def upgrade() -> None:
    """Create the version row, the bump function and a trigger per rules table."""
    op.create_table(
        "pricing_rules_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name="ck_pricing_rules_version_one_row"),
        schema=SCHEMA,
    )
    op.execute(f"INSERT INTO {SCHEMA}.pricing_rules_version (id, version) VALUES (1, 0)")
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.bump_pricing_rules_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE {SCHEMA}.pricing_rules_version SET version = version + 1 WHERE id = 1;
            RETURN NULL;
        END
        $$
        """
    )
    for table in RULES:
        op.execute(
            f"CREATE TRIGGER bump_pricing_rules_version AFTER INSERT OR UPDATE OR DELETE "
            f"OR TRUNCATE ON {SCHEMA}.{table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.bump_pricing_rules_version()"
        )


def downgrade() -> None:
    """Drop them."""
    for table in RULES:
        op.execute(f"DROP TRIGGER bump_pricing_rules_version ON {SCHEMA}.{table}")
    op.execute(f"DROP FUNCTION {SCHEMA}.bump_pricing_rules_version()")
    op.drop_table("pricing_rules_version", schema=SCHEMA)
