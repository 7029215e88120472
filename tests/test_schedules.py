"""Interval and cron schedules, and delayed tasks (`delay=`, `run_at=`)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import trio

from skedulr import Scheduler, Task, TaskStatus
from skedulr.errors import InvalidCronError, InvalidOptionError, InvalidTimeZoneError, ScheduleNotFoundError


def tick_scheduler(sched, duration: float = 0):
    s = sched()
    runs: list[tuple[str, float]] = []

    @s.job("tick")
    async def tick(ctx):
        runs.append((ctx.task_id, trio.current_time()))
        await trio.sleep(duration)

    return s, runs


async def schedule_tasks(s, schedule_id: str):
    return sorted((t for t in (await s.list_tasks(limit=1000)).tasks if t.schedule == schedule_id), key=_created)


def _created(t):
    return t.created_at


# ----- every ---------------------------------------------------------------------------------------------------


async def test_schedule_every_fires_once_per_tick(sched, autojump_clock):
    s, runs = tick_scheduler(sched)
    async with s:
        t0 = trio.current_time()
        sid = await s.schedule_every(10, Task("tick"), id="every-10")
        assert sid == "every-10"
        await trio.sleep(35)
        tasks = await schedule_tasks(s, sid)
        info = next(i for i in await s.list_schedules() if i.id == sid)
    assert [round(t - t0, 2) for _, t in runs] == [10, 20, 30]
    assert len(tasks) == 3
    assert all(t.status is TaskStatus.SUCCEEDED for t in tasks)
    created = [t.created_at for t in tasks]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(created)] == [10, 10]
    assert info.kind == "every"
    assert info.fired == 3
    assert info.skipped == 0
    assert info.last_task == tasks[-1].id


async def test_cron_fires_at_the_right_wall_minutes(sched, autojump_clock):
    s, runs = tick_scheduler(sched)
    async with s:
        sid = await s.schedule_cron("*/5 * * * *", Task("tick"))
        first_fire = next(i for i in await s.list_schedules() if i.id == sid).next_fire_ms
        await trio.sleep(16 * 60)
        tasks = await schedule_tasks(s, sid)
        info = next(i for i in await s.list_schedules() if i.id == sid)
    assert first_fire % 300_000 == 0
    assert len(tasks) in (3, 4)  # 16 minutes hold three or four multiples of five minutes
    assert tasks[0].created_at.timestamp() * 1000 == first_fire
    for t in tasks:
        assert t.created_at.minute % 5 == 0
        assert (t.created_at.second, t.created_at.microsecond) == (0, 0)
    created = [t.created_at for t in tasks]
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(created)} == {300}
    assert len(runs) == len(tasks) == info.fired
    assert info.next_fire_ms == first_fire + 300_000 * len(tasks)


async def test_cron_in_a_time_zone(sched, autojump_clock):
    s, _ = tick_scheduler(sched)
    async with s:
        # minutes 0, 20, 40 in India (UTC+05:30) are minutes 30, 50, 10 in UTC
        sid = await s.schedule_cron("*/20 * * * *", Task("tick"), tz="Asia/Kolkata")
        assert next(i for i in await s.list_schedules() if i.id == sid).every == "*/20 * * * *|Asia/Kolkata"
        await trio.sleep(41 * 60)
        tasks = await schedule_tasks(s, sid)
    assert len(tasks) in (2, 3)
    for t in tasks:
        assert t.created_at.minute in (10, 30, 50)
        assert (t.created_at.second, t.created_at.microsecond) == (0, 0)
    created = [t.created_at for t in tasks]
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(created)} == {1200}


async def test_skip_if_running(sched, autojump_clock):
    s, runs = tick_scheduler(sched, duration=25)
    async with s:
        t0 = trio.current_time()
        sid = await s.schedule_every(10, Task("tick"))  # skip_if_running is the default
        await trio.sleep(45)
        info = next(i for i in await s.list_schedules() if i.id == sid)
        await s.unschedule(sid)
    # fires at 10 (runs until 35), skips 20 and 30, fires at 40
    assert [round(t - t0, 2) for _, t in runs] == [10, 40]
    assert (info.fired, info.skipped) == (2, 2)
    assert info.skip_if_running is True


async def test_without_skip_if_running_ticks_overlap(sched, autojump_clock):
    s, runs = tick_scheduler(sched, duration=25)
    async with s:
        t0 = trio.current_time()
        sid = await s.schedule_every(10, Task("tick"), skip_if_running=False)
        await trio.sleep(45)
        info = next(i for i in await s.list_schedules() if i.id == sid)
        await s.unschedule(sid)
    assert [round(t - t0, 2) for _, t in runs] == [10, 20, 30, 40]
    assert (info.fired, info.skipped) == (4, 0)


async def test_unschedule(sched, autojump_clock):
    s, _ = tick_scheduler(sched)
    async with s:
        sid = await s.schedule_every(10, Task("tick"))
        keep = await s.schedule_every(15, Task("tick"))
        await trio.sleep(25)
        own = len(await schedule_tasks(s, sid))
        await s.unschedule(sid)
        assert [i.id for i in await s.list_schedules()] == [keep]
        await trio.sleep(100)
        assert len(await schedule_tasks(s, sid)) == own == 2
        assert len(await schedule_tasks(s, keep)) == 8  # 15, 30, ..., 120
        with pytest.raises(ScheduleNotFoundError):
            await s.unschedule(sid)
        with pytest.raises(ScheduleNotFoundError):
            await s.unschedule("never-was")


async def test_invalid_cron_and_time_zone(sched, autojump_clock):
    s, _ = tick_scheduler(sched)
    async with s:
        for spec in ("61 * * * *", "not a cron", "* * * *", "0 0 31 2 *"):
            with pytest.raises(InvalidCronError):
                await s.schedule_cron(spec, Task("tick"))
        with pytest.raises(InvalidTimeZoneError):
            await s.schedule_cron("* * * * *", Task("tick"), tz="Mars/Olympus_Mons")
        with pytest.raises(InvalidOptionError):
            await s.schedule_every(0, Task("tick"))
        with pytest.raises(InvalidOptionError):
            await s.schedule_every(5, Task("tick", key="k"))
        assert await s.list_schedules() == []


# ----- delayed tasks -------------------------------------------------------------------------------------------


async def test_delay_runs_at_its_time_not_before(sched, autojump_clock):
    s, runs = tick_scheduler(sched)
    async with s:
        t0 = trio.current_time()
        tid = await s.submit(Task("tick", delay=30))
        info = await s.get(tid)
        assert info.status is TaskStatus.SCHEDULED
        assert (info.run_at - info.created_at).total_seconds() == pytest.approx(30, abs=0.002)
        await trio.sleep(29.9)
        assert runs == []
        assert (await s.get(tid)).status is TaskStatus.SCHEDULED
        done = await s.wait(tid)
    assert [round(t - t0, 2) for _, t in runs] == [30]
    assert done.started_at >= done.run_at


async def test_run_at_runs_at_its_time_not_before(sched, autojump_clock):
    s, runs = tick_scheduler(sched)
    async with s:
        t0 = trio.current_time()
        at = datetime.now(UTC) + timedelta(seconds=45)
        tid = await s.submit(Task("tick", run_at=at))
        info = await s.get(tid)
        assert info.status is TaskStatus.SCHEDULED
        assert abs((info.run_at - at).total_seconds()) < 0.002
        await trio.sleep(44)
        assert runs == []
        done = await s.wait(tid)
    assert runs[0][1] - t0 == pytest.approx(45, abs=0.5)
    assert done.started_at >= done.run_at


async def test_run_at_in_the_past_runs_at_once(sched, autojump_clock):
    s, runs = tick_scheduler(sched)
    async with s:
        t0 = trio.current_time()
        tid = await s.submit(Task("tick", run_at=datetime.now(UTC) - timedelta(hours=1)))
        await s.wait(tid, timeout=1)
    assert runs[0][1] - t0 < 0.1


async def test_delayed_tasks_keep_priority_order_when_due(sched, autojump_clock):
    s = sched(max_workers=1)
    order: list[str] = []

    @s.job("j")
    async def j(ctx):
        order.append(ctx.text())
        await trio.sleep(1)

    async with s:
        s.pause()
        await s.submit(Task("j", "late-high", delay=10, priority=10))
        await s.submit(Task("j", "now-low", priority=-5))
        await s.submit(Task("j", "soon-mid", delay=0.5, priority=5))
        await s.submit(Task("j", "now-mid", priority=5))
        s.resume()
        await trio.sleep(30)
    # at 0: now-mid (the higher of those due); at 1: soon-mid; at 2: now-low; at 10: late-high
    assert order == ["now-mid", "soon-mid", "now-low", "late-high"]


async def test_delay_options_are_validated(sched):
    with pytest.raises(InvalidOptionError):
        Task("j", delay=-1)
    with pytest.raises(InvalidOptionError):
        Task("j", delay=1, run_at=datetime.now(UTC))
    with pytest.raises(InvalidOptionError):
        Task("j", run_at=datetime.now())  # naive


# ----- schedules live in the storage ---------------------------------------------------------------------------


def ticker(storage, runs: list[str]) -> Scheduler:
    s = Scheduler(storage)

    @s.job("tick")
    async def tick(ctx):
        runs.append(ctx.task_id)

    return s


async def test_two_schedulers_on_one_storage_fire_once_per_tick(storage, autojump_clock):
    runs: list[str] = []
    a, b = ticker(storage, runs), ticker(storage, runs)
    async with a, b:
        sid = await a.schedule_every(10, Task("tick"))
        await trio.sleep(35)
        assert [i.id for i in await b.list_schedules()] == [sid]
    assert len(runs) == 3
    assert len(set(runs)) == 3


async def test_a_schedule_survives_its_scheduler(storage, autojump_clock):
    runs: list[str] = []
    first = ticker(storage, runs)
    async with first:
        sid = await first.schedule_every(10, Task("tick"))
        await trio.sleep(25)
    fired_by_first = len(runs)
    assert fired_by_first == 2
    second = ticker(storage, runs)
    async with second:
        assert [i.id for i in await second.list_schedules()] == [sid]
        await trio.sleep(100)
        tasks = await schedule_tasks(second, sid)
    assert len(runs) > fired_by_first
    assert all(t.status is TaskStatus.SUCCEEDED for t in tasks)
    created = [t.created_at for t in tasks[fired_by_first:]]
    assert all((b - a).total_seconds() == 10 for a, b in itertools.pairwise(created))


async def test_adding_a_schedule_with_the_same_id_replaces_it(sched, autojump_clock):
    s, runs = tick_scheduler(sched)
    async with s:
        t0 = trio.current_time()
        await s.schedule_every(10, Task("tick"), id="job")
        await s.schedule_every(30, Task("tick"), id="job")
        infos = await s.list_schedules()
        assert [(i.id, i.every) for i in infos] == [("job", "30000")]
        await trio.sleep(65)
    assert [round(t - t0, 2) for _, t in runs] == [30, 60]
