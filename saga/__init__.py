"""The checkout saga: the pure machine (its table) and instance data, persistence, handlers, timeouts."""
