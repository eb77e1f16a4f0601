"""Initial schema: saga, inventory, orders, cart and payments, each with outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMAS = ("saga", "inventory", "orders", "cart", "payments")


def _create_mailbox(schema: str) -> None:
    """The outbox and inbox every service schema has, and the trigger that wakes the relay."""
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    op.create_table(
        "outbox",
        # bigserial, as outbox_table() declares it, so autogenerate finds no difference.
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("message_key", sa.Text(), nullable=False),
        sa.Column("lane", sa.SmallInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "available_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    op.create_index(
        f"ix_{schema}_outbox_unsent",
        "outbox",
        ["lane", "id"],
        schema=schema,
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_index(
        f"ix_{schema}_outbox_sent_at",
        "outbox",
        ["sent_at"],
        schema=schema,
        postgresql_where=sa.text("sent_at IS NOT NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("message_id", sa.Uuid(), primary_key=True),
        sa.Column("message_type", sa.Text(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        schema=schema,
    )
    op.create_index(f"ix_{schema}_inbox_received_at", "inbox", ["received_at"], schema=schema)
    # NOTIFY is delivered at commit, and identical payloads in one transaction fold into one,
    # so the relay wakes once per (schema, lane) a transaction touched.
    op.execute(
        f"""
        CREATE FUNCTION {schema}.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('checkout_outbox', TG_TABLE_SCHEMA || ':' || NEW.lane);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        f"CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.notify_outbox()"
    )


def _drop_mailbox(schema: str) -> None:
    op.execute(f"DROP TRIGGER outbox_notify ON {schema}.outbox")
    op.execute(f"DROP FUNCTION {schema}.notify_outbox()")
    op.drop_table("inbox", schema=schema)
    op.drop_table("outbox", schema=schema)


def _create_saga() -> None:
    _create_mailbox("saga")
    op.create_table(
        "sagas",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payment_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "state IN ('Submitted', 'StockReserved', 'Confirmed', 'Failed')", name="ck_sagas_state"
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="saga",
    )
    op.create_index(
        "ix_sagas_due",
        "sagas",
        ["payment_deadline"],
        unique=False,
        schema="saga",
        postgresql_where=sa.text("payment_deadline IS NOT NULL"),
    )
    op.create_index("ix_sagas_state", "sagas", ["state"], unique=False, schema="saga")


def _create_inventory() -> None:
    _create_mailbox("inventory")
    op.create_table(
        "products",
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("deducted", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("available >= 0", name="ck_products_available"),
        sa.CheckConstraint("deducted >= 0", name="ck_products_deducted"),
        sa.CheckConstraint("reserved >= 0", name="ck_products_reserved"),
        sa.PrimaryKeyConstraint("sku"),
        schema="inventory",
    )
    op.create_table(
        "reservation_outcomes",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "shortages",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("order_id"),
        schema="inventory",
    )
    op.create_table(
        "reservations",
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('held', 'deducted', 'released')", name="ck_reservations_status"
        ),
        sa.CheckConstraint("quantity > 0", name="ck_reservations_quantity"),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["inventory.products.sku"],
        ),
        sa.PrimaryKeyConstraint("reservation_id"),
        sa.UniqueConstraint("order_id", "sku", name="uq_reservations_order_sku"),
        schema="inventory",
    )
    op.create_index(
        "ix_reservations_order", "reservations", ["order_id"], unique=False, schema="inventory"
    )


def _create_orders() -> None:
    _create_mailbox("orders")
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('created', 'confirmed', 'failed')", name="ck_orders_status"),
        sa.PrimaryKeyConstraint("order_id"),
        schema="orders",
    )
    op.create_index("ix_orders_buyer", "orders", ["buyer_id"], unique=False, schema="orders")
    op.create_table(
        "pending_commands",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("message_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
        schema="orders",
    )
    op.create_index(
        "ix_pending_commands_order", "pending_commands", ["order_id"], unique=False, schema="orders"
    )


def _create_cart() -> None:
    _create_mailbox("cart")
    op.create_table(
        "carts",
        sa.Column("cart_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'checked_out', 'cleared', 'abandoned')", name="ck_carts_status"
        ),
        sa.PrimaryKeyConstraint("cart_id"),
        sa.UniqueConstraint("order_id"),
        schema="cart",
    )
    op.create_index("ix_carts_buyer", "carts", ["buyer_id"], unique=False, schema="cart")
    op.create_table(
        "clearances",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("cart_id", sa.Uuid(), nullable=True),
        sa.Column("items_removed", sa.Integer(), nullable=False),
        sa.Column(
            "cleared_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("order_id"),
        schema="cart",
    )
    op.create_table(
        "cart_items",
        sa.Column("cart_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("quantity > 0", name="ck_cart_items_quantity"),
        sa.ForeignKeyConstraint(["cart_id"], ["cart.carts.cart_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("cart_id", "sku"),
        schema="cart",
    )


def _create_payments() -> None:
    _create_mailbox("payments")
    op.create_table(
        "payments",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "decision IN ('completed', 'declined', 'silent')", name="ck_payments_decision"
        ),
        sa.PrimaryKeyConstraint("order_id"),
        sa.UniqueConstraint("payment_id"),
        schema="payments",
    )
    op.create_table(
        "refunds",
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "refunded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("payment_id"),
        schema="payments",
    )


def upgrade() -> None:
    _create_saga()
    _create_inventory()
    _create_orders()
    _create_cart()
    _create_payments()


def downgrade() -> None:
    op.drop_table("refunds", schema="payments")
    op.drop_table("payments", schema="payments")
    _drop_mailbox("payments")
    op.execute("DROP SCHEMA payments")
    op.drop_table("cart_items", schema="cart")
    op.drop_table("clearances", schema="cart")
    op.drop_table("carts", schema="cart")
    _drop_mailbox("cart")
    op.execute("DROP SCHEMA cart")
    op.drop_table("pending_commands", schema="orders")
    op.drop_table("orders", schema="orders")
    _drop_mailbox("orders")
    op.execute("DROP SCHEMA orders")
    op.drop_table("reservations", schema="inventory")
    op.drop_table("reservation_outcomes", schema="inventory")
    op.drop_table("products", schema="inventory")
    _drop_mailbox("inventory")
    op.execute("DROP SCHEMA inventory")
    op.drop_table("sagas", schema="saga")
    _drop_mailbox("saga")
    op.execute("DROP SCHEMA saga")
