"""`python -m ops.cli`: the same command line as the `checkout-saga` script."""

from ops.cli.main import main

main()
