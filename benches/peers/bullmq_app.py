"""bullmq (Python port): a Worker with concurrency=100 (default 1), run by `python -m peers.bullmq_app`
(the port has no worker command). Enqueued with `Queue.addBulk` in batches of 5,000."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from bullmq import Queue, Worker

from peers._probe import PROBE, redis_url

DIST = "bullmq"
SETTINGS = "Worker(concurrency=100) (default 1)"
COMMAND = [sys.executable, "-m", "peers.bullmq_app"]
QUEUE = "peers"


async def noop(job: Any, token: str) -> None:
    PROBE.ran()


async def _enqueue(n: int) -> None:
    queue = Queue(QUEUE, {"connection": redis_url()})
    for start in range(0, n, 5_000):
        await queue.addBulk([{"name": "noop", "data": {}} for _ in range(min(5_000, n - start))])
    await queue.close()


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))


async def _work() -> None:
    worker = Worker(QUEUE, noop, {"connection": redis_url(), "concurrency": 100})
    try:
        await asyncio.Event().wait()  # until the benchmark stops this process
    finally:
        await worker.close()


if __name__ == "__main__":
    asyncio.run(_work())
