"""Wire fuzzing of every consumer: hostile records through the real consumer path, on the real pair.

`test_direct_fuzz` feeds every service's `Consumer.process_batch` in batches (the bulk);
`test_broker_fuzz` sends a tenth as many through Kafka to the running product (the batch loops).
Cases come from the contracts (`shapes` -> `values` -> `cases`, Hypothesis) and from mutating
the run's valid traffic (`mutations`); `state` and `checks` say what must hold afterwards.
`CHECKOUT_FUZZ_EXAMPLES` sets the size (10,000 by default), `CHECKOUT_FUZZ_SEED` replays a run.
"""
