"""saq: RedisQueue, `saq peers.saq_app.settings` with concurrency=100 (default 10). Enqueued with
`Queue.enqueue`, 500 at a time under asyncio.gather."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from saq import Queue

from peers._probe import PROBE, redis_url

DIST = "saq"
SETTINGS = "concurrency=100 (default 10)"
COMMAND = [sys.executable, "-m", "saq", "peers.saq_app.settings"]


async def noop(ctx: Any) -> None:
    PROBE.ran()


queue = Queue.from_url(redis_url())
settings = {"queue": queue, "functions": [noop], "concurrency": 100}


async def _enqueue(n: int) -> None:
    await queue.connect()
    for start in range(0, n, 500):
        await asyncio.gather(*(queue.enqueue("noop") for _ in range(min(500, n - start))))
    await queue.disconnect()


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))
