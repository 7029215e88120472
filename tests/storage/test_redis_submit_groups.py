"""Single submits on Redis: submits made while a submit script is in flight go out together in one
script call (group commit), and a task refused in a group fails alone; one made while nothing is in
flight goes out at once, by the leaner script when it can."""

from __future__ import annotations

import os

import pytest
import redis
import trio

from redis_fixtures import SLOW
from skedulr import RedisStorage, Scheduler, Task, TaskStatus
from skedulr.errors import DuplicateTaskError, InvalidNameError
from skedulr.storage import _scripts
from skedulr.storage._redis_direct import DirectConnection


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


async def test_a_single_plain_submit_stores_what_the_general_script_stores(redis_url: str) -> None:
    """With nothing in flight, a plain task that is ready now takes lua/submit_one.lua; one with a key or
    a delay takes lua/submit.lua. Both store the same fields and keep the queue's order, and the first
    task of an empty queue wakes the pool's workers."""
    sched = _scheduler(redis_url)
    client = redis.Redis.from_url(redis_url)
    lean, general = _scripts.load("submit_one").sha, _scripts.load("submit").sha
    async with sched:
        tag = sched.storage.tag  # type: ignore[attr-defined]
        hints = client.pubsub()
        hints.subscribe(f"{tag}:wake")
        client.script_flush()  # which scripts the submits below load tells which ones they ran
        plain = await sched.submit(Task("job"))  # priority 0: prio and rms are left out
        high = await sched.submit(Task("job", priority=5, max_retries=2, payload=b"x"))
        assert client.script_exists(lean, general) == [True, False]
        woken = [m["data"] for m in iter(lambda: hints.get_message(timeout=0.2), None) if m["type"] == "message"]
        assert woken == [b"default"], "the first task of an empty queue must wake the pool, only the first"
        keyed = await sched.submit(Task("job", priority=5, max_retries=2, payload=b"x", key="k"))
        assert client.script_exists(lean, general) == [True, True]
        client.script_flush()
        later = await sched.submit(Task("job", delay=60))
        assert client.script_exists(lean, general) == [False, True]
        assert (await sched.get(later)).status is TaskStatus.SCHEDULED
        with pytest.raises(DuplicateTaskError):
            await sched.submit(Task("job", id=plain))
        fields = {task_id: client.hgetall(f"{tag}:t:{task_id}") for task_id in (plain, high, keyed)}
        assert set(fields[high]) | {b"key", b"slow"} == set(fields[keyed])
        assert set(fields[plain]) | {b"prio", b"rms"} == set(fields[high])
        for name in (b"spec", b"pool", b"maxr", b"status", b"prio"):
            assert fields[high][name] == fields[keyed][name], name
        assert fields[plain][b"status"] == b"queued"
        infos = [await sched.get(task_id) for task_id in (plain, high, keyed)]
        assert [(i.priority, i.max_retries, i.payload) for i in infos] == [
            (0, sched.retry.max_retries, b""),
            (5, 2, b"x"),
            (5, 2, b"x"),
        ]
        rows = await sched.storage.claim("default", 3, 1, 5000, 0)
        assert [row[0] for row in rows] == [high, keyed, plain]  # priority first, then submission order
        assert (await sched.stats()).counts["running"] == 3
        hints.close()
    client.close()


async def test_a_single_submit_cancelled_on_its_way_still_returns_its_id(redis_url: str) -> None:
    """Once its bytes are sent, a submit learns what Redis did, even when cancelled meanwhile: the caller
    is told the id of a task that is stored, rather than a Cancelled that hides it."""
    sched = _scheduler(redis_url)
    blocker = DirectConnection(redis_url, name="test-blocker")
    async with sched:
        await sched.submit(Task("job"))  # connected: a submit cancelled while it connects sends nothing
        try:
            await blocker.eval_script(SLOW, [], [0])  # connected, and the script loaded
            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocker.eval_script, SLOW, [], [500])  # Redis is busy for 500 ms
                await trio.sleep(0.1)
                with trio.CancelScope() as scope:
                    scope.deadline = trio.current_time() + 0.05
                    task_id = await sched.submit(Task("job"))
                assert scope.cancel_called and not scope.cancelled_caught
                assert trio.current_time() >= scope.deadline
            assert (await sched.get(task_id)).status is TaskStatus.QUEUED
        finally:
            await blocker.aclose()
