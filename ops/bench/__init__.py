"""`checkout-saga bench`: drives checkouts from its own process against services run as processes.

The bench process starts (or finds) PostgreSQL and Kafka, spawns every service as OS processes,
publishes CheckoutStarted and watches the orders' final events on the wire, and reports the cost
of a saga in commits, row writes, Kafka records and CPU seconds (see docs/performance.md).
"""
