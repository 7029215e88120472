"""Hand-off on Redis: an instance whose claim left its pool's queue empty stands idle, and a submit that
then finds the queue empty leases the task to it at once and publishes it on the instance's channel
(lua/submit.lua), so it starts without a claim's round trip. Whatever goes wrong, the task ends up in
the queue or running under a lease: never lost, never run twice."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
import trio

from skedulr import JobContext, RedisStorage, Scheduler, Task, TaskStatus
from skedulr.storage.base import ClaimRow


class _Worker:
    """A scheduler running in this test, with its own storage object (as another process would have),
    noting which tasks its claims returned and which jobs it ran."""

    def __init__(self, url: str, prefix: str, **options: object) -> None:
        self.storage = RedisStorage(url, prefix=prefix)
        self.sched = Scheduler(self.storage, **options)  # type: ignore[arg-type]
        self.claimed: list[str] = []
        self.ran: list[str] = []
        claim = self.storage.claim

        async def noting_claim(pool: str, max_tasks: int, owner: int, lease_ms: int, now_ms: int) -> list[ClaimRow]:
            rows = await claim(pool, max_tasks, owner, lease_ms, now_ms)
            self.claimed += [row[0] for row in rows]
            return rows

        self.storage.claim = noting_claim  # type: ignore[method-assign]

        async def job(ctx: JobContext) -> None:
            self.ran.append(ctx.task_id)
            if ctx.payload:
                await trio.sleep(float(ctx.payload))

        self.sched.register_job("job", job)

    @property
    def owner(self) -> str:
        return f"{self.sched._owner:08x}"


def _submitter(url: str, prefix: str) -> Scheduler:
    """A scheduler that only submits: its own pool is paused before it starts (it never stands idle)."""
    sched = Scheduler(RedisStorage(url, prefix=prefix))
    sched.register_job("job", lambda ctx: None)
    sched.pause()
    return sched


def _idle(url: str, prefix: str) -> dict[bytes, bytes]:
    """The instances standing idle in pool "default": owner id -> room and lease."""
    client = redis.Redis.from_url(url)
    standing = client.zrange(f"{{{prefix}}}:idle:default", 0, -1)
    rooms = client.hgetall(f"{{{prefix}}}:room:default")
    assert set(standing) == set(rooms), "the idle set and the rooms disagree"
    return rooms


@asynccontextmanager
async def _running(url: str, **options: object) -> AsyncIterator[tuple[_Worker, Scheduler]]:
    prefix = f"hand-{os.urandom(3).hex()}"
    worker = _Worker(url, prefix, **options)
    async with worker.sched, _submitter(url, prefix) as submitter:
        with trio.fail_after(5):
            while worker.owner.encode() not in _idle(url, prefix):  # its first claim found nothing
                await trio.sleep(0.01)
        yield worker, submitter


async def test_a_task_submitted_to_an_idle_instance_is_handed_to_it_without_a_claim(redis_url: str) -> None:
    async with _running(redis_url, max_workers=4) as (worker, submitter):
        ids = [await submitter.submit(Task("job")) for _ in range(3)]
        with trio.fail_after(5):
            await submitter.join(poll=0.01)
        assert sorted(worker.ran) == sorted(ids)
        assert worker.claimed == [], "a task was claimed, not handed off"
        for task_id in ids:
            info = await submitter.get(task_id)
            assert info.status is TaskStatus.SUCCEEDED and info.attempts == 1
        assert (await submitter.stats()).counts["succeeded"] == 3
        # done and idle again, with room for its 4 runners and 4 ahead (short jobs)
        assert _idle(redis_url, worker.storage.prefix)[worker.owner.encode()].split()[0] == b"8"


async def test_a_hand_off_waits_for_room_and_keeps_its_lease(redis_url: str) -> None:
    # one runner, two ahead at most: the third submit finds no room and is queued; a job longer than
    # its lease is renewed like a claimed one
    async with _running(redis_url, max_workers=1, lease_ttl=1.0) as (worker, submitter):
        first = await submitter.submit(Task("job", payload="1.5"))
        with trio.fail_after(5):
            while not worker.ran:
                await trio.sleep(0.01)
        queued = await submitter.submit(Task("job"))
        assert (await submitter.get(queued)).status is TaskStatus.QUEUED  # no room left: queued
        with trio.fail_after(10):
            await submitter.join(poll=0.01)
        assert worker.ran == [first, queued] and worker.claimed == [queued]
        info = await submitter.get(first)
        assert info.status is TaskStatus.SUCCEEDED and info.lease_losses == 0 and info.attempts == 1


async def test_an_instance_that_is_gone_gets_no_hand_off(redis_url: str) -> None:
    prefix = f"hand-{os.urandom(3).hex()}"
    client = redis.Redis.from_url(redis_url)
    client.zadd(f"{{{prefix}}}:idle:default", {"0badc0de": 2**50})  # it stood idle, then died
    client.hset(f"{{{prefix}}}:room:default", "0badc0de", "10 30000")
    async with _submitter(redis_url, prefix) as submitter:
        task_id = await submitter.submit(Task("job"))
        assert (await submitter.get(task_id)).status is TaskStatus.QUEUED
        assert (await submitter.stats()).counts["queued"] == 1
    assert _idle(redis_url, prefix) == {}, "nobody listens on its channel: it must leave the idle set"


async def test_a_paused_or_stopped_instance_gets_no_hand_off(redis_url: str) -> None:
    async with _running(redis_url) as (worker, submitter):
        worker.sched.pause()
        with trio.fail_after(5):
            while _idle(redis_url, worker.storage.prefix):
                await trio.sleep(0.01)
        task_id = await submitter.submit(Task("job"))
        assert (await submitter.get(task_id)).status is TaskStatus.QUEUED
        worker.sched.resume()
        with trio.fail_after(5):
            await submitter.join(poll=0.01)
        assert worker.claimed == [task_id]
        with trio.fail_after(5):
            while not _idle(redis_url, worker.storage.prefix):
                await trio.sleep(0.01)
        worker.sched.stop()
        with trio.fail_after(5):
            while worker.sched.is_running:
                await trio.sleep(0.01)
        assert _idle(redis_url, worker.storage.prefix) == {}
        later = await submitter.submit(Task("job"))
        assert (await submitter.get(later)).status is TaskStatus.QUEUED


async def test_a_hand_off_that_arrives_as_the_pool_is_paused_goes_back_to_the_queue(redis_url: str) -> None:
    async with _running(redis_url) as (worker, submitter):
        worker.sched._pools["default"].paused = True  # paused in the instant before the message arrives
        task_id = await submitter.submit(Task("job"))
        with trio.fail_after(5):
            while (await submitter.get(task_id)).status is not TaskStatus.QUEUED:
                await trio.sleep(0.01)
        info = await submitter.get(task_id)
        assert info.attempts == 0 and worker.ran == []
        counts = (await submitter.stats()).counts
        assert counts["queued"] == 1 and counts["running"] == 0
        worker.sched.resume("default")
        with trio.fail_after(5):
            await submitter.join(poll=0.01)
        assert worker.ran == [task_id]
