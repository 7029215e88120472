"""rq: `rq worker --worker-class rq.SimpleWorker` (runs each job in the worker process; the default
Worker forks a work horse per job, which would time fork()), default logging (a line per job) and
result TTL. Enqueued with `Queue.enqueue_many` (one pipeline) in batches of 5,000."""

from __future__ import annotations

import shutil

from redis import Redis
from rq import Queue

from peers._probe import PROBE, redis_url

DIST = "rq"
SETTINGS = "rq worker --worker-class rq.SimpleWorker (default Worker forks per job)"
COMMAND = [shutil.which("rq") or "rq", "worker", "--url", redis_url(), "--worker-class", "rq.SimpleWorker"]


def noop() -> None:
    PROBE.ran()


def enqueue(n: int) -> None:
    queue = Queue(connection=Redis.from_url(redis_url()))
    for start in range(0, n, 5_000):
        queue.enqueue_many([Queue.prepare_data(noop) for _ in range(min(5_000, n - start))])
