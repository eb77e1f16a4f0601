"""End-to-end tier: the product as separate processes, and the `dev` command."""
