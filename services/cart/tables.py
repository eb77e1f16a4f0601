"""The cart schema: offers, carts and snapshots, keys, checkout groups, order view, pricing rules."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB

from services.cart.domain import HOUSE_VENDOR
from services.platform.inbox import inbox_table
from services.platform.journal import journal_table
from services.platform.outbox import outbox_table

SCHEMA = "cart"
metadata = MetaData(schema=SCHEMA)

carts = Table(
    "carts",
    metadata,
    Column("cart_id", Uuid, primary_key=True),
    Column("buyer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("order_id", Uuid, unique=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Any buyer change touches it; the abandon job claims active carts idle past the TTL.
    Column("last_activity_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A merged guest cart: the buyer's cart it went into.
    Column("merged_into", Uuid),
    # The buyer's delivery choice: destination (ISO 3166 country, region) and shipping method.
    Column("ship_country", Text),
    Column("ship_region", Text),
    Column("shipping_method", Text),
    CheckConstraint(
        "status IN ('active', 'checked_out', 'cleared', 'abandoned', 'merged')",
        name="ck_carts_status",
    ),
    Index("ix_carts_buyer", "buyer_id"),
    Index("ix_carts_idle", "last_activity_at", postgresql_where=text("status = 'active'")),
    # The business figures count the carts that ended in a time window (migration 0013).
    Index("ix_carts_ended", "updated_at", postgresql_where=text("status <> 'active'")),
)

cart_items = Table(
    "cart_items",
    metadata,
    Column("cart_id", Uuid, ForeignKey("cart.carts.cart_id", ondelete="CASCADE"), primary_key=True),
    Column("sku", Text, primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(14, 2), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The public id of a line (/cart/items/{id}) and its price snapshot: the offer it was
    # taken of, currency, when. Lines written without the API (an upstream) have no offer and
    # no currency of their own: theirs is the cart's.
    Column("id", Uuid, nullable=False, server_default=text("gen_random_uuid()")),
    Column("offer_id", Uuid),
    Column("currency", Text),
    Column("captured_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The vendor of the offer the snapshot was taken of (lines from before vendors: the house).
    Column("vendor_id", Text, nullable=False, server_default=HOUSE_VENDOR),
    CheckConstraint("quantity > 0", name="ck_cart_items_quantity"),
    UniqueConstraint("id", name="uq_cart_items_id"),
)

# The current offer per product: what a cart line's price snapshot is taken of.
offers = Table(
    "offers",
    metadata,
    Column("sku", Text, primary_key=True),
    Column("offer_id", Uuid, nullable=False),
    Column("unit_price", Numeric(14, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("max_qty", Integer, nullable=False, server_default="20"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("vendor_id", Text, nullable=False, server_default=HOUSE_VENDOR),
    # Minimum order quantity: fewer units of the product are refused at checkout.
    Column("moq", Integer, nullable=False, server_default="1"),
    # What promotions select lines by, tax rates vary by and shipping bands weigh.
    Column("category", Text),
    Column("brand", Text),
    Column("weight_grams", Integer, nullable=False, server_default="0"),
    CheckConstraint("unit_price > 0", name="ck_offers_unit_price"),
    CheckConstraint("weight_grams >= 0", name="ck_offers_weight"),
    CheckConstraint("max_qty BETWEEN 1 AND 20", name="ck_offers_max_qty"),
    CheckConstraint("moq BETWEEN 1 AND max_qty", name="ck_offers_moq"),
    CheckConstraint("char_length(vendor_id) BETWEEN 1 AND 128", name="ck_offers_vendor_id"),
    CheckConstraint("char_length(currency) = 3", name="ck_offers_currency"),
    UniqueConstraint("offer_id", name="uq_offers_offer_id"),
)

# First response of each (buyer, Idempotency-Key); the response columns are filled in the
# transaction that claimed the key, so no other transaction ever sees them empty.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("buyer_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("response_status", Integer),
    # json, not jsonb: a replay answers the very bytes of the first response, key order kept.
    Column("response_body", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# The durable receipt of each checkout: one per Idempotency-Key, kept after its cart is gone.
checkout_groups = Table(
    "checkout_groups",
    metadata,
    Column("group_id", Uuid, primary_key=True),
    Column("buyer_id", Text, nullable=False),
    Column("cart_id", Uuid, nullable=False),
    Column("policy", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total", Numeric(16, 2), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The totals it was checked out at (subtotal, discounts, shipping, tax); None before pricing.
    Column("pricing", JSONB),
    CheckConstraint("policy IN ('all_or_nothing', 'partial')", name="ck_checkout_groups_policy"),
    Index("ix_checkout_groups_buyer", "buyer_id"),
    Index("ix_checkout_groups_created_at", "created_at"),
)

# The cart's own view of the (vendor) orders its carts became, kept current from the order
# events; `items` and `total` are as checked out, the adjusted columns as the final event says.
order_status = Table(
    "order_status",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("buyer_id", Text, nullable=False),
    Column("cart_id", Uuid, nullable=False),
    Column("status", Text, nullable=False),
    Column("failure_reason", Text),
    Column("currency", Text, nullable=False),
    Column("total", Numeric(16, 2), nullable=False),
    Column("items", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("checkout_group_id", Uuid, ForeignKey("cart.checkout_groups.group_id")),
    Column("vendor_id", Text),
    Column("adjusted_total", Numeric(16, 2)),
    Column("accepted_items", JSONB),
    Column("rejected", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    CheckConstraint(
        "status IN ('pending', 'created', 'confirmed', 'failed')", name="ck_order_status_status"
    ),
    Index("ix_order_status_buyer", "buyer_id"),
    Index("ix_order_status_group", "checkout_group_id"),
)

# Guest sessions: only the SHA-256 of each token is kept. A merge ends the session and keeps
# its answer, so a retried merge of the same token by the same buyer answers it again.
guest_sessions = Table(
    "guest_sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("token_sha256", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("merged_by", Text),
    Column("merge_result", JSON),
    UniqueConstraint("token_sha256", name="uq_guest_sessions_token_sha256"),
    CheckConstraint("(merged_by IS NULL) = (merge_result IS NULL)", name="ck_guest_sessions_merge"),
)

# One row per order whose cart was cleared: proves "cleared exactly once".
clearances = Table(
    "clearances",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("cart_id", Uuid),
    Column("items_removed", Integer, nullable=False),
    Column("cleared_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The shop's discount rules: a code, or none for an automatic promotion. `target` and
# `exclusions` are {"skus": [...], "categories": [...], "brands": [...]}; no target: the cart.
promotions = Table(
    "promotions",
    metadata,
    Column("promotion_id", Text, primary_key=True),
    Column("code", Text),
    Column("kind", Text, nullable=False),
    Column("value", Numeric(14, 4), nullable=False),
    Column("stacking", Text, nullable=False),
    Column("target", JSONB),
    Column("exclusions", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("min_spend", Numeric(14, 2), nullable=False, server_default="0"),
    Column("currency", Text),
    Column("valid_from", DateTime(timezone=True)),
    Column("valid_until", DateTime(timezone=True)),
    Column("limit_total", Integer),
    Column("limit_per_buyer", Integer),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("code", name="uq_promotions_code"),
    CheckConstraint("kind IN ('percentage', 'fixed')", name="ck_promotions_kind"),
    CheckConstraint(
        "stacking IN ('exclusive', 'stackable', 'best_of')", name="ck_promotions_stacking"
    ),
)

# Uses consumed, overall and per buyer: checkout takes one with a conditional update (never past
# the limit, even when two checkouts race for the last use); a failed order gives it back.
promotion_uses = Table(
    "promotion_uses",
    metadata,
    Column("promotion_id", Text, primary_key=True),
    Column("uses", Integer, nullable=False, server_default="0"),
    CheckConstraint("uses >= 0", name="ck_promotion_uses_uses"),
)
promotion_buyer_uses = Table(
    "promotion_buyer_uses",
    metadata,
    Column("promotion_id", Text, primary_key=True),
    Column("buyer_id", Text, primary_key=True),
    Column("uses", Integer, nullable=False, server_default="0"),
    CheckConstraint("uses >= 0", name="ck_promotion_buyer_uses_uses"),
)

# Each promotion a checkout group used, what it took off, and when its use was given back.
redemptions = Table(
    "redemptions",
    metadata,
    Column("group_id", Uuid, primary_key=True),
    Column("promotion_id", Text, primary_key=True),
    Column("buyer_id", Text, nullable=False),
    Column("code", Text),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("redeemed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("returned_at", DateTime(timezone=True)),
    Index("ix_redemptions_redeemed_at", "redeemed_at"),
)

# The codes a buyer entered on a cart (normalized); the engine decides at each pricing if they apply.
cart_coupons = Table(
    "cart_coupons",
    metadata,
    Column("cart_id", Uuid, ForeignKey("cart.carts.cart_id", ondelete="CASCADE"), primary_key=True),
    Column("code", Text, primary_key=True),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Failed code guesses per subject ("buyer:<id>", "client:<address>") and fixed time window.
coupon_attempts = Table(
    "coupon_attempts",
    metadata,
    Column("subject", Text, primary_key=True),
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
)

# Shipping methods: destinations served (countries "DE" or regions "US-CA"), weight bands
# [{"up_to_grams": int, "price": "4.90"}] in the method's currency, and availability rules.
shipping_methods = Table(
    "shipping_methods",
    metadata,
    Column("method_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("serves", ARRAY(Text), nullable=False),
    Column("bands", JSONB, nullable=False),
    Column("min_order_value", Numeric(14, 2)),
    Column("max_order_value", Numeric(14, 2)),
    Column("excluded_skus", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("excluded_categories", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("free_from", Numeric(14, 2)),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Tax rate tables by area: a country ("DE") or a region replacing its country's ("US-CA");
# rates are fractions (0.19), `by_category` maps a category to its reduced rate.
tax_rates = Table(
    "tax_rates",
    metadata,
    Column("area", Text, primary_key=True),
    Column("standard", Numeric(8, 6), nullable=False),
    Column("by_category", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row: bumped by a trigger on every change of promotions, shipping_methods or tax_rates
# (migration 0012), so processes reload their in-memory rules only when it moved.
pricing_rules_version = Table(
    "pricing_rules_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("id = 1", name="ck_pricing_rules_version_one_row"),
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)
journal = journal_table(metadata, SCHEMA)
