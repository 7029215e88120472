"""Hand-off on Redis: an instance whose claim left its pool's queue empty stands idle, and a submit that
then finds the queue empty leases the task to it at once and publishes it on the instance's channel
(lua/_hand_off.lua), so it starts without a claim's round trip. Whatever goes wrong, the task ends up in
the queue or running under a lease: never lost, never run twice."""

from __future__ import annotations

import collections
import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
import trio

from redis_fixtures import LEASE_BATCH
from skedulr import JobContext, RedisStorage, Scheduler, Task, TaskStatus
from skedulr.storage import redis as redis_storage
from skedulr.storage.base import ClaimRow


class _Worker:
    """A scheduler running in this test, with its own storage object (as another process would have),
    noting which tasks its claims returned and which jobs it ran."""

    def __init__(self, url: str, prefix: str, **options: object) -> None:
        self.storage = RedisStorage(url, prefix=prefix)
        self.sched = Scheduler(self.storage, **options)  # type: ignore[arg-type]
        self.claims = 0  # calls of the storage's claim
        self.claimed: list[str] = []  # as the storage's claims returned them (handed ones come again)
        self.handed: list[str] = []  # as their message brought them
        self.ran: list[str] = []
        self.broken = False  # taking a hand-off raises, as a bug would
        on_hand = self.sched._on_hand

        def noting_on_hand(pool: str, rows: list[ClaimRow], lease_until_ms: int | None) -> None:
            if self.broken:
                raise RuntimeError("a bug while taking a hand-off")
            self.handed += [row[0] for row in rows]
            on_hand(pool, rows, lease_until_ms)

        self.sched._on_hand = noting_on_hand  # type: ignore[method-assign]
        claim = self.storage.claim

        async def noting_claim(
            pool: str, max_tasks: int, owner: int, lease_ms: int, now_ms: int, *, idle: tuple[str, int] | None = None
        ) -> list[ClaimRow]:
            rows = await claim(pool, max_tasks, owner, lease_ms, now_ms, idle=idle)
            self.claims += 1
            self.claimed += [row[0] for row in rows]
            return rows

        self.storage.claim = noting_claim  # type: ignore[method-assign]

        async def job(ctx: JobContext) -> None:
            self.ran.append(ctx.task_id)
            if ctx.payload:
                await trio.sleep(float(ctx.payload))

        self.sched.register_job("job", job)

    @property
    def hand_id(self) -> str:
        return self.sched._hand_id


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
            while worker.hand_id.encode() not in _idle(url, prefix):  # its first claim found nothing
                await trio.sleep(0.01)
        yield worker, submitter


async def test_a_task_submitted_to_an_idle_instance_is_handed_to_it_without_a_claim(redis_url: str) -> None:
    async with _running(redis_url, max_workers=4) as (worker, submitter):
        ids = [await submitter.submit(Task("job")) for _ in range(3)]
        with trio.fail_after(5):
            await submitter.join(poll=0.01)
        assert sorted(worker.ran) == sorted(ids)
        assert sorted(worker.handed) == sorted(ids), "a task was claimed, not handed off"
        for task_id in ids:
            info = await submitter.get(task_id)
            assert info.status is TaskStatus.SUCCEEDED and info.attempts == 1
        assert (await submitter.stats()).counts["succeeded"] == 3
        # done and idle again, with room for its 4 runners (not for tasks claimed ahead: a hand-off must not
        # wait behind a long job while another instance has room)
        with trio.fail_after(5):
            while _idle(redis_url, worker.storage.prefix).get(worker.hand_id.encode(), b"").split()[:1] != [b"4"]:
                await trio.sleep(0.01)


async def test_a_bulk_submit_is_handed_off_whole_in_queue_order_under_one_lease(redis_url: str) -> None:
    # lua/submit.lua's hand-off (a single task takes lua/submit_one.lua's): both share lua/_hand_off.lua
    async with _running(redis_url, max_workers=4) as (worker, submitter):
        tasks = [Task("job", payload="0.2"), Task("job", payload="0.2", priority=3), Task("job", payload="0.2")]
        ids = await submitter.submit_many(tasks)
        room = _idle(redis_url, worker.storage.prefix).get(worker.hand_id.encode(), b"")
        assert room.split()[:1] == [b"1"], f"room for 4, 3 handed: {room!r}"
        with trio.fail_after(5):
            await submitter.join(poll=0.01)
        assert worker.handed == [ids[1], ids[0], ids[2]] and worker.ran == worker.handed
        client = redis.Redis.from_url(redis_url)
        tokens = [int(client.hget(f"{worker.storage.tag}:t:{i}", "tok") or 0) for i in worker.handed]
        batch = tokens[0] // LEASE_BATCH
        assert tokens == [batch * LEASE_BATCH + k for k in (1, 2, 3)], "not one batch, in queue order"
        assert [(await submitter.get(i)).attempts for i in ids] == [1, 1, 1]


async def test_an_idle_instance_claims_once_per_handed_job(redis_url: str) -> None:
    """At low load a job handed off is followed by one claim (once its outcome is recorded), not also one
    from the runner it freed: every claim costs Redis a script call, about 50 µs when it has been idle."""
    async with _running(redis_url, max_workers=4) as (worker, submitter):
        before = worker.claims
        for _ in range(10):
            await submitter.wait(await submitter.submit(Task("job")), timeout=5)
            await trio.sleep(0.05)
        claims = worker.claims - before
    assert len(worker.handed) == 10
    assert claims <= 12, claims  # (2 per job before)


async def test_a_hand_off_waits_for_room_and_keeps_its_lease(redis_url: str) -> None:
    # one runner, busy: the second submit finds no room and is queued; a job longer than its lease is
    # renewed like a claimed one
    async with _running(redis_url, max_workers=1, lease_ttl=1.0) as (worker, submitter):
        first = await submitter.submit(Task("job", payload="1.5"))
        with trio.fail_after(5):
            while not worker.ran:
                await trio.sleep(0.01)
        queued = await submitter.submit(Task("job"))
        assert (await submitter.get(queued)).status is TaskStatus.QUEUED  # no room left: queued
        with trio.fail_after(10):
            await submitter.join(poll=0.01)
        assert worker.ran == [first, queued] and worker.handed == [first] and queued in worker.claimed
        info = await submitter.get(first)
        assert info.status is TaskStatus.SUCCEEDED and info.lease_losses == 0 and info.attempts == 1


async def test_an_instance_that_is_gone_gets_no_hand_off(redis_url: str) -> None:
    """Not even while a pattern subscriber (a monitor, say) would receive what is published to its channel."""
    prefix = f"hand-{os.urandom(3).hex()}"
    client = redis.Redis.from_url(redis_url)
    client.zadd(f"{{{prefix}}}:idle:default", {"00000000deadbeef": 2**50})  # it stood idle, then died
    client.hset(f"{{{prefix}}}:room:default", "00000000deadbeef", "10 30000")
    monitor = client.pubsub()
    monitor.psubscribe("*")
    assert monitor.get_message(timeout=1.0) is not None  # the subscription is confirmed
    try:
        async with _submitter(redis_url, prefix) as submitter:
            task_id = await submitter.submit(Task("job"))
            assert (await submitter.get(task_id)).status is TaskStatus.QUEUED
            assert (await submitter.stats()).counts["queued"] == 1
    finally:
        monitor.close()
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


async def test_a_hand_off_whose_message_is_lost_comes_with_the_next_claim(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(data: bytes) -> tuple[str, int, list[ClaimRow]]:
        raise ValueError("as if the subscription had dropped it")

    monkeypatch.setattr(redis_storage, "_handed", lost)
    async with _running(redis_url, max_workers=2) as (worker, submitter):
        task_id = await submitter.submit(Task("job"))
        assert (await submitter.get(task_id)).status is TaskStatus.RUNNING  # handed: leased to the worker
        with trio.fail_after(5):  # its fetcher looks again within its poll interval (1 s)
            await submitter.join(poll=0.01)
        info = await submitter.get(task_id)
        assert worker.ran == [task_id] and worker.handed == [] and worker.claimed == [task_id]
        assert info.attempts == 1 and info.lease_losses == 0


async def test_a_hand_off_read_late_is_handed_back_not_started(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    handed = redis_storage._handed

    def read_late(data: bytes) -> tuple[str, int, list[ClaimRow]]:
        time.sleep(0.7)  # the worker's loop stalls with the message unread, past half its 1 s lease
        return handed(data)

    monkeypatch.setattr(redis_storage, "_handed", read_late)
    async with _running(redis_url, lease_ttl=1.0) as (worker, submitter):
        hand_back = worker.storage.hand_back_many
        handed_back: list[str] = []

        async def noting_hand_back(items: list[tuple[Any, int]], now_ms: int) -> int:
            handed_back.extend(str(handle) for handle, _token in items)
            return await hand_back(items, now_ms)

        worker.storage.hand_back_many = noting_hand_back  # type: ignore[method-assign]
        task_id = await submitter.submit(Task("job"))
        with trio.fail_after(10):
            await submitter.join(poll=0.01)
        assert handed_back == [task_id], "started although its lease may have run out meanwhile"
        assert worker.ran == [task_id] and (await submitter.get(task_id)).attempts == 1


async def test_each_run_stands_idle_under_an_id_of_its_own(redis_url: str) -> None:
    # a scheduler forked with its process must not share another's hand-offs: the id is drawn per run
    prefix = f"hand-{os.urandom(3).hex()}"
    worker = _Worker(redis_url, prefix)
    ids = []
    for _ in range(2):
        async with worker.sched:
            ids.append(worker.hand_id)
            assert len(ids[-1]) == 16
    assert ids[0] != ids[1]
    assert _idle(redis_url, prefix) == {}  # and each left when it stopped


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_under_churn_every_task_runs_exactly_once(redis_url: str, seed: int) -> None:
    # Three schedulers (two sharing one storage object) take single submits, groups, priorities, delays,
    # keys and parents while they pause, resume and resize at random: hand-offs, hand-backs and claims
    # mix, and still every task runs once and the counts add up.
    prefix = f"churn-{os.urandom(3).hex()}"
    shared = RedisStorage(redis_url, prefix=prefix)
    scheds = [
        Scheduler(shared, max_workers=3, lease_ttl=5),
        Scheduler(shared, max_workers=2, lease_ttl=5),
        Scheduler(RedisStorage(redis_url, prefix=prefix), max_workers=4, lease_ttl=5),
    ]
    runs: collections.Counter[str] = collections.Counter()
    handed = 0

    async def job(ctx: JobContext) -> None:
        runs[ctx.task_id] += 1
        if ctx.payload:
            await trio.sleep(float(ctx.payload))

    for sched in scheds:
        sched.register_job("job", job)
        on_hand = sched._on_hand

        def counting(pool: str, rows: list[ClaimRow], lease_until_ms: int | None, on_hand: Any = on_hand) -> None:
            nonlocal handed
            handed += len(rows)
            on_hand(pool, rows, lease_until_ms)

        sched._on_hand = counting  # type: ignore[method-assign]
    rnd = random.Random(seed)
    ids: list[str] = []
    async with scheds[0], scheds[1], scheds[2]:

        async def single(i: int) -> None:
            await trio.sleep(rnd.random() * 2)
            payload, priority = rnd.choice(["", "", "0.01", "0.2"]), rnd.choice([0, 0, 5])
            key = f"k{i % 50}" if rnd.random() < 0.2 else None
            delay = 0.3 if rnd.random() < 0.1 else None
            task = Task("job", id=f"s{i}", payload=payload, priority=priority, key=key, delay=delay)
            ids.append(await scheds[rnd.randrange(3)].submit(task))

        async def group(g: int) -> None:
            await trio.sleep(rnd.random() * 2)
            tasks = [
                Task("job", id=f"g{g}-{k}", payload=rnd.choice(["", "0.01"])) for k in range(rnd.choice([1, 5, 30]))
            ]
            if rnd.random() < 0.3:
                tasks.append(Task("job", id=f"g{g}-child", on_complete=tasks[0].id))
            ids.extend(await scheds[rnd.randrange(3)].submit_many(tasks))

        async def churn() -> None:
            for _ in range(20):
                await trio.sleep(0.1)
                sched, what = scheds[rnd.randrange(3)], rnd.random()
                if what < 0.3:
                    sched.pause()
                    await trio.sleep(0.05)
                    sched.resume()
                elif what < 0.6:
                    sched.scale_pool("default", rnd.choice([0, 1, 3, 6]))
            for sched, size in zip(scheds, (3, 2, 4), strict=True):
                sched.scale_pool("default", size)

        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(single, i)
            for g in range(40):
                nursery.start_soon(group, g)
            nursery.start_soon(churn)
        with trio.fail_after(30):
            for task_id in set(ids):  # (join does not wait for a delayed task still scheduled)
                await scheds[0].wait(task_id)
            await scheds[0].join(poll=0.05)
        counts = (await scheds[0].stats()).counts
    assert handed > 0, "no hand-off happened: the test did not test it"
    assert {task_id: n for task_id, n in runs.items() if n != 1} == {}
    assert set(runs) == set(ids)
    assert counts["succeeded"] == len(set(ids)) and counts["running"] == counts["queued"] == 0
    assert _idle(redis_url, prefix) == {}


async def test_claims_sweep_away_instances_that_stood_idle_and_vanished(redis_url: str) -> None:
    prefix = f"hand-{os.urandom(3).hex()}"
    client = redis.Redis.from_url(redis_url)
    for i in range(5):  # instances that crashed while standing idle, long ago
        client.zadd(f"{{{prefix}}}:idle:default", {f"{i:016x}": 1})
        client.hset(f"{{{prefix}}}:room:default", f"{i:016x}", "10 30000")
        client.rpush(f"{{{prefix}}}:handed:default:{i:016x}", "gone 1")
    worker = _Worker(redis_url, prefix)
    async with worker.sched:
        with trio.fail_after(5):
            while len(_idle(redis_url, prefix)) != 1:  # only itself, once its first claim ran
                await trio.sleep(0.01)
    assert client.keys(f"{{{prefix}}}:handed:*") == []


async def test_a_failure_taking_a_hand_off_is_logged_and_the_worker_goes_on(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with _running(redis_url, lease_ttl=1.0) as (worker, submitter):
        worker.broken = True
        lost = await submitter.submit(Task("job"))
        with trio.fail_after(5):
            while "could not take 1 handed task" not in caplog.text:
                await trio.sleep(0.01)
        worker.broken = False
        with trio.fail_after(10):  # the subscription still works, and the lost one comes back (its next claim)
            await submitter.wait(lost)
            later = await submitter.submit(Task("job"))
            await submitter.wait(later)
        assert worker.ran.count(lost) == 1 and later in worker.handed


async def test_a_message_on_the_hand_channel_that_is_not_a_hand_off_is_logged_and_ignored(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbled or cut-short messages (read by `_core.parse_hand_off`) start nothing; the worker goes on
    taking hand-offs."""
    async with _running(redis_url, max_workers=2) as (worker, submitter):
        channel = f"{{{worker.storage.prefix}}}:hand:{worker.hand_id}"
        client = redis.Redis.from_url(redis_url)
        for garbled in (b"not a hand-off", b"default 12\nt1 5 99\njob 0 0\ncut short", b"\xff\xfe 1\n"):
            assert client.publish(channel, garbled) == 1
        client.close()
        with trio.fail_after(5):
            while caplog.text.count("ignored a hand-off message that is not one") < 3:
                await trio.sleep(0.01)
        task_id = await submitter.submit(Task("job"))
        with trio.fail_after(5):
            await submitter.wait(task_id)
        assert worker.ran == [task_id] and worker.handed == [task_id]


async def test_a_task_queued_behind_a_running_hand_off_is_claimed_ahead(redis_url: str) -> None:
    """A claim returns first the tasks handed to the instance that it still holds (their message may have
    been lost); those it has seen already fill the claim's room all the same. The fetcher then claims
    again, so a task queued meanwhile is claimed ahead, not left waiting for the running job to end."""
    async with _running(redis_url, max_workers=1) as (worker, submitter):
        first = await submitter.submit(Task("job"))  # a short job: the pool now claims ahead
        with trio.fail_after(5):
            await submitter.wait(first)
            while worker.hand_id.encode() not in _idle(redis_url, worker.storage.prefix):
                await trio.sleep(0.01)
        long = await submitter.submit(Task("job", payload="0.6"))
        with trio.fail_after(5):
            while long not in worker.ran:  # handed, and started by its message
                await trio.sleep(0.005)
        follower = await submitter.submit(Task("job"))  # queued (no room), with a wake-up hint
        with trio.fail_after(0.4):  # well before the long job ends
            while (await worker.sched.stats()).pools["default"].prefetched == 0:
                await trio.sleep(0.005)
        with trio.fail_after(5):
            await submitter.wait(follower)
        assert worker.ran == [first, long, follower] and worker.handed == [first, long]


async def test_no_hand_off_under_a_test_clock(redis_url: str) -> None:
    # use_client_clock is for tests that drive time: a test clock jumps when every task waits, and could
    # jump while a hand-off message is on its way, so that mode keeps to hints and claims
    prefix = f"hand-{os.urandom(3).hex()}"
    worker = _Worker(redis_url, prefix)
    worker.storage.use_client_clock = True
    async with worker.sched, _submitter(redis_url, prefix) as submitter:
        with trio.fail_after(5):
            while worker.claims == 0:  # its first claim found the queue empty
                await trio.sleep(0.01)
        assert _idle(redis_url, prefix) == {}
        task_id = await submitter.submit(Task("job"))
        with trio.fail_after(5):
            await submitter.wait(task_id)
        assert worker.handed == [] and worker.claimed == [task_id]
