"""arq: `arq peers.arq_app.WorkerSettings` with max_jobs=100 (default 10) and poll_delay=0.01 s
(default 0.5 s, slept between reads of the queue even when it is full). Results kept (default).
Enqueued with `enqueue_job`, 50 at a time under asyncio.gather (more overflows the connection pool)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings

from peers._probe import PROBE, redis_url

DIST = "arq"
SETTINGS = "max_jobs=100 (default 10), poll_delay=0.01 s (default 0.5 s)"
COMMAND = [sys.executable, "-m", "arq", "peers.arq_app.WorkerSettings"]


async def noop(ctx: Any) -> None:
    PROBE.ran()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop]
    redis_settings = RedisSettings.from_dsn(redis_url())
    max_jobs = 100
    poll_delay = 0.01


async def _enqueue(n: int) -> None:
    pool = await create_pool(WorkerSettings.redis_settings)
    for start in range(0, n, 50):
        await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(min(50, n - start))))
    await pool.aclose()


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))
