"""streaq: Worker(concurrency=100) (default 16), `streaq run peers.streaq_app:worker`. Enqueued with
`enqueue_many` (one pipeline) in batches of 5,000."""

from __future__ import annotations

import asyncio
import sys

from streaq import Worker

from peers._probe import PROBE, redis_url

DIST = "streaq"
SETTINGS = "Worker(concurrency=100) (default 16)"
COMMAND = [sys.executable, "-m", "streaq", "run", "peers.streaq_app:worker"]

worker = Worker(redis_url=redis_url(), concurrency=100)


@worker.task()
async def noop() -> None:
    PROBE.ran()


async def _enqueue(n: int) -> None:
    async with worker:
        for start in range(0, n, 5_000):
            await worker.enqueue_many([noop.enqueue() for _ in range(min(5_000, n - start))])


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))
