"""Saga key hash: Kafka's murmur2 of the order id, so the deadline poller can filter by partition.

The payment-deadline gate (saga/deadline_gate.py) releases deadlines per answer partition; the
partition of a saga is murmur2(str(id)) & 0x7fffffff modulo the partition count. A generated
column computes the hash in the database, whoever inserts the row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# saga.deadline_gate.murmur2 in PL/pgSQL. Products of a 32-bit value and m stay below 2^63,
# so bigint arithmetic masked to 32 bits is exact.
MURMUR2 = """
CREATE FUNCTION saga.kafka_key_hash(key text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    data bytea := convert_to(key, 'UTF8');
    len integer := length(data);
    body integer := len - len % 4;
    m bigint := 1540483477;
    h bigint := 2538058380::bigint # len::bigint;
    k bigint;
    i integer := 0;
BEGIN
    WHILE i < body LOOP
        k := get_byte(data, i)::bigint | (get_byte(data, i + 1)::bigint << 8)
            | (get_byte(data, i + 2)::bigint << 16) | (get_byte(data, i + 3)::bigint << 24);
        k := (k * m) & 4294967295;
        k := k # (k >> 24);
        k := (k * m) & 4294967295;
        h := ((h * m) & 4294967295) # k;
        i := i + 4;
    END LOOP;
    IF len % 4 >= 3 THEN h := h # (get_byte(data, body + 2)::bigint << 16); END IF;
    IF len % 4 >= 2 THEN h := h # (get_byte(data, body + 1)::bigint << 8); END IF;
    IF len % 4 >= 1 THEN h := ((h # get_byte(data, body)::bigint) * m) & 4294967295; END IF;
    h := h # (h >> 13);
    h := (h * m) & 4294967295;
    h := h # (h >> 15);
    RETURN (h & 2147483647)::integer;
END
$$
"""


def upgrade() -> None:
    op.execute(MURMUR2)
    op.add_column(
        "sagas",
        sa.Column(
            "key_hash",
            sa.Integer(),
            sa.Computed("saga.kafka_key_hash(id::text)", persisted=True),
            nullable=False,
        ),
        schema="saga",
    )


def downgrade() -> None:
    op.drop_column("sagas", "key_hash", schema="saga")
    op.execute("DROP FUNCTION saga.kafka_key_hash(text)")
