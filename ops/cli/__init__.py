"""The `checkout-saga` command line, one module per command group."""

from ops.cli.main import cli, main

__all__ = ["cli", "main"]
