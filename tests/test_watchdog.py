"""The watchdog: an async job that never yields gets JobBlockedError, and the worker goes on.

These tests need real time (the watchdog is a thread watching the wall clock): no autojump_clock here.
"""

from __future__ import annotations

import time

import trio

from skedulr import NoRetry, Task, TaskStatus


async def test_blocking_async_job_fails_with_job_blocked_error(sched):
    s = sched(max_workers=2, block_limit=0.5, retry=NoRetry())
    ran: list[str] = []

    @s.job("hog")
    async def hog(ctx):
        ran.append("hog")
        deadline = time.monotonic() + 5  # bounded, so a broken watchdog fails the test instead of hanging it
        while time.monotonic() < deadline:
            pass
        return "never interrupted"

    @s.job("ok")
    async def ok(ctx):
        ran.append("ok")
        return "fine"

    async with s:
        t0 = time.monotonic()
        hog_id = await s.submit(Task("hog", priority=10))
        ok_id = await s.submit(Task("ok"))
        hog_info = await s.wait(hog_id, timeout=10)
        blocked_for = time.monotonic() - t0
        ok_info = await s.wait(ok_id, timeout=5)
        # the worker keeps going: a task submitted afterwards runs too
        after = await s.wait(await s.submit(Task("ok")), timeout=5)
    assert hog_info.status is TaskStatus.DEAD
    assert hog_info.error.startswith("JobBlockedError")
    assert "without yielding" in hog_info.error
    assert hog_info.attempts == 1
    assert hog_info.result is None
    assert 0.5 <= blocked_for < 2.5
    assert ok_info.status is TaskStatus.SUCCEEDED
    assert after.status is TaskStatus.SUCCEEDED
    assert ran == ["hog", "ok", "ok"]


async def test_blocked_job_traceback_shows_where_it_was_stuck(sched):
    s = sched(block_limit=0.3, retry=NoRetry())

    def spin_here():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pass

    @s.job("hog")
    async def hog(ctx):
        spin_here()

    async with s:
        info = await s.wait(await s.submit(Task("hog")), timeout=10)
    assert info.error.startswith("JobBlockedError")
    assert "Traceback (most recent call last)" in info.traceback
    assert "spin_here" in info.traceback


async def test_time_sleep_in_async_job_is_caught_after_it_returns(sched):
    """`time.sleep` cannot be interrupted from another thread: the error lands as soon as it returns."""
    s = sched(block_limit=0.3, retry=NoRetry())

    @s.job("sleepy")
    async def sleepy(ctx):
        time.sleep(0.6)
        for _ in range(1000):  # bytecode after the sleep, where the async exception is delivered
            pass
        await trio.sleep(0.5)
        return "not interrupted"

    @s.job("ok")
    async def ok(ctx):
        return "fine"

    async with s:
        info = await s.wait(await s.submit(Task("sleepy")), timeout=5)
        after = await s.wait(await s.submit(Task("ok")), timeout=5)
    assert info.status is TaskStatus.DEAD
    assert info.error.startswith("JobBlockedError")
    assert after.result == "fine"


async def test_a_job_that_yields_is_left_alone(sched):
    s = sched(block_limit=0.3, retry=NoRetry())

    @s.job("busy_but_polite")
    async def busy_but_polite(ctx):
        deadline = time.monotonic() + 0.7
        while time.monotonic() < deadline:
            time.sleep(0.01)  # short bursts under the limit, yielding in between
            await trio.lowlevel.checkpoint()
        return "done"

    async with s:
        info = await s.wait(await s.submit(Task("busy_but_polite")), timeout=5)
    assert info.status is TaskStatus.SUCCEEDED
    assert info.result == "done"
