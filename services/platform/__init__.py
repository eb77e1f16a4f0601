"""Shared runtime: settings, database, outbox, inbox, broker, relay; imports no service and not the saga."""
