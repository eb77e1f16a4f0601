"""Chaos tier: the product as processes, killed and restarted under load; invariants checked."""
