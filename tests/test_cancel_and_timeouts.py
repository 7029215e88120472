"""Cancelling tasks in every state, and attempt timeouts for async and sync jobs."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from skedulr import ConstantBackoff, MemoryStorage, NoRetry, Scheduler, Task, TaskStatus
from skedulr.errors import StorageError, TaskNotFoundError


async def test_cancel_queued_task_never_runs(sched, autojump_clock):
    s = sched()
    ran: list[str] = []

    @s.job("j")
    async def j(ctx):
        ran.append(ctx.task_id)

    async with s:
        s.pause()
        tid = await s.submit(Task("j"))
        keep = await s.submit(Task("j"))
        assert await s.cancel(tid) is True
        info = await s.get(tid)
        assert info.status is TaskStatus.CANCELLED
        assert info.finished_at is not None
        s.resume()
        await s.wait(keep)
        await trio.sleep(10)
    assert ran == [keep]


async def test_cancel_scheduled_task_never_runs(sched, autojump_clock):
    s = sched()
    ran: list[str] = []

    @s.job("j")
    async def j(ctx):
        ran.append(ctx.task_id)

    async with s:
        tid = await s.submit(Task("j", delay=10))
        assert (await s.get(tid)).status is TaskStatus.SCHEDULED
        await trio.sleep(5)
        assert await s.cancel(tid) is True
        await trio.sleep(20)
        assert (await s.get(tid)).status is TaskStatus.CANCELLED
    assert ran == []


async def test_cancel_waiting_task_never_runs(sched, autojump_clock):
    s = sched()
    ran: list[str] = []

    @s.job("j")
    async def j(ctx):
        ran.append(ctx.text())
        await trio.sleep(3)

    async with s:
        parent = await s.submit(Task("j", "parent"))
        child = await s.submit(Task("j", "child", on_success=parent))
        assert await s.cancel(child) is True
        await s.wait(parent)
        await trio.sleep(10)
        assert (await s.get(child)).status is TaskStatus.CANCELLED
    assert ran == ["parent"]


async def test_cancel_retrying_task_never_runs_again(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=5, delay=10))
    attempts: list[int] = []

    @s.job("j")
    async def j(ctx):
        attempts.append(ctx.attempt)
        raise ValueError("x")

    async with s:
        tid = await s.submit(Task("j"))
        await trio.sleep(2)
        assert (await s.get(tid)).status is TaskStatus.RETRYING
        assert await s.cancel(tid) is True
        await trio.sleep(60)
        info = await s.get(tid)
    assert info.status is TaskStatus.CANCELLED
    assert attempts == [1]


async def test_cancel_running_async_job_promptly(sched, autojump_clock):
    s = sched(max_workers=1)
    observed: list[float] = []
    ran: list[str] = []

    @s.job("long")
    async def long(ctx):
        try:
            await trio.sleep(1000)
        except trio.Cancelled:
            observed.append(trio.current_time())
            raise

    @s.job("next")
    async def next_job(ctx):
        ran.append(ctx.task_id)

    async with s:
        tid = await s.submit(Task("long"))
        after = await s.submit(Task("next"))
        await trio.sleep(5)
        assert (await s.get(tid)).status is TaskStatus.RUNNING
        t_cancel = trio.current_time()
        assert await s.cancel(tid) is True
        info = await s.wait(tid)
        assert info.status is TaskStatus.CANCELLED
        await trio.sleep(0.1)
        assert observed and observed[0] - t_cancel < 0.05
        # the slot is free again: the next task runs at once
        assert (await s.wait(after, timeout=1)).status is TaskStatus.SUCCEEDED
        assert (await s.stats()).failed == 0
    assert ran == [after]
    assert (await s.get(tid)).attempts == 1


async def test_sync_job_sees_ctx_cancelled(sched):
    s = sched()
    saw = threading.Event()
    started = threading.Event()
    done = threading.Event()

    @s.job("sync")
    def sync_job(ctx):
        started.set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if ctx.cancelled:
                saw.set()
                break
            time.sleep(0.002)
        done.set()

    async with s:
        tid = await s.submit(Task("sync"))
        assert await trio.to_thread.run_sync(started.wait, 2)
        assert await s.cancel(tid) is True
        assert await trio.to_thread.run_sync(done.wait, 3)
        assert saw.is_set()
        assert (await s.get(tid)).status is TaskStatus.CANCELLED


async def test_async_timeout_is_recorded_and_retried(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=1, delay=2))
    starts: list[float] = []
    cancelled_at: list[float] = []

    @s.job("slow")
    async def slow(ctx):
        starts.append(trio.current_time())
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise

    async with s:
        tid = await s.submit(Task("slow", timeout=1.5))
        await trio.sleep(2)
        info = await s.get(tid)
        assert info.status is TaskStatus.RETRYING
        assert info.error.startswith("JobTimeoutError")
        final = await s.wait(tid)
    assert final.status is TaskStatus.DEAD
    assert final.attempts == 2
    assert final.error.startswith("JobTimeoutError")
    assert "1.5" in final.error
    assert [c - st for st, c in zip(starts, cancelled_at, strict=True)] == pytest.approx([1.5, 1.5], abs=0.01)
    assert starts[1] - starts[0] == pytest.approx(3.5, abs=0.01)  # timeout, then the backoff


async def test_timeout_sources_job_and_default(sched, autojump_clock):
    s = sched(default_timeout=4, retry=NoRetry())
    durations: dict[str, float] = {}

    async def sleeper(ctx):
        t0 = trio.current_time()
        try:
            await trio.sleep(100)
        finally:
            durations[ctx.name] = trio.current_time() - t0

    s.register_job("uses_default", sleeper)
    s.register_job("uses_job", sleeper, timeout=2)

    async with s:
        a = await s.submit(Task("uses_default"))
        b = await s.submit(Task("uses_job"))
        assert (await s.get(a)).timeout == 4
        assert (await s.get(b)).timeout == 2
        await s.wait(a)
        await s.wait(b)
    assert durations == pytest.approx({"uses_default": 4, "uses_job": 2}, abs=0.01)


async def test_job_that_finishes_in_time_is_not_a_timeout(sched, autojump_clock):
    s = sched(max_workers=1, retry=NoRetry())

    @s.job("quick")
    async def quick(ctx):
        await trio.sleep(ctx.json())
        return ctx.json()

    async with s:
        # one runner runs them one after another: a timeout must not leak into the next job
        ids = [await s.submit(Task("quick", d, timeout=2)) for d in (1.9, 1.9, 0.5, 1.9)]
        infos = [await s.wait(t) for t in ids]
    assert [i.status for i in infos] == [TaskStatus.SUCCEEDED] * 4
    assert [i.result for i in infos] == [1.9, 1.9, 0.5, 1.9]


async def test_sync_timeout_keeps_the_slot_until_the_thread_returns(sched):
    s = sched(max_workers=1, retry=NoRetry())
    events: list[str] = []
    lock = threading.Lock()

    @s.job("sync")
    def sync_job(ctx):
        with lock:
            events.append(f"start {ctx.text()}")
        time.sleep(0.3 if ctx.text() == "slow" else 0)
        with lock:
            events.append(f"end {ctx.text()} cancelled={ctx.cancelled}")

    async with s:
        slow = await s.submit(Task("sync", "slow", timeout=0.05))
        fast = await s.submit(Task("sync", "fast"))
        await trio.sleep(0.1)
        # the timeout has passed, but the thread still holds the only slot
        assert events == ["start slow"]
        assert (await s.stats()).pools["default"].running == 1
        info = await s.wait(slow, timeout=2)
        await s.wait(fast, timeout=2)
    assert info.status is TaskStatus.DEAD
    assert info.error.startswith("JobTimeoutError")
    assert events == ["start slow", "end slow cancelled=True", "start fast", "end fast cancelled=False"]


async def test_cancel_returns_false_for_ended_tasks(sched, autojump_clock):
    s = sched(retry=NoRetry())

    @s.job("ok")
    async def ok(ctx):
        pass

    @s.job("bad")
    async def bad(ctx):
        raise ValueError("x")

    async with s:
        done = await s.submit(Task("ok"))
        dead = await s.submit(Task("bad"))
        await s.wait(done)
        await s.wait(dead)
        s.pause()
        queued = await s.submit(Task("ok"))
        assert await s.cancel(queued) is True
        assert await s.cancel(done) is False
        assert await s.cancel(dead) is False
        assert await s.cancel(queued) is False
        assert (await s.get(done)).status is TaskStatus.SUCCEEDED
        assert (await s.get(dead)).status is TaskStatus.DEAD
        with pytest.raises(TaskNotFoundError):
            await s.cancel("never-existed")


async def test_lost_lease_stops_the_job_and_the_task_runs_again(sched, storage, autojump_clock):
    s = sched(lease_ttl=3)
    runs: list[tuple[int, float]] = []
    stopped: list[float] = []

    @s.job("j")
    async def j(ctx):
        runs.append((ctx.attempt, trio.current_time()))
        if len(runs) == 1:
            try:
                await trio.sleep(1000)
            except trio.Cancelled:
                stopped.append(trio.current_time())
                raise
        return len(runs)

    async with s:
        tid = await s.submit(Task("j"))
        await trio.sleep(0.5)
        # another instance's reaper sees the lease as expired (far in the future) and requeues the task
        reaped = await storage.reap(int(time.time() * 1000) + 10**9)
        t_lost = trio.current_time()
        assert [r[2] for r in reaped] == [tid]
        info = await s.wait(tid)
    assert stopped and stopped[0] - t_lost <= 1.01  # noticed at the next heartbeat (lease_ttl / 3)
    assert info.status is TaskStatus.SUCCEEDED
    assert info.result == 2
    assert info.lease_losses == 1
    assert [a for a, _ in runs] == [1, 1]  # a lost lease is not a failed attempt


async def test_timeout_of_a_job_with_its_own_nursery(sched, autojump_clock):
    s = sched(retry=NoRetry())

    @s.job("fan_out")
    async def fan_out(ctx):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 100)
            await trio.sleep(100)

    async with s:
        tid = await s.submit(Task("fan_out", timeout=1))
        info = await s.wait(tid, timeout=10)
    assert info.status is TaskStatus.DEAD
    assert info.error.startswith("JobTimeoutError")
    assert info.attempts == 1


async def test_cancel_of_a_job_with_its_own_nursery(sched, autojump_clock):
    s = sched(max_workers=1)
    ran: list[str] = []

    @s.job("fan_out")
    async def fan_out(ctx):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 100)
            await trio.sleep(100)

    @s.job("next")
    async def next_job(ctx):
        ran.append(ctx.task_id)

    async with s:
        tid = await s.submit(Task("fan_out"))
        after = await s.submit(Task("next"))
        await trio.sleep(1)
        assert await s.cancel(tid) is True
        assert (await s.wait(after, timeout=1)).status is TaskStatus.SUCCEEDED
        assert (await s.get(tid)).status is TaskStatus.CANCELLED
    assert ran == [after]


async def test_heartbeats_keep_a_long_job_leased(sched, autojump_clock):
    s = sched(lease_ttl=3)
    runs: list[int] = []

    @s.job("long")
    async def long(ctx):
        runs.append(ctx.attempt)
        await trio.sleep(20)  # far longer than the lease
        return "done"

    @s.job("long_sync")
    def long_sync(ctx):
        runs.append(ctx.attempt)
        time.sleep(0.05)  # virtual time races ahead while the thread runs
        return "done"

    async with s:
        a = await s.submit(Task("long"))
        b = await s.submit(Task("long_sync"))
        infos = [await s.wait(a), await s.wait(b)]
    assert [i.status for i in infos] == [TaskStatus.SUCCEEDED] * 2
    assert [i.lease_losses for i in infos] == [0, 0]
    assert runs == [1, 1]


async def test_a_timeout_counts_even_when_the_lease_guard_stopped_the_job_too():
    """A sync job runs past its timeout, and then past most of its lease while renewals fail (an outage):
    the lease guard stops it too, but the timeout came first and is the task's own doing: it fails with
    JobTimeoutError (here: dead, no retries) instead of being handed back to run again."""
    s = Scheduler(MemoryStorage(), max_workers=1, lease_ttl=1.0, retry=NoRetry())
    runs = 0

    @s.job("slow", timeout=0.2)
    def slow(ctx):
        nonlocal runs
        runs += 1
        time.sleep(1.0)  # past the timeout (0.2 s) and the guard (0.9 s); ignores ctx.cancelled

    async def unreachable(*args):  # type: ignore[no-untyped-def]
        raise StorageError("Redis at redis://x unreachable (test)")

    s._storage.renew = unreachable  # type: ignore[method-assign]
    s._storage.reap = unreachable  # type: ignore[method-assign]  # (the outage ends as the job returns)
    async with s:
        info = await s.wait(await s.submit(Task("slow")), timeout=10)
    assert info.status is TaskStatus.DEAD and "timeout" in (info.error or ""), info
    assert runs == 1
