"""Ended tasks are forgotten after the storage's retention, so memory stays bounded under a steady load;
dead tasks stay in the dead letter queue until purged, or for the storage's `dead_retention` if it has one."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis
import trio

from skedulr import MemoryStorage, RedisStorage, Scheduler, Storage, Task, TaskStatus
from skedulr.errors import InvalidOptionError, TaskNotFoundError
from skedulr.retry import NoRetry

RETENTION = 20.0
DEAD_RETENTION = 40.0


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


@pytest.fixture(params=["memory", "redis"])
def dlq_with_retention(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        return MemoryStorage(retention=RETENTION, dead_retention=DEAD_RETENTION)
    url = request.getfixturevalue("redis_server").url
    return RedisStorage(url, prefix=f"dlq-{os.urandom(4).hex()}", retention=RETENTION,
                        dead_retention=DEAD_RETENTION, use_client_clock=True)  # fmt: skip


async def test_with_a_dead_retention_a_failing_load_keeps_the_dlq_bounded(
    dlq_with_retention: Storage, autojump_clock: Any
) -> None:
    """Dead tasks are forgotten once they died `dead_retention` ago, so a steady load that keeps failing
    leaves a bounded dead letter queue (and Redis)."""
    sched = Scheduler(dlq_with_retention, max_workers=10, retry=NoRetry())

    @sched.job("fail")
    async def fail(ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("goes dead")

    async with sched:
        first = await sched.submit(Task("fail"))
        for _ in range(int(DEAD_RETENTION * 4)):  # 10 failing tasks a second for four dead retentions
            await sched.submit_many([Task("fail") for _ in range(10)])
            await trio.sleep(1)
        await sched.join()
        stats = await sched.stats()
        dead = stats.counts["dead"]
        # About one dead retention of dead tasks (plus a sweep interval) is kept, not all 1,600.
        assert 10 * DEAD_RETENTION <= dead <= 10 * (DEAD_RETENTION + DEAD_RETENTION / 10 + 2) + 1, dead
        assert sum(stats.counts.values()) == dead
        assert len((await sched.list_tasks(status="dead", limit=10_000)).tasks) == dead
        if isinstance(dlq_with_retention, RedisStorage):
            assert _redis_keys(dlq_with_retention) == dead
            client = redis.Redis.from_url(dlq_with_retention.url)
            assert (
                client.zcard(dlq_with_retention._key("died")) == client.zcard(dlq_with_retention._key("dead")) == dead
            )
            client.close()
        with pytest.raises(TaskNotFoundError):
            await sched.get(first)


async def test_a_resubmitted_task_is_not_swept_by_its_first_death(
    dlq_with_retention: Storage, autojump_clock: Any
) -> None:
    sched = Scheduler(dlq_with_retention, max_workers=2, retry=NoRetry())
    runs: list[float] = []

    @sched.job("fail")
    async def fail(ctx):  # type: ignore[no-untyped-def]
        runs.append(trio.current_time())
        raise RuntimeError("goes dead")

    async with sched:
        task_id = await sched.submit(Task("fail"))
        await sched.wait(task_id)
        await trio.sleep(DEAD_RETENTION * 0.75)
        await sched.resubmit(task_id)
        await sched.wait(task_id)
        await trio.sleep(DEAD_RETENTION * 0.75)  # past the first death's end, before the second's
        assert (await sched.get(task_id)).status is TaskStatus.DEAD
        await trio.sleep(DEAD_RETENTION * 0.5)
        with pytest.raises(TaskNotFoundError):
            await sched.get(task_id)
    assert len(runs) == 2


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "60", True])
def test_a_bad_dead_retention_is_refused(bad: Any) -> None:
    for make in (MemoryStorage, lambda **kw: RedisStorage("redis://127.0.0.1:1/0", **kw)):
        with pytest.raises(InvalidOptionError, match="dead_retention"):
            make(dead_retention=bad)
