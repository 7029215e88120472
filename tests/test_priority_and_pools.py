"""Priorities, FIFO order, pools that never block each other, pause/resume, runtime resizing and the
rule that a pool never runs more jobs than its size."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from skedulr import ConstantBackoff, MemoryStorage, Middleware, NoRetry, Scheduler, Task, TaskStatus
from skedulr.errors import InvalidOptionError, StorageError, UnknownPoolError


class Gauge:
    """Counts jobs running at once (thread-safe, so sync jobs can use it too)."""

    def __init__(self) -> None:
        self.now = 0
        self.max = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Gauge:
        with self._lock:
            self.now += 1
            self.max = max(self.max, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


# ----- priority and order ----------------------------------------------------------------------------------


async def test_strict_priority_with_one_worker(sched, autojump_clock):
    s = sched(max_workers=1)
    order = []

    @s.job("p")
    async def p(ctx):
        order.append(ctx.json())
        await trio.sleep(1)

    priorities = [0, 5, -3, 1000, 7, -1000, 5, 42, 1, 0]
    s.pause()
    async with s:
        ids = [await s.submit(Task("p", i, priority=pr)) for i, pr in enumerate(priorities)]
        s.resume()
        for tid in ids:
            await s.wait(tid)
    expected = sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))
    assert order == expected


async def test_priority_applies_to_tasks_submitted_while_busy(sched, autojump_clock):
    s = sched(max_workers=1)
    order = []

    @s.job("p")
    async def p(ctx):
        order.append(ctx.text())
        await trio.sleep(5)

    async with s:
        first = await s.submit(Task("p", "first", priority=-10))
        await trio.sleep(1)  # "first" is running now
        await s.submit(Task("p", "low", priority=1))
        await s.submit(Task("p", "high", priority=9))
        await s.submit(Task("p", "mid", priority=5))
        await s.wait(first)
        await s.join()
    assert order == ["first", "high", "mid", "low"]


async def test_fifo_among_equal_priorities(sched, autojump_clock):
    s = sched(max_workers=1)
    order = []

    @s.job("f")
    async def f(ctx):
        order.append(ctx.json())

    s.pause()
    async with s:
        for i in range(20):
            await s.submit(Task("f", i, priority=3))
        await s.submit_many([Task("f", i, priority=3) for i in range(20, 30)])
        s.resume()
        await s.join()
    assert order == list(range(30))


# ----- pools do not block each other -------------------------------------------------------------------------


async def test_busy_pool_never_delays_another(sched, autojump_clock):
    s = sched(max_workers=2, pools={"slow": 1})
    started: dict[str, float] = {}

    @s.job("slow")
    async def slow(ctx):
        await trio.sleep(100)

    @s.job("fast")
    async def fast(ctx):
        started[ctx.text()] = trio.current_time()

    async with s:
        t0 = trio.current_time()
        for _ in range(5):
            await s.submit(Task("slow", pool="slow"))
        await trio.sleep(1)
        for i in range(4):
            await s.submit(Task("fast", f"f{i}"))
        await trio.sleep(1)
        assert sorted(started) == ["f0", "f1", "f2", "f3"]
        assert max(started.values()) - t0 < 1.5
        counts = (await s.stats()).pools["slow"].counts
        assert counts["running"] == 1
        assert counts["queued"] == 4
        for t in (await s.list_tasks(status="queued")).tasks:
            await s.cancel(t.id)
        for t in (await s.list_tasks(status="running")).tasks:
            await s.cancel(t.id)


async def test_paused_pool_never_delays_another(sched, autojump_clock):
    s = sched(pools={"a": 2, "b": 2})
    ran: list[str] = []

    @s.job("j")
    async def j(ctx):
        ran.append(ctx.pool)

    async with s:
        s.pause("a")
        a_ids = [await s.submit(Task("j", pool="a")) for _ in range(3)]
        b_ids = [await s.submit(Task("j", pool="b")) for _ in range(3)]
        for tid in b_ids:
            assert (await s.wait(tid, timeout=1)).status is TaskStatus.SUCCEEDED
        await trio.sleep(30)
        assert ran == ["b", "b", "b"]
        assert {(await s.get(t)).status for t in a_ids} == {TaskStatus.QUEUED}
        s.resume("a")
        for tid in a_ids:
            assert (await s.wait(tid, timeout=1)).status is TaskStatus.SUCCEEDED
        assert ran.count("a") == 3
        with pytest.raises(UnknownPoolError):
            s.pause("nope")


async def test_global_pause_and_resume(sched, autojump_clock):
    s = sched(pools={"other": 1})
    release = trio.Event()
    ran: list[str] = []

    @s.job("j")
    async def j(ctx):
        ran.append(ctx.text())
        if ctx.text() == "running":
            await release.wait()

    async with s:
        running = await s.submit(Task("j", "running"))
        await trio.sleep(0.5)
        s.pause()
        assert (await s.stats()).paused is True
        q1 = await s.submit(Task("j", "q1"))
        q2 = await s.submit(Task("j", "q2", pool="other"))
        release.set()  # running jobs go on while paused
        assert (await s.wait(running, timeout=1)).status is TaskStatus.SUCCEEDED
        await trio.sleep(60)
        assert ran == ["running"]
        assert (await s.get(q1)).status is TaskStatus.QUEUED
        assert (await s.get(q2)).status is TaskStatus.QUEUED
        s.resume()
        assert (await s.stats()).paused is False
        await s.wait(q1, timeout=1)
        await s.wait(q2, timeout=1)
        assert sorted(ran) == ["q1", "q2", "running"]


# ----- resizing ------------------------------------------------------------------------------------------------


async def test_scale_up_takes_effect_while_tasks_run(sched, autojump_clock):
    s = sched(max_workers=1)
    starts: list[float] = []

    @s.job("w")
    async def w(ctx):
        starts.append(trio.current_time())
        await trio.sleep(10)

    async with s:
        t0 = trio.current_time()
        ids = [await s.submit(Task("w")) for _ in range(4)]
        await trio.sleep(1)
        assert len(starts) == 1
        s.scale_pool("default", 4)
        assert s.pools["default"] == 4
        await trio.sleep(0.5)
        assert len(starts) == 4
        assert all(st - t0 < 1.6 for st in starts)
        for tid in ids:
            await s.wait(tid)
        assert trio.current_time() - t0 == pytest.approx(11, abs=0.7)


async def test_scale_down_never_cuts_running_jobs_and_is_then_respected(sched, autojump_clock):
    s = sched(max_workers=4)
    gauge = Gauge()
    cancelled: list[str] = []
    after_scale: list[int] = []
    scaled = False

    @s.job("w")
    async def w(ctx):
        with gauge:
            if scaled:
                after_scale.append(gauge.now)
            try:
                await trio.sleep(10)
            except trio.Cancelled:
                cancelled.append(ctx.task_id)
                raise

    async with s:
        t0 = trio.current_time()
        ids = [await s.submit(Task("w")) for _ in range(8)]
        await trio.sleep(1)
        assert gauge.now == 4
        first = [t.id for t in (await s.list_tasks(status="running")).tasks]
        s.scale_pool("default", 2)
        scaled = True
        await trio.sleep(1)
        assert gauge.now == 4  # nothing cut short
        for tid in ids:
            info = await s.wait(tid)
            assert info.status is TaskStatus.SUCCEEDED
            assert info.attempts == 1
        # the first four end at 10; the other four then run two at a time: 10-20, 20-30
        assert trio.current_time() - t0 == pytest.approx(30, abs=1)
    assert cancelled == []
    assert len(first) == 4
    assert len(after_scale) == 4
    assert max(after_scale) <= 2


async def test_scale_to_zero_pauses_the_pool(sched, autojump_clock):
    s = sched(max_workers=2)
    ran: list[str] = []

    @s.job("j")
    async def j(ctx):
        ran.append(ctx.task_id)

    async with s:
        s.scale_pool("default", 0)
        tid = await s.submit(Task("j"))
        await trio.sleep(60)
        assert ran == []
        assert (await s.get(tid)).status is TaskStatus.QUEUED
        s.scale_pool("default", 2)
        assert (await s.wait(tid, timeout=1)).status is TaskStatus.SUCCEEDED
        assert ran == [tid]


async def test_scale_pool_creates_a_new_pool(sched, autojump_clock):
    s = sched()
    gauge = Gauge()
    pools_seen: list[str] = []

    @s.job("j")
    async def j(ctx):
        with gauge:
            pools_seen.append(ctx.pool)
            await trio.sleep(5)

    async with s:
        with pytest.raises(UnknownPoolError):
            await s.submit(Task("j", pool="extra"))
        s.scale_pool("extra", 3)
        assert s.pools == {"default": 10, "extra": 3}
        ids = [await s.submit(Task("j", pool="extra")) for _ in range(6)]
        for tid in ids:
            assert (await s.wait(tid, timeout=20)).status is TaskStatus.SUCCEEDED
        assert pools_seen == ["extra"] * 6
        assert gauge.max == 3
        with pytest.raises(InvalidOptionError):
            s.scale_pool("extra", -1)


async def test_pool_created_before_start_runs_after_start(sched, autojump_clock):
    s = sched()

    @s.job("j")
    async def j(ctx):
        return ctx.pool

    s.scale_pool("late", 1)
    async with s:
        tid = await s.submit(Task("j", pool="late"))
        assert (await s.wait(tid, timeout=5)).result == "late"


# ----- a pool never runs more than its size ---------------------------------------------------------------------


async def test_pool_size_is_never_exceeded(sched, autojump_clock):
    s = sched(max_workers=3, pools={"two": 2})
    gauges = {"default": Gauge(), "two": Gauge()}

    @s.job("w")
    async def w(ctx):
        with gauges[ctx.pool]:
            await trio.sleep(ctx.json())

    async with s:
        for i in range(30):
            await s.submit(Task("w", (i % 7) / 3, pool="default" if i % 2 else "two"))
        await s.join()
    assert gauges["default"].max == 3
    assert gauges["two"].max == 2


async def test_pool_size_is_never_exceeded_when_jobs_time_out(sched, autojump_clock):
    """Jobs that outlive their timeout (they shield themselves from the cancel for a while) keep their
    slot until they actually return."""
    s = sched(max_workers=2, retry=ConstantBackoff(max_retries=1, delay=0.5))
    gauge = Gauge()

    @s.job("stubborn")
    async def stubborn(ctx):
        with gauge:
            with trio.CancelScope(shield=True):
                await trio.sleep(3)
            await trio.sleep(100)

    async with s:
        ids = [await s.submit(Task("stubborn", timeout=1)) for _ in range(6)]
        for tid in ids:
            info = await s.wait(tid)
            assert info.status is TaskStatus.DEAD
            assert info.attempts == 2
            assert info.error.startswith("JobTimeoutError")
    assert gauge.max == 2


async def test_sync_jobs_count_against_the_pool_size(sched):
    s = sched(max_workers=2)
    gauge = Gauge()

    @s.job("sync")
    def sync_job(ctx):
        with gauge:
            time.sleep(0.03)

    async with s:
        ids = [await s.submit(Task("sync")) for _ in range(8)]
        for tid in ids:
            assert (await s.wait(tid, timeout=5)).status is TaskStatus.SUCCEEDED
    assert gauge.max == 2


async def test_timed_out_sync_jobs_keep_their_slot(sched):
    s = sched(max_workers=2, retry=NoRetry())
    gauge = Gauge()

    @s.job("sync")
    def sync_job(ctx):
        with gauge:
            time.sleep(0.15)  # ignores ctx.cancelled: the thread cannot be interrupted

    async with s:
        t0 = time.monotonic()
        ids = [await s.submit(Task("sync", timeout=0.02)) for _ in range(4)]
        for tid in ids:
            info = await s.wait(tid, timeout=5)
            assert info.status is TaskStatus.DEAD
            assert info.error.startswith("JobTimeoutError")
        elapsed = time.monotonic() - t0
    assert gauge.max == 2
    assert elapsed >= 0.29  # two rounds of two threads


# ----- claiming ahead ----------------------------------------------------------------------------------------


async def test_a_pool_of_short_jobs_claims_ahead_and_one_of_long_jobs_does_not(sched, autojump_clock):
    s = sched(max_workers=2)
    s.scale_pool("slow", 2)
    held = {"default": 0, "slow": 0}  # most tasks a pool held at once: running plus claimed ahead

    async def note(pool: str) -> None:
        stats = (await s.stats()).pools[pool]
        held[pool] = max(held[pool], stats.running + stats.prefetched)

    @s.job("short")
    async def short(ctx):
        await note("default")
        await trio.sleep(0.01)

    @s.job("long")
    async def long(ctx):
        await note("slow")
        await trio.sleep(5)

    async with s:
        ids = [await s.submit(Task("short")) for _ in range(30)]
        ids += [await s.submit(Task("long", pool="slow")) for _ in range(8)]
        for task_id in ids:
            await s.wait(task_id)
    assert 2 < held["default"] <= 4, held  # claimed beyond its 2 runners, at most its size ahead
    assert held["slow"] <= 2, held


async def test_a_prefetched_task_that_is_cancelled_never_runs(sched, autojump_clock):
    s = sched(max_workers=1)
    ran = []

    @s.job("short")
    async def short(ctx):
        ran.append(ctx.payload.decode())
        await trio.sleep(0.3 if ctx.payload == b"blocker" else 0.01)

    async with s:
        for task_id in [await s.submit(Task("short", "warm-up")) for _ in range(3)]:
            await s.wait(task_id)  # the pool now knows its jobs are short
        blocker = await s.submit(Task("short", "blocker"))
        victim = await s.submit(Task("short", "victim"))
        while (await s.stats()).pools["default"].prefetched == 0:
            await trio.sleep(0.001)
        assert await s.get(blocker) and "victim" not in ran
        assert await s.cancel(victim)
        assert (await s.stats()).pools["default"].prefetched == 0
        await s.wait(blocker)
        await trio.sleep(1)
    assert "victim" not in ran
    assert (await s.get(victim)).status is TaskStatus.CANCELLED


async def test_a_long_job_sends_the_tasks_claimed_behind_it_back(sched, autojump_clock):
    s = sched(max_workers=1)

    @s.job("sleep")
    async def sleep(ctx):
        await trio.sleep(float(ctx.payload))

    async with s:
        for task_id in [await s.submit(Task("sleep", "0.01")) for _ in range(3)]:
            await s.wait(task_id)  # short jobs: the pool claims ahead
        blocker = await s.submit(Task("sleep", "5"))
        follower = await s.submit(Task("sleep", "0.01"))
        while (await s.stats()).pools["default"].prefetched == 0:
            await trio.sleep(0.001)
        await trio.sleep(1.5)  # the blocker now counts as long: the follower goes back to the queue
        assert (await s.stats()).pools["default"].prefetched == 0
        assert (await s.get(follower)).status is TaskStatus.QUEUED
        assert (await s.get(blocker)).status is TaskStatus.RUNNING
        assert (await s.wait(follower, timeout=10)).status is TaskStatus.SUCCEEDED


async def test_a_prefetched_task_whose_lease_went_unconfirmed_is_handed_back_not_started(autojump_clock):
    """While heartbeats fail (an outage), a task claimed ahead may have lost its lease and be running
    elsewhere: once its lease was last confirmed over half a lease ago, it goes back instead of starting."""
    s = Scheduler(MemoryStorage(), max_workers=1, lease_ttl=1.0)
    claims: list[str] = []
    claim = s._claim

    async def counting_claim(pool, free):  # type: ignore[no-untyped-def]
        rows, full = await claim(pool, free)
        claims.extend(row[4].decode() for row in rows)
        return rows, full

    s._claim = counting_claim  # type: ignore[method-assign]

    @s.job("sleep")
    async def sleep(ctx):
        await trio.sleep(float(ctx.payload))

    async def failing_renew(*args):  # type: ignore[no-untyped-def]
        raise StorageError("Redis at redis://x unreachable (test)")

    async with s:
        for task_id in [await s.submit(Task("sleep", "0.01")) for _ in range(3)]:
            await s.wait(task_id)
        s._storage.renew = failing_renew  # type: ignore[method-assign]
        # shorter than a second: the pool goes on claiming ahead; and shorter than the lease guard's 0.9 lease
        await s.submit(Task("sleep", "0.85"))
        follower = await s.submit(Task("sleep", "0.02"))
        assert (await s.wait(follower, timeout=10)).status is TaskStatus.SUCCEEDED
    assert claims.count("0.02") == 2, claims  # claimed ahead, handed back at 0.85 s unstarted, claimed again


async def test_a_wake_used_up_while_the_pool_was_full_still_leads_to_a_claim(sched, autojump_clock):
    """The outcome's wake comes while the pool is still full (middleware that yields holds the runner), so
    the fetcher cannot claim then; the runner that frees up must wake it, even though the last claim had
    found the queue empty: the DAG child the outcome made ready runs."""

    class Yielding(Middleware):
        async def after_attempt(self, ctx, outcome):  # type: ignore[no-untyped-def]
            await trio.sleep(0.01)  # e.g. an async metrics write

    s = sched(max_workers=2)
    s.use(Yielding())

    @s.job("j")
    async def j(ctx):
        await trio.sleep(0.5)

    async with s:
        await s.submit(Task("j", id="parent"))
        child = await s.submit(Task("j", id="child", on_success="parent"))
        await trio.sleep(0.1)
        s.scale_pool("default", 1)  # full with the parent running
        assert (await s.wait(child, timeout=10)).status is TaskStatus.SUCCEEDED
