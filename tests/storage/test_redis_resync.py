"""After the hint connection is lost and re-established, news may have been missed (a cancel among
it): the scheduler hands back the tasks it claimed ahead, so none starts on stale knowledge."""

from __future__ import annotations

import os

import redis
import trio

from skedulr import RedisStorage, Scheduler, Task


async def test_a_lost_hint_connection_sends_the_tasks_claimed_ahead_back(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix=f"resync-{os.urandom(3).hex()}")
    sched = Scheduler(storage, max_workers=1)
    client = redis.Redis.from_url(redis_url)

    @sched.job("sleep")
    async def sleep(ctx):  # type: ignore[no-untyped-def]
        await trio.sleep(float(ctx.payload))

    async with sched:
        for task_id in [await sched.submit(Task("sleep", "0.01")) for _ in range(3)]:
            await sched.wait(task_id)  # short jobs: the pool claims ahead
        await sched.submit(Task("sleep", "0.9"))
        follower = await sched.submit(Task("sleep", "0.01"))
        with trio.fail_after(5):
            while (await sched.stats()).pools["default"].prefetched == 0:
                await trio.sleep(0.001)
        token = client.hget(storage._key("t", follower), "tok")
        assert token
        assert client.client_kill_filter(_type="pubsub") >= 1
        with trio.fail_after(0.8):  # before the running job ends: handed back (and maybe claimed anew)
            while client.hget(storage._key("t", follower), "tok") == token:
                await trio.sleep(0.005)
        assert (await sched.wait(follower, timeout=5)).status.value == "succeeded"
    client.close()
