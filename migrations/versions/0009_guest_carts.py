"""Cart: guest sessions (opaque expiring tokens) and merged guest carts.

A guest gets a token whose SHA-256 alone is stored; on sign-in the guest cart merges into the
buyer's cart, becomes `merged` and names that cart in `merged_into`, and the session keeps the
merge's answer for retries. The downgrade drops them; merged carts become `abandoned` first,
the status the older schema has for a cart left behind.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "cart"
STATUS = "ck_carts_status"
OLD_STATUSES = "status IN ('active', 'checked_out', 'cleared', 'abandoned')"
NEW_STATUSES = "status IN ('active', 'checked_out', 'cleared', 'abandoned', 'merged')"


def upgrade() -> None:
    """Create cart.guest_sessions; add carts.merged_into and the `merged` status."""
    op.create_table(
        "guest_sessions",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("merged_by", sa.Text(), nullable=True),
        sa.Column("merge_result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("session_id"),
        sa.UniqueConstraint("token_sha256", name="uq_guest_sessions_token_sha256"),
        sa.CheckConstraint(
            "(merged_by IS NULL) = (merge_result IS NULL)", name="ck_guest_sessions_merge"
        ),
        schema=SCHEMA,
    )
    op.add_column("carts", sa.Column("merged_into", sa.Uuid(), nullable=True), schema=SCHEMA)
    op.drop_constraint(STATUS, "carts", schema=SCHEMA, type_="check")
    op.create_check_constraint(STATUS, "carts", NEW_STATUSES, schema=SCHEMA)


def downgrade() -> None:
    """Drop them; merged carts become abandoned (the old schema knows no `merged`)."""
    op.execute(f"UPDATE {SCHEMA}.carts SET status = 'abandoned' WHERE status = 'merged'")
    op.drop_constraint(STATUS, "carts", schema=SCHEMA, type_="check")
    op.create_check_constraint(STATUS, "carts", OLD_STATUSES, schema=SCHEMA)
    op.drop_column("carts", "merged_into", schema=SCHEMA)
    op.drop_table("guest_sessions", schema=SCHEMA)
