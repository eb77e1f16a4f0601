"""The payments service: its own schema, outbox and inbox; talks to others only through contracts."""
