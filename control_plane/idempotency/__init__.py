"""``Idempotency-Key`` for every POST that starts work: the first request runs, a retry
with the same key and body gets its answer again (``service.run_once``)."""
