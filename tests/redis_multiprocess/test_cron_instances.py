"""A cron schedule (`schedule_cron("* * * * *")`) shared by three scheduler instances on one Redis prefix
fires exactly one task per minute tick, at the tick, and each tick's task runs once: the instances race
for every tick (lua/fire_schedule.lua lets only the caller that saw the stored fire time move it on).

Cron ticks are a minute apart, so the three instances (each with a RedisStorage of its own) run in one
Trio run under the autojump clock with `use_client_clock=True`: every instance wakes at the same virtual
moment for each tick, and four virtual minutes take well under a second.
"""

from __future__ import annotations

import os
from collections import Counter

import trio
import trio.testing

from skedulr import JobContext, RedisStorage, Scheduler, Task, TaskStatus

MINUTE_MS = 60_000
INSTANCES = 3
TICKS = 4


async def test_a_cron_schedule_fires_once_per_minute_across_three_instances(
    redis_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    prefix = f"cron-{os.urandom(4).hex()}"
    runs: list[tuple[int, str, float]] = []  # (instance, task id, trio time)
    scheds: list[Scheduler] = []
    for n in range(INSTANCES):
        storage = RedisStorage(redis_url, prefix=prefix, use_client_clock=True, poll_interval=5.0)
        sched = Scheduler(storage=storage, max_workers=2)

        async def tick(ctx: JobContext, n: int = n) -> None:
            runs.append((n, ctx.task_id, trio.current_time()))

        sched.register_job("tick", tick)
        scheds.append(sched)

    async with scheds[0], scheds[1], scheds[2]:
        schedule_id = await scheds[0].schedule_cron("* * * * *", Task("tick", max_retries=0), skip_if_running=False)
        (info,) = await scheds[1].list_schedules()
        first = info.next_fire_ms
        assert first is not None and first % MINUTE_MS == 0, first
        # the first tick and three more, stopping half a minute before the fifth
        until = first + (TICKS - 1) * MINUTE_MS + MINUTE_MS // 2
        await trio.sleep_until(scheds[0]._clock.trio_time(until))
        tasks = [t for t in (await scheds[2].list_tasks(limit=1000)).tasks if t.schedule == schedule_id]
        (info,) = await scheds[2].list_schedules()

    created = sorted(round(t.created_at.timestamp() * 1000) for t in tasks if t.created_at is not None)
    assert created == [first + i * MINUTE_MS for i in range(TICKS)], (
        f"{len(tasks)} tasks for {TICKS} ticks, created at ms after the first tick: {[c - first for c in created]}"
    )
    assert (info.fired, info.skipped, info.next_fire_ms) == (TICKS, 0, first + TICKS * MINUTE_MS), info
    assert all(t.status is TaskStatus.SUCCEEDED for t in tasks), [t.status for t in tasks]
    per_task = Counter(task_id for _, task_id, _ in runs)
    assert per_task == dict.fromkeys((t.id for t in tasks), 1), f"runs per task: {per_task}"
