"""The operator's admin HTTP API: sagas, orders, stock, dead letters, health, metrics, AsyncAPI."""
