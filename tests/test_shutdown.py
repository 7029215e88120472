"""Graceful shutdown: stop claiming, a grace period, then cancel and hand tasks back; nothing is lost."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from skedulr import ConstantBackoff, Scheduler, Task, TaskStatus


def register(s: Scheduler, log: list[str]) -> None:
    @s.job("sleep")
    async def sleep(ctx):
        log.append(f"start {ctx.text() or ctx.task_id}")
        try:
            await trio.sleep(float(ctx.text() or 0))
        except trio.Cancelled:
            log.append(f"cancelled {ctx.text()}")
            raise
        log.append(f"end {ctx.text()}")


async def test_running_jobs_finish_within_the_grace_period(sched, autojump_clock):
    s = sched(shutdown_grace=10)
    log: list[str] = []
    register(s, log)
    async with s:
        tid = await s.submit(Task("sleep", "3"))
        await trio.sleep(1)
        t_exit = trio.current_time()
    assert trio.current_time() - t_exit == pytest.approx(2, abs=0.1)
    info = await s.get(tid)
    assert info.status is TaskStatus.SUCCEEDED
    assert log == ["start 3", "end 3"]


async def test_jobs_past_the_grace_period_are_cancelled_and_handed_back(sched, autojump_clock):
    s = sched(shutdown_grace=2)
    log: list[str] = []
    register(s, log)
    async with s:
        tid = await s.submit(Task("sleep", "100"))
        await trio.sleep(1)
        assert (await s.get(tid)).attempts == 1
        t_exit = trio.current_time()
    assert trio.current_time() - t_exit == pytest.approx(2, abs=0.1)
    info = await s.get(tid)
    assert info.status is TaskStatus.QUEUED
    assert info.attempts == 0  # the interrupted attempt is not counted
    assert info.error is None
    assert log == ["start 100", "cancelled 100"]
    assert (await s.stats()).failed == 0


async def test_shutdown_stops_claiming(sched, autojump_clock):
    s = sched(max_workers=1, shutdown_grace=30)
    log: list[str] = []
    register(s, log)
    async with s:
        running = await s.submit(Task("sleep", "5"))
        queued = await s.submit(Task("sleep", "1"))
        await trio.sleep(1)
    # the running job finished within the grace period; the slot it freed was not used
    assert (await s.get(running)).status is TaskStatus.SUCCEEDED
    info = await s.get(queued)
    assert info.status is TaskStatus.QUEUED
    assert info.attempts == 0
    assert log == ["start 5", "end 5"]


async def test_stop_hands_back_and_returns(sched, autojump_clock):
    s = sched(shutdown_grace=1)
    log: list[str] = []
    register(s, log)
    async with trio.open_nursery() as nursery:
        await nursery.start(s.run)
        tid = await s.submit(Task("sleep", "50"))
        await trio.sleep(1)
        s.stop()
    assert (await s.get(tid)).status is TaskStatus.QUEUED
    assert log == ["start 50", "cancelled 50"]


async def test_left_over_tasks_run_in_a_new_scheduler_on_the_same_storage(sched, storage, autojump_clock):
    first = sched(max_workers=1, shutdown_grace=1)
    log: list[str] = []
    register(first, log)
    async with first:
        handed_back = await first.submit(Task("sleep", "100"))
        queued = await first.submit(Task("sleep", "2"))
        scheduled = await first.submit(Task("sleep", "3", delay=30))
        await trio.sleep(1)
    statuses = {t.id: t.status for t in (await first.list_tasks()).tasks}
    assert statuses == {
        handed_back: TaskStatus.QUEUED,
        queued: TaskStatus.QUEUED,
        scheduled: TaskStatus.SCHEDULED,
    }

    second = Scheduler(storage, max_workers=3)
    log2: list[str] = []

    @second.job("sleep")
    async def quick(ctx):
        log2.append(ctx.task_id)

    async with second:
        infos = {t: await second.wait(t, timeout=120) for t in (handed_back, queued, scheduled)}
    assert {t: i.status for t, i in infos.items()} == dict.fromkeys(infos, TaskStatus.SUCCEEDED)
    assert infos[handed_back].attempts == 1
    assert sorted(log2) == sorted([handed_back, queued, scheduled])
    assert infos[scheduled].started_at >= infos[scheduled].run_at


async def test_cancelling_the_enclosing_nursery_hands_tasks_back(sched, autojump_clock):
    s = sched(max_workers=2, shutdown_grace=100)
    log: list[str] = []
    register(s, log)
    async with trio.open_nursery() as nursery:
        await nursery.start(s.run)
        a = await s.submit(Task("sleep", "100"))
        b = await s.submit(Task("sleep", "200"))
        c = await s.submit(Task("sleep", "300"))  # queued behind them
        await trio.sleep(1)
        t_cancel = trio.current_time()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - t_cancel < 0.1  # no grace period on cancellation
    assert not s.is_running
    for tid in (a, b, c):
        info = await s.get(tid)
        assert info.status is TaskStatus.QUEUED, tid
        assert info.attempts == 0
    assert sorted(log) == ["cancelled 100", "cancelled 200", "start 100", "start 200"]


async def test_sync_job_is_waited_for_after_the_grace_period(sched):
    s = sched(shutdown_grace=0.05)
    saw_cancel = threading.Event()
    started = threading.Event()

    @s.job("sync")
    def sync_job(ctx):
        started.set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not ctx.cancelled:
            time.sleep(0.002)
        if ctx.cancelled:
            saw_cancel.set()
        time.sleep(0.05)  # still working when the grace period is over

    async with s:
        tid = await s.submit(Task("sync"))
        assert await trio.to_thread.run_sync(started.wait, 2)
    # leaving `async with` waited for the thread
    assert saw_cancel.is_set()
    assert (await s.stats()).running == 0
    info = await s.get(tid)
    assert info.status is TaskStatus.QUEUED
    assert info.attempts == 0


async def test_job_with_its_own_nursery_is_handed_back(sched, autojump_clock):
    s = sched(shutdown_grace=1)

    @s.job("fan_out")
    async def fan_out(ctx):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 100)
            await trio.sleep(100)

    async with s:
        tid = await s.submit(Task("fan_out"))
        await trio.sleep(1)
    info = await s.get(tid)
    assert info.status is TaskStatus.QUEUED
    assert info.attempts == 0


async def test_retrying_task_survives_the_scheduler(sched, storage, autojump_clock):
    first = sched(retry=ConstantBackoff(max_retries=2, delay=5))

    @first.job("flaky")
    async def flaky_first(ctx):
        raise ValueError("first instance fails")

    async with first:
        tid = await first.submit(Task("flaky"))
        await trio.sleep(1)
        assert (await first.get(tid)).status is TaskStatus.RETRYING

    second = Scheduler(storage, retry=ConstantBackoff(max_retries=2, delay=5))
    attempts: list[int] = []

    @second.job("flaky")
    async def flaky_second(ctx):
        attempts.append(ctx.attempt)
        return "recovered"

    async with second:
        info = await second.wait(tid, timeout=60)
    assert info.status is TaskStatus.SUCCEEDED
    assert attempts == [2]
    assert info.attempts == 2


async def test_delayed_task_handed_over_runs_at_its_time(sched, storage, autojump_clock):
    first = sched()

    @first.job("tick")
    async def tick_first(ctx):
        pass

    async with first:
        t0 = trio.current_time()
        tid = await first.submit(Task("tick", delay=30))
        await trio.sleep(20)

    second = Scheduler(storage)
    ran_at: list[float] = []

    @second.job("tick")
    async def tick_second(ctx):
        ran_at.append(trio.current_time())

    async with second:
        info = await second.wait(tid, timeout=120)
    assert info.status is TaskStatus.SUCCEEDED
    assert ran_at[0] - t0 == pytest.approx(30, abs=0.5)
    assert info.created_at <= info.run_at <= info.started_at
