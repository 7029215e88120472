"""The idempotency key window on a real Redis, in real time, on the server's clock: `{p}:k:<key>` holds the
task id with no expiry while the task lives (submit.lua SETs it), gets `key_ttl` from the moment the task
ends, whatever way it ends (lua/_lib.lua end_task PEXPIREs it: succeeded, cancelled, dead), and is gone
after that, so the same key then makes a new task. A resubmitted dead task holds its key again (lua/
resubmit.lua: PERSIST while its window lasts, SET after it); a purge frees the key at once.

tests/test_idempotency.py runs most of these rules on MemoryStorage under a virtual clock; here Redis's
own key expiry does the timing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
import trio

from skedulr import JobContext, NoRetry, RedisStorage, Scheduler, Task, TaskStatus

KEY_TTL = 0.5  # seconds
KEY_TTL_MS = round(KEY_TTL * 1000)
SLACK_MS = 50  # Redis expires a key lazily on access or in its background cycle: a little late, never early


class Window:
    """A scheduler over a fresh prefix with `key_ttl=KEY_TTL`, its jobs, and a plain client on the keys."""

    def __init__(self, url: str) -> None:
        self.prefix = f"keys-{os.urandom(4).hex()}"
        self.sched = Scheduler(
            RedisStorage(url, prefix=self.prefix, key_ttl=KEY_TTL), max_workers=4, retry=NoRetry(), shutdown_grace=1
        )
        self.r = redis.Redis.from_url(url)
        self.runs: list[str] = []
        self.release = trio.Event()
        self.healthy = False

        @self.sched.job("hold")
        async def hold(ctx: JobContext) -> None:
            self.runs.append(ctx.task_id)
            await self.release.wait()

        @self.sched.job("quick")
        async def quick(ctx: JobContext) -> None:
            self.runs.append(ctx.task_id)

        @self.sched.job("fragile")
        async def fragile(ctx: JobContext) -> None:
            self.runs.append(ctx.task_id)
            if not self.healthy:
                raise ValueError("down")

    def k(self, key: str) -> str:
        return f"{{{self.prefix}}}:k:{key}"

    def holder(self, key: str) -> str | None:
        value = self.r.get(self.k(key))
        return value.decode() if value is not None else None

    def pttl(self, key: str) -> int:
        return int(self.r.pttl(self.k(key)))

    def server_ms(self) -> int:
        seconds, micros = self.r.time()
        return seconds * 1000 + micros // 1000

    async def finished_ms(self, task_id: str) -> int:
        info = await self.sched.get(task_id)
        assert info.finished_at is not None, info
        return round(info.finished_at.timestamp() * 1000)

    async def window_closes(self, key: str, ended_ms: int) -> None:
        """Polls until Redis has dropped the key, then checks it did not drop it before the window's end."""
        with trio.fail_after(KEY_TTL + 5):
            while self.r.exists(self.k(key)):
                await trio.sleep(0.01)
        gone_ms = self.server_ms()
        assert gone_ms >= ended_ms + KEY_TTL_MS, f"the key went {gone_ms - ended_ms} ms after the end"


@pytest.fixture
async def window(redis_url: str) -> AsyncIterator[Window]:
    w = Window(redis_url)
    try:
        async with w.sched:
            try:
                yield w
            finally:
                w.release.set()  # a held job ends, so the scheduler stops at once
    finally:
        w.r.close()


async def _wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_the_key_holds_while_the_task_lives_and_for_the_window_after_its_end(window: Window) -> None:
    """Queued, then running for longer than key_ttl: the window counts from the end, not the submit."""
    s = window.sched
    s.pause()
    first = await s.submit(Task("hold", key="order-42"))
    assert await s.submit(Task("hold", key="order-42")) == first  # queued
    assert (window.holder("order-42"), window.pttl("order-42")) == (first, -1)
    s.resume()
    await _wait_until(lambda: window.runs)
    await trio.sleep(KEY_TTL * 1.5)  # older than key_ttl, and still running
    assert (await s.get(first)).status is TaskStatus.RUNNING
    assert await s.submit(Task("hold", key="order-42")) == first
    assert window.pttl("order-42") == -1, "the key has an expiry while its task is still running"

    window.release.set()
    assert (await s.wait(first, timeout=10)).status is TaskStatus.SUCCEEDED
    ended = await window.finished_ms(first)
    assert 0 < window.pttl("order-42") <= KEY_TTL_MS
    assert await s.submit(Task("hold", key="order-42")) == first  # within the window: nothing new
    assert window.server_ms() < ended + KEY_TTL_MS, "too slow: the window passed before it was checked"
    await window.window_closes("order-42", ended)

    second = await s.submit(Task("quick", key="order-42"))
    assert second != first
    assert (await s.wait(second, timeout=10)).status is TaskStatus.SUCCEEDED
    assert window.runs == [first, second]
    assert len((await s.list_tasks()).tasks) == 2


@pytest.mark.parametrize("when", ["scheduled", "running"])
async def test_a_cancelled_tasks_key_is_held_for_the_window_then_freed(window: Window, when: str) -> None:
    s = window.sched
    if when == "scheduled":
        first = await s.submit(Task("hold", key="k", delay=60))
    else:
        first = await s.submit(Task("hold", key="k"))
        await _wait_until(lambda: window.runs)
    assert (await s.get(first)).status.value == when
    assert await s.cancel(first) is True
    ended = await window.finished_ms(first)
    assert (await s.get(first)).status is TaskStatus.CANCELLED
    assert 0 < window.pttl("k") <= KEY_TTL_MS
    assert await s.submit(Task("hold", key="k")) == first
    await window.window_closes("k", ended)
    second = await s.submit(Task("quick", key="k"))
    assert second != first
    assert (await s.wait(second, timeout=10)).status is TaskStatus.SUCCEEDED


async def test_a_dead_tasks_key_is_held_for_the_window_and_again_once_resubmitted(window: Window) -> None:
    """Within its window a resubmit makes the key permanent again (PERSIST): the key outlives the old window
    while the task reruns, and gets a new window when it ends."""
    s = window.sched
    first = await s.submit(Task("fragile", key="k"))
    assert (await s.wait(first, timeout=10)).status is TaskStatus.DEAD
    assert 0 < window.pttl("k") <= KEY_TTL_MS
    assert await s.submit(Task("fragile", key="k")) == first

    s.pause()
    await s.resubmit(first)
    assert window.pttl("k") == -1, "the resubmitted task's key kept the expiry of its old window"
    await trio.sleep(KEY_TTL * 1.5)  # the old window has passed; the key is held all the same
    assert await s.submit(Task("fragile", key="k")) == first
    window.healthy = True
    s.resume()
    assert (await s.wait(first, timeout=10)).status is TaskStatus.SUCCEEDED
    ended = await window.finished_ms(first)
    assert 0 < window.pttl("k") <= KEY_TTL_MS
    await window.window_closes("k", ended)
    assert await s.submit(Task("quick", key="k")) != first
    assert window.runs.count(first) == 2


async def test_a_dead_task_resubmitted_after_its_window_takes_its_key_back(window: Window) -> None:
    s = window.sched
    first = await s.submit(Task("fragile", key="k"))
    assert (await s.wait(first, timeout=10)).status is TaskStatus.DEAD
    await window.window_closes("k", await window.finished_ms(first))
    assert window.holder("k") is None
    s.pause()
    await s.resubmit(first)
    assert (window.holder("k"), window.pttl("k")) == (first, -1)
    assert await s.submit(Task("fragile", key="k")) == first
    assert len((await s.list_tasks()).tasks) == 1


async def test_a_purge_frees_the_key_at_once(window: Window) -> None:
    s = window.sched
    first = await s.submit(Task("quick", key="k"))
    assert (await s.wait(first, timeout=10)).status is TaskStatus.SUCCEEDED
    assert window.holder("k") == first
    await s.purge(first)
    assert window.holder("k") is None
    second = await s.submit(Task("quick", key="k"))
    assert second != first
    assert (await s.wait(second, timeout=10)).status is TaskStatus.SUCCEEDED
