"""Idempotency keys: one task per key while it lives and for a window after it ends."""

from __future__ import annotations

import trio

from skedulr import MemoryStorage, NoRetry, Task, TaskStatus


async def test_same_key_while_live_returns_same_id_and_runs_once(sched, autojump_clock):
    s = sched()
    runs: list[str] = []
    release = trio.Event()

    @s.job("charge")
    async def charge(ctx):
        runs.append(ctx.text())
        await release.wait()

    async with s:
        s.pause()
        first = await s.submit(Task("charge", "one", key="order-42"))
        assert await s.submit(Task("charge", "two", key="order-42")) == first  # while queued
        s.resume()
        await trio.sleep(1)
        assert (await s.get(first)).status is TaskStatus.RUNNING
        assert await s.submit(Task("charge", "three", key="order-42")) == first  # while running
        other = await s.submit(Task("charge", "other", key="order-43"))
        assert other != first
        release.set()
        await s.join()
        assert len((await s.list_tasks()).tasks) == 2
    assert sorted(runs) == ["one", "other"]


async def test_same_key_within_window_after_end_returns_same_id(sched, autojump_clock):
    s = sched(storage=MemoryStorage(key_ttl=60))
    runs: list[str] = []

    @s.job("j")
    async def j(ctx):
        runs.append(ctx.task_id)

    async with s:
        first = await s.submit(Task("j", key="k"))
        await s.wait(first)
        await trio.sleep(50)
        again = await s.submit(Task("j", key="k"))
        assert again == first
        await trio.sleep(5)
        assert runs == [first]
        assert (await s.get(first)).status is TaskStatus.SUCCEEDED


async def test_same_key_after_window_makes_a_new_task(sched, autojump_clock):
    s = sched(storage=MemoryStorage(key_ttl=60))
    runs: list[str] = []

    @s.job("j")
    async def j(ctx):
        runs.append(ctx.task_id)

    async with s:
        first = await s.submit(Task("j", key="k"))
        await s.wait(first)
        await trio.sleep(61)
        second = await s.submit(Task("j", key="k"))
        assert second != first
        assert (await s.wait(second)).status is TaskStatus.SUCCEEDED
        # the new task holds the key now
        assert await s.submit(Task("j", key="k")) == second
    assert runs == [first, second]


async def test_window_counts_from_the_end_not_the_submit(sched, autojump_clock):
    s = sched(storage=MemoryStorage(key_ttl=30))

    @s.job("long")
    async def long(ctx):
        await trio.sleep(100)

    async with s:
        first = await s.submit(Task("long", key="k"))
        await trio.sleep(50)  # older than key_ttl, still running
        assert await s.submit(Task("long", key="k")) == first
        await s.wait(first)
        await trio.sleep(20)  # ended 20 s ago
        assert await s.submit(Task("long", key="k")) == first


async def test_key_of_a_dead_task_is_held_too(sched, autojump_clock):
    s = sched(storage=MemoryStorage(key_ttl=60), retry=NoRetry())
    runs: list[str] = []

    @s.job("bad")
    async def bad(ctx):
        runs.append(ctx.task_id)
        raise ValueError("x")

    async with s:
        first = await s.submit(Task("bad", key="k"))
        assert (await s.wait(first)).status is TaskStatus.DEAD
        assert await s.submit(Task("bad", key="k")) == first
        await trio.sleep(1)
    assert runs == [first]


async def test_key_in_a_batch(sched, autojump_clock):
    s = sched()
    runs: list[str] = []

    @s.job("j")
    async def j(ctx):
        runs.append(ctx.text())

    async with s:
        first = await s.submit(Task("j", "first", key="batch-key"))
        ids = await s.submit_many(
            [
                Task("j", "dup", key="batch-key"),
                Task("j", "fresh", key="other-key"),
                Task("j", "fresh-dup", key="other-key"),
            ]
        )
        assert ids[0] == first
        assert ids[1] != first
        assert ids[2] == ids[1]
        await s.join()
    assert sorted(runs) == ["first", "fresh"]


async def test_purge_frees_the_key_at_once(sched, autojump_clock):
    s = sched(storage=MemoryStorage(key_ttl=3600))

    @s.job("j")
    async def j(ctx):
        pass

    async with s:
        first = await s.submit(Task("j", key="k"))
        await s.wait(first)
        await s.purge(first)
        second = await s.submit(Task("j", key="k"))
        assert second != first
        assert (await s.wait(second)).status is TaskStatus.SUCCEEDED


async def test_resubmitted_task_holds_its_key_again(sched, autojump_clock):
    s = sched(storage=MemoryStorage(key_ttl=10), retry=NoRetry())
    healthy = False

    @s.job("j")
    async def j(ctx):
        if not healthy:
            raise ValueError("down")

    async with s:
        first = await s.submit(Task("j", key="k"))
        assert (await s.wait(first)).status is TaskStatus.DEAD
        await trio.sleep(20)  # the window has passed
        healthy = True
        await s.resubmit(first)
        assert await s.submit(Task("j", key="k")) == first
        assert (await s.wait(first)).status is TaskStatus.SUCCEEDED
        assert len((await s.list_tasks()).tasks) == 1
