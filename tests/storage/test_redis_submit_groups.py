"""Group commit of single submits on Redis: submits made while a submit script is in flight go out
together in one script call, and a task refused in a group fails alone."""

from __future__ import annotations

import os

import pytest
import redis
import trio

from skedulr import RedisStorage, Scheduler, Task, TaskStatus
from skedulr.errors import DuplicateTaskError, InvalidNameError


def _submit_calls(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
    finally:
        client.close()


def _scheduler(url: str) -> Scheduler:
    sched = Scheduler(RedisStorage(url, prefix=f"groups-{os.urandom(3).hex()}"))
    sched.register_job("job", lambda ctx: None)
    sched.pause()  # nothing runs: only submit scripts reach Redis
    return sched


async def test_concurrent_submits_share_script_calls(redis_url: str) -> None:
    sched = _scheduler(redis_url)
    ids: list[str] = []
    async with sched:
        redis.Redis.from_url(redis_url).config_resetstat()

        async def submitter() -> None:
            for _ in range(10):
                ids.append(await sched.submit(Task("job")))

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(submitter)
        calls = _submit_calls(redis_url)
        assert len(set(ids)) == 500
        assert (await sched.stats()).counts["queued"] == 500
        for task_id in ids[:20]:
            assert (await sched.get(task_id)).status is TaskStatus.QUEUED
    assert calls < 250, f"{calls} script calls for 500 submits from 50 concurrent tasks: no grouping"


async def test_a_refused_task_in_a_group_fails_alone(redis_url: str) -> None:
    sched = _scheduler(redis_url)
    outcomes: dict[int, str | Exception] = {}
    async with sched:
        taken = await sched.submit(Task("job", id="taken"))

        async def submitter(i: int) -> None:
            task = Task("job", id="taken") if i == 7 else Task("job")
            try:
                outcomes[i] = await sched.submit(task)
            except DuplicateTaskError as e:
                outcomes[i] = e

        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(submitter, i)
        assert isinstance(outcomes[7], DuplicateTaskError)
        stored = [v for i, v in outcomes.items() if i != 7]
        assert all(isinstance(v, str) for v in stored) and len(set(stored)) == 29
        assert (await sched.stats()).counts["queued"] == 30  # the 29 and the one that held the id
        assert (await sched.get(taken)).status is TaskStatus.QUEUED


async def test_bad_input_fails_before_joining_a_group(redis_url: str) -> None:
    sched = _scheduler(redis_url)
    good: list[str] = []
    async with sched:

        async def submitter(i: int) -> None:
            if i == 3:  # past the scheduler's own checks, as a storage caller could send it
                with pytest.raises(InvalidNameError):
                    await sched.storage.submit(("bad id!", "job", "default", b"", 0, 0, 0, None, None, [], None), 0)
            else:
                good.append(await sched.submit(Task("job")))

        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(submitter, i)
        assert len(good) == 9
        assert (await sched.stats()).counts["queued"] == 9
