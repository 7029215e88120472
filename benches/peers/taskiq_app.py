"""taskiq + taskiq-redis: RedisStreamBroker (streams, with acks; the list and pub/sub brokers have none),
no result backend. `taskiq worker --workers 1` (default 2 worker processes), default --max-async-tasks
(100). Enqueued with `.kiq()`, 500 at a time under asyncio.gather."""

from __future__ import annotations

import asyncio
import sys

from taskiq_redis import RedisStreamBroker

from peers._probe import PROBE, redis_url

DIST = "taskiq"
SETTINGS = "RedisStreamBroker, taskiq worker --workers 1, default --max-async-tasks 100"
COMMAND = [sys.executable, "-m", "taskiq", "worker", "--workers", "1", "peers.taskiq_app:broker"]

broker = RedisStreamBroker(redis_url())


@broker.task
async def noop() -> None:
    PROBE.ran()


async def _enqueue(n: int) -> None:
    await broker.startup()  # creates the stream's consumer group, so the worker reads what is sent now
    for start in range(0, n, 500):
        await asyncio.gather(*(noop.kiq() for _ in range(min(500, n - start))))
    await broker.shutdown()


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))
