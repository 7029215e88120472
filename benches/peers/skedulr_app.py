"""skedulr: `python -m skedulr worker peers.skedulr_app:scheduler`, RedisStorage on the server clock,
100 runners (as in `redis_throughput.py`); enqueued with `submit_many` in batches of 5,000 by a
scheduler whose own pool is paused (`redis_throughput._submitter`)."""

from __future__ import annotations

import sys

import trio

from peers._probe import PROBE, redis_url
from redis_throughput import BATCH, RUNNERS, _submitter
from skedulr import JobContext, Scheduler, Task
from skedulr.storage.redis import RedisStorage

DIST = "skedulr"
PREFIX = "peers"
SETTINGS = f"max_workers={RUNNERS}"
COMMAND = [sys.executable, "-m", "skedulr", "worker", "peers.skedulr_app:scheduler"]


async def noop(ctx: JobContext) -> None:
    PROBE.ran()


def scheduler() -> Scheduler:
    sched = Scheduler(storage=RedisStorage(redis_url(), prefix=PREFIX, use_client_clock=False), max_workers=RUNNERS)
    sched.register_job("noop", noop)
    return sched


async def _enqueue(n: int) -> None:
    async with await _submitter(PREFIX, redis_url()) as sched:
        for start in range(0, n, BATCH):
            await sched.submit_many([Task("noop") for _ in range(min(BATCH, n - start))])


def enqueue(n: int) -> None:
    trio.run(_enqueue, n)
