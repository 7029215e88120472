"""Ended tasks are forgotten after the storage's retention, so memory stays bounded under a steady load;
dead tasks stay in the dead letter queue until purged."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis
import trio

from skedulr import MemoryStorage, RedisStorage, Scheduler, Storage, Task, TaskStatus
from skedulr.errors import TaskNotFoundError
from skedulr.retry import NoRetry

RETENTION = 20.0


@pytest.fixture(params=["memory", "redis"])
def short_memory(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        return MemoryStorage(retention=RETENTION)
    url = request.getfixturevalue("redis_server").url
    return RedisStorage(url, prefix=f"ret-{os.urandom(4).hex()}", retention=RETENTION, use_client_clock=True)


def _redis_keys(storage: Storage) -> int:
    assert isinstance(storage, RedisStorage)
    client = redis.Redis.from_url(storage.url)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{storage.tag}:t:*"))
    finally:
        client.close()


async def test_a_steady_load_keeps_the_stored_tasks_bounded(short_memory: Storage, autojump_clock: Any) -> None:
    sched = Scheduler(short_memory, max_workers=10, retry=NoRetry())

    @sched.job("work")
    async def work(ctx):  # type: ignore[no-untyped-def]
        if ctx.text() == "fail":
            raise RuntimeError("goes dead")

    async with sched:
        dead = await sched.submit(Task("work", payload="fail"))
        first = await sched.submit(Task("work", payload="ok"))
        await sched.wait(first)
        # A steady load: 50 tasks a second for five retention periods.
        for _ in range(int(RETENTION * 5)):
            await sched.submit_many([Task("work", payload="ok") for _ in range(50)])
            await trio.sleep(1)
        await sched.join()
        stats = await sched.stats()
        stored = sum(stats.counts.values())
        # Roughly one retention period of tasks (plus one sweep interval) is kept, not all 5,000.
        assert stored <= 50 * (RETENTION + RETENTION / 10 + 2) + 2
        if isinstance(short_memory, RedisStorage):
            assert _redis_keys(short_memory) == stored
        with pytest.raises(TaskNotFoundError):
            await sched.get(first)
        assert (await sched.get(dead)).status is TaskStatus.DEAD  # the DLQ is not swept


async def test_a_purged_task_or_a_reused_id_is_not_swept_by_an_old_entry(
    short_memory: Storage, autojump_clock: Any
) -> None:
    """Redis keeps one ended-list entry per moment; a purge leaves the entry behind. The sweep must skip a
    task that is gone, and must not forget a newer task that took a purged task's id."""
    sched = Scheduler(short_memory, max_workers=10, retry=NoRetry())

    @sched.job("work")
    async def work(ctx):  # type: ignore[no-untyped-def]
        pass

    async with sched:
        gone = await sched.submit(Task("work", id="reused"))
        kept = await sched.submit(Task("work"))
        await sched.wait(gone)
        await sched.wait(kept)
        await sched.purge(gone)
        await trio.sleep(RETENTION / 2)
        again = await sched.submit(Task("work", id="reused"))  # same id, ends half a retention later
        await sched.wait(again)
        await trio.sleep(RETENTION / 2 + RETENTION / 10 + 1)  # the first entries are due and swept
        with pytest.raises(TaskNotFoundError):
            await sched.get(kept)
        assert (await sched.get("reused")).status is TaskStatus.SUCCEEDED
        counts = (await sched.stats()).counts
        assert counts["succeeded"] == 1, counts
        await trio.sleep(RETENTION)
        with pytest.raises(TaskNotFoundError):
            await sched.get("reused")
        assert (await sched.stats()).counts["succeeded"] == 0
