"""Alembic migrations: one history that creates every schema, table, constraint and trigger."""
