"""The cart service: its own schema, outbox and inbox; talks to others only through contracts."""
