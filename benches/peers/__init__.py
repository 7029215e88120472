"""The peers of `benches/peers.py`: one module per task queue, each with the worker's application, the
command that starts one worker process on it, and the function that enqueues the no-op jobs.

Every module reads the Redis URL and the job count from the environment (`_probe.ENV_URL`,
`_probe.ENV_JOBS`), and its job body is the same one call, `PROBE.ran()` (see `_probe`).
"""
