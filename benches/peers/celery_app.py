"""celery: redis broker, no result backend, `celery -A peers.celery_app worker --pool threads
--concurrency 8` (one process; the default prefork pool forks one child per core; `--pool solo` drained
about as fast), default prefetch multiplier (4) and log level (WARNING). Enqueued with `.delay()`, one
call per job."""

from __future__ import annotations

import sys

from celery import Celery

from peers._probe import PROBE, redis_url

DIST = "celery"
SETTINGS = "redis broker, worker --pool threads --concurrency 8 (default prefork, one child per core)"
COMMAND = [sys.executable, "-m", "celery", "-A", "peers.celery_app", "worker"]
COMMAND += ["--pool", "threads", "--concurrency", "8"]

app = Celery("peers", broker=redis_url())


@app.task
def noop() -> None:
    PROBE.ran()


def enqueue(n: int) -> None:
    for _ in range(n):
        noop.delay()
