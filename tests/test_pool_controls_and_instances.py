"""Instances announce themselves in the storage, so operators can see which schedulers run where."""

from __future__ import annotations

import os
import socket

import trio

from skedulr import Task


async def test_running_schedulers_are_listed_with_their_pools_and_work(sched, autojump_clock):
    first = sched(max_workers=2, pools={"critical": 3})
    second = sched(max_workers=1)
    release = trio.Event()

    @first.job("block")
    async def block(ctx):
        await release.wait()

    @second.job("block")
    async def block_too(ctx):
        await release.wait()

    async with first, second:
        second.pause()  # the blocking task runs in `first`
        await first.submit(Task("block"))
        await trio.sleep(first.lease_ttl / 2)  # a heartbeat after the task started
        instances = await first.instances()
        assert [i.id for i in instances] == sorted([first.instance_id, second.instance_id])
        mine = next(i for i in instances if i.id == first.instance_id)
        assert mine.host == socket.gethostname() and mine.pid == os.getpid()
        assert mine.pools == {"default": 2, "critical": 3}
        assert mine.running == 1
        assert mine.last_beat >= mine.started_at
        release.set()
    assert await first.instances() == []  # both left on their way out


async def test_an_instance_that_stops_beating_drops_out(sched, autojump_clock):
    s = sched(lease_ttl=3.0)
    async with s:
        assert [i.id for i in await s.instances()] == [s.instance_id]
    # A crash leaves no "leave": announce one by hand and let it age past the lease.
    now = s._clock.now_ms()
    await s.storage.beat_instance("ghost", {"host": "elsewhere", "pid": "1", "pools": "", "running": "0",
                                            "started_ms": str(now)}, 3000, now)  # fmt: skip
    assert [i.id for i in await s.instances()] == ["ghost"]
    await trio.sleep(4)
    assert await s.instances() == []


async def test_pool_controls_set_through_the_storage_reach_every_instance(sched, autojump_clock):
    first = sched(max_workers=2)
    second = sched(max_workers=2)
    async with first, second:
        await first.set_pool("critical", size=3)  # a new pool, everywhere
        await first.set_pool("default", paused=True)
        await trio.sleep(first.lease_ttl)  # the other instance looks at least this often
        for s in (first, second):
            assert s.pools == {"default": 2, "critical": 3}
            assert (await s.stats()).pools["default"].paused
        second.resume("default")  # a local change stands until the control changes again
        await trio.sleep(first.lease_ttl)
        assert not (await second.stats()).pools["default"].paused
        await first.set_pool("*", paused=True)
        await trio.sleep(first.lease_ttl)
        assert (await second.stats()).paused
