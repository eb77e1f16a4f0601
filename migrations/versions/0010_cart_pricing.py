"""Cart pricing: catalog attributes, promotions and coupons, shipping methods, tax rates.

Offers gain the category, brand and weight promotions, tax and shipping read. Promotions are the
shop's discount rules (a code, or none for automatic ones); their usage counts are consumed by
checkout in the transaction that creates the order (conditional updates, so two checkouts never
take the last use twice) and given back when the order fails, per `redemptions`. A cart keeps the
codes the buyer entered and its delivery choice (destination and shipping method). Failed code
guesses are counted per subject and time window for the rate limit. Checkout groups keep the
totals they were checked out at.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "cart"
NOW = sa.text("now()")


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=NOW, nullable=False)


def upgrade() -> None:
    """Add the pricing columns and tables."""
    _catalog_and_carts()
    _promotions()
    _delivery()


def _catalog_and_carts() -> None:
    op.add_column("offers", sa.Column("category", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column("offers", sa.Column("brand", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        "offers",
        sa.Column("weight_grams", sa.Integer(), server_default="0", nullable=False),
        schema=SCHEMA,
    )
    op.create_check_constraint("ck_offers_weight", "offers", "weight_grams >= 0", schema=SCHEMA)
    for name in ("ship_country", "ship_region", "shipping_method"):
        op.add_column("carts", sa.Column(name, sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        "checkout_groups", sa.Column("pricing", postgresql.JSONB(), nullable=True), schema=SCHEMA
    )


def _promotions() -> None:
    op.create_table(
        "promotions",
        sa.Column("promotion_id", sa.Text(), primary_key=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Numeric(14, 4), nullable=False),
        sa.Column("stacking", sa.Text(), nullable=False),
        sa.Column("target", postgresql.JSONB(), nullable=True),
        sa.Column(
            "exclusions", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("min_spend", sa.Numeric(14, 2), server_default="0", nullable=False),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("limit_total", sa.Integer(), nullable=True),
        sa.Column("limit_per_buyer", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _now("created_at"),
        _now("updated_at"),
        sa.UniqueConstraint("code", name="uq_promotions_code"),
        sa.CheckConstraint("kind IN ('percentage', 'fixed')", name="ck_promotions_kind"),
        sa.CheckConstraint(
            "stacking IN ('exclusive', 'stackable', 'best_of')", name="ck_promotions_stacking"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "promotion_uses",
        sa.Column("promotion_id", sa.Text(), primary_key=True),
        sa.Column("uses", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("uses >= 0", name="ck_promotion_uses_uses"),
        schema=SCHEMA,
    )
    op.create_table(
        "promotion_buyer_uses",
        sa.Column("promotion_id", sa.Text(), primary_key=True),
        sa.Column("buyer_id", sa.Text(), primary_key=True),
        sa.Column("uses", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("uses >= 0", name="ck_promotion_buyer_uses_uses"),
        schema=SCHEMA,
    )
    op.create_table(
        "redemptions",
        sa.Column("group_id", sa.Uuid(), primary_key=True),
        sa.Column("promotion_id", sa.Text(), primary_key=True),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        _now("redeemed_at"),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_index("ix_redemptions_redeemed_at", "redemptions", ["redeemed_at"], schema=SCHEMA)
    op.create_table(
        "cart_coupons",
        sa.Column(
            "cart_id",
            sa.Uuid(),
            sa.ForeignKey(f"{SCHEMA}.carts.cart_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("code", sa.Text(), primary_key=True),
        _now("added_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "coupon_attempts",
        sa.Column("subject", sa.Text(), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        schema=SCHEMA,
    )


def _delivery() -> None:
    op.create_table(
        "shipping_methods",
        sa.Column("method_id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("serves", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("bands", postgresql.JSONB(), nullable=False),
        sa.Column("min_order_value", sa.Numeric(14, 2), nullable=True),
        sa.Column("max_order_value", sa.Numeric(14, 2), nullable=True),
        sa.Column(
            "excluded_skus",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "excluded_categories",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("free_from", sa.Numeric(14, 2), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _now("updated_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "tax_rates",
        sa.Column("area", sa.Text(), primary_key=True),
        sa.Column("standard", sa.Numeric(8, 6), nullable=False),
        sa.Column(
            "by_category",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        _now("updated_at"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    """Drop them."""
    for table in (
        "tax_rates",
        "shipping_methods",
        "coupon_attempts",
        "cart_coupons",
        "redemptions",
        "promotion_buyer_uses",
        "promotion_uses",
        "promotions",
    ):
        op.drop_table(table, schema=SCHEMA)
    op.drop_column("checkout_groups", "pricing", schema=SCHEMA)
    for name in ("shipping_method", "ship_region", "ship_country"):
        op.drop_column("carts", name, schema=SCHEMA)
    op.drop_constraint("ck_offers_weight", "offers", schema=SCHEMA, type_="check")
    for name in ("weight_grams", "brand", "category"):
        op.drop_column("offers", name, schema=SCHEMA)
