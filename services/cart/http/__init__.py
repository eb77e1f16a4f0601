"""The cart service's HTTP API (FastAPI): carts with price snapshots, checkout, order status.

Built by `create_http_app(settings, engine)`; talks to the cart schema only, never to another
service's tables.
"""
