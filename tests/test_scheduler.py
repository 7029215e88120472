"""The Scheduler's lifecycle, repr, submitting and reading tasks, listing, stats and join."""

from __future__ import annotations

import gc
import sys
import threading

import pytest
import redis
import trio

from skedulr import ConstantBackoff, MemoryStorage, NoRetry, RedisStorage, Scheduler, Task, TaskStatus
from skedulr.errors import (
    DuplicateTaskError,
    InvalidNameError,
    InvalidOptionError,
    TaskNotFoundError,
    UnknownJobError,
    UnknownPoolError,
)

# ----- lifecycle -------------------------------------------------------------------------------------


async def test_async_with_runs_jobs_and_stops_on_exit(sched, autojump_clock):
    s = sched()
    ran = []

    @s.job("hello")
    async def hello(ctx):
        ran.append(ctx.task_id)
        return "hi"

    assert not s.is_running
    async with s as entered:
        assert entered is s
        assert s.is_running
        tid = await s.submit(Task("hello"))
        info = await s.wait(tid)
        assert info.status is TaskStatus.SUCCEEDED
        assert info.result == "hi"
    assert not s.is_running
    assert ran == [tid]


async def test_nursery_start_returns_only_when_ready(sched, autojump_clock):
    s = sched()
    ran = trio.Event()

    @s.job("probe")
    async def probe(ctx):
        ran.set()

    async with trio.open_nursery() as nursery:
        started = await nursery.start(s.run)
        assert started is s
        assert s.is_running
        await s.submit(Task("probe"))
        with trio.fail_after(5):
            await ran.wait()
        s.stop()
    assert not s.is_running


async def test_stop_makes_run_return(sched, autojump_clock):
    s = sched()
    returned = trio.Event()

    async def runner(task_status=trio.TASK_STATUS_IGNORED):
        await s.run(task_status=task_status)
        returned.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(runner)
        assert not returned.is_set()
        s.stop()
        with trio.fail_after(5):
            await returned.wait()
    assert not s.is_running


async def test_running_twice_is_refused(sched, autojump_clock):
    s = sched()
    async with s:
        with pytest.raises(InvalidOptionError):
            await s.run()
        assert s.is_running


async def test_a_scheduler_can_run_again_after_stopping(sched, autojump_clock):
    s = sched()
    calls = []

    @s.job("count")
    async def count(ctx):
        calls.append(ctx.task_id)

    for _ in range(2):
        async with s:
            tid = await s.submit(Task("count"))
            assert (await s.wait(tid)).status is TaskStatus.SUCCEEDED
    assert len(calls) == 2


async def test_repr_shows_live_state(sched, autojump_clock):
    s = sched(max_workers=2, pools={"critical": 5})
    release = trio.Event()
    started = trio.Event()

    @s.job("block")
    async def block(ctx):
        started.set()
        await release.wait()

    assert repr(s) == f"<Scheduler storage={s.storage.kind} pools=default:0/2,critical:0/5 running=0 stopped>"
    async with s:
        assert repr(s) == f"<Scheduler storage={s.storage.kind} pools=default:0/2,critical:0/5 running=0 running>"
        tid = await s.submit(Task("block"))
        await started.wait()
        assert repr(s) == f"<Scheduler storage={s.storage.kind} pools=default:1/2,critical:0/5 running=1 running>"
        s.pause()
        assert repr(s).endswith(" running paused>")
        s.resume()
        s.scale_pool("critical", 3)
        assert "critical:0/3" in repr(s)
        release.set()
        await s.wait(tid)
        await trio.sleep(0.1)
        assert "default:0/2" in repr(s)
        assert "running=0" in repr(s)
    assert repr(s).endswith(" stopped>")


# ----- submit / get / wait -----------------------------------------------------------------------------


async def test_submit_and_get_roundtrip(sched, autojump_clock):
    s = sched(pools={"io": 1})

    @s.job("store")
    async def store(ctx):
        pass

    s.pause()
    async with s:
        tid = await s.submit(Task("store", {"x": 1}, priority=7, pool="io", max_retries=2, timeout=3, key="k-1"))
        info = await s.get(tid)
        assert info.id == tid
        assert info.name == "store"
        assert info.pool == "io"
        assert info.priority == 7
        assert info.max_retries == 2
        assert info.timeout == 3
        assert info.key == "k-1"
        assert info.status is TaskStatus.QUEUED
        assert info.attempts == 0
        assert info.json() == {"x": 1}
        assert info.created_at is not None
        assert info.started_at is None
        assert info.finished_at is None
        s.resume()
        done = await s.wait(tid, timeout=5)
        assert done.status is TaskStatus.SUCCEEDED
        assert done.attempts == 1
        assert done.started_at is not None
        assert done.finished_at is not None
        assert done.finished_at >= done.started_at >= done.created_at


async def test_submit_with_explicit_id_and_duplicate(sched, autojump_clock):
    s = sched()

    @s.job("j")
    async def j(ctx):
        pass

    async with s:
        assert await s.submit(Task("j", id="my-task.1")) == "my-task.1"
        with pytest.raises(DuplicateTaskError):
            await s.submit(Task("j", id="my-task.1"))


async def test_submit_refuses_bad_input(sched, autojump_clock):
    s = sched(storage=MemoryStorage(max_payload_bytes=16))

    @s.job("j")
    async def j(ctx):
        pass

    async with s:
        with pytest.raises(UnknownJobError):
            await s.submit(Task("nobody"))
        with pytest.raises(UnknownPoolError):
            await s.submit(Task("j", pool="elsewhere"))
        with pytest.raises(InvalidOptionError):
            await s.submit(Task("j", priority=1_000_000))
        with pytest.raises(InvalidNameError):
            await s.submit(Task("j", id="has space"))
        with pytest.raises(InvalidOptionError):
            await s.submit(Task("j", b"x" * 17))
        page = await s.list_tasks()
        assert page.tasks == []


async def test_submit_many_is_all_or_nothing(sched, autojump_clock):
    s = sched()

    @s.job("j")
    async def j(ctx):
        pass

    s.pause()
    async with s:
        existing = await s.submit(Task("j", id="taken"))
        with pytest.raises(DuplicateTaskError):
            await s.submit_many([Task("j", id="fresh-1"), Task("j", id="taken"), Task("j")])
        with pytest.raises(DuplicateTaskError):
            await s.submit_many([Task("j", id="twice"), Task("j", id="twice")])
        with pytest.raises(UnknownJobError):
            await s.submit_many([Task("j", id="fresh-2"), Task("nobody")])
        assert [t.id for t in (await s.list_tasks()).tasks] == [existing]
        ids = await s.submit_many([Task("j"), Task("j", id="fresh-3")])
        assert len(set(ids)) == 2
        assert ids[1] == "fresh-3"
        s.resume()
        for tid in ids:
            assert (await s.wait(tid, timeout=5)).status is TaskStatus.SUCCEEDED


def _redis_state(storage) -> tuple[int, list[bytes]]:
    """RedisStorage's number of task hashes, and the values of the end marks its staged batches left
    (the batches themselves must be gone); nothing for MemoryStorage."""
    if not isinstance(storage, RedisStorage):
        return 0, []
    client = redis.Redis.from_url(storage.url)
    staged = list(client.scan_iter(match=f"{storage.tag}:s:*"))
    assert all(key.endswith(b":end") for key in staged), f"a staged batch was left behind: {staged}"
    assert client.exists(f"{storage.tag}:staging") == 0
    return len(list(client.scan_iter(match=f"{storage.tag}:t:*"))), sorted(client.get(k) for k in staged)


async def test_a_large_batch_is_all_or_nothing_too(sched, storage, autojump_clock):
    # RedisStorage stores a batch this large in parts (see tests/storage/test_redis_bulk_submit.py)
    s = sched()

    @s.job("j")
    async def j(ctx):
        pass

    s.pause()
    async with s:
        too_big = b"x" * ((1 << 20) + 1)  # over both storages' default payload cap
        with pytest.raises(InvalidOptionError):
            await s.submit_many([Task("j", payload=too_big if i == 2400 else b"") for i in range(2500)])
        assert (await s.list_tasks()).tasks == []
        assert sum((await s.stats()).counts.values()) == 0
        on_redis = isinstance(storage, RedisStorage)
        assert _redis_state(storage) == (0, [b"dropped"] if on_redis else [])  # the parts staged were dropped
        ids = await s.submit_many([Task("j", payload=str(i)) for i in range(2500)])
        assert (await s.stats()).counts["queued"] == 2500
        if on_redis:  # staged, then committed
            assert _redis_state(storage) == (2500, [b"committed", b"dropped"])
        assert [t.id for t in (await s.list_tasks(limit=3000)).tasks] == ids[::-1]
        s.resume()
        for tid in ids[::250]:
            assert (await s.wait(tid, timeout=30)).status is TaskStatus.SUCCEEDED


async def test_a_large_batch_runs_in_priority_then_submission_order(sched, autojump_clock):
    # on Redis the batch waits as one queue member standing for its list (lua/_lib.lua): tasks around it
    # still come before or after it by priority and submission order
    s = sched(max_workers=1)
    ran = []

    @s.job("record")
    async def record(ctx):
        ran.append(ctx.text())

    s.pause()
    async with s:
        await s.submit(Task("record", payload="before"))
        ids = await s.submit_many([Task("record", payload=str(i)) for i in range(2500)])
        await s.submit(Task("record", payload="after"))
        await s.submit(Task("record", payload="urgent", priority=5))
        await s.submit_many([Task("record", payload=f"urgent batch {i}", priority=5) for i in range(1500)])
        assert await s.cancel(ids[7])
        s.resume()
        with trio.fail_after(60):
            await s.join()
    urgent = ["urgent", *(f"urgent batch {i}" for i in range(1500))]
    assert ran == [*urgent, "before", *(str(i) for i in range(2500) if i != 7), "after"]


async def test_get_unknown_task(sched, autojump_clock):
    s = sched()
    async with s:
        with pytest.raises(TaskNotFoundError):
            await s.get("no-such-task")


async def test_wait_returns_when_the_task_ends(sched, autojump_clock):
    s = sched()

    @s.job("slow")
    async def slow(ctx):
        await trio.sleep(7)

    async with s:
        t0 = trio.current_time()
        tid = await s.submit(Task("slow"))
        info = await s.wait(tid)
        assert info.status is TaskStatus.SUCCEEDED
        assert trio.current_time() - t0 == pytest.approx(7, abs=0.1)


async def test_wait_with_timeout_raises_too_slow(sched, autojump_clock):
    s = sched()

    @s.job("slow")
    async def slow(ctx):
        await trio.sleep(100)

    async with s:
        tid = await s.submit(Task("slow"))
        with pytest.raises(trio.TooSlowError):
            await s.wait(tid, timeout=1)
        assert (await s.get(tid)).status is TaskStatus.RUNNING
        await s.cancel(tid)


# ----- list_tasks ------------------------------------------------------------------------------------------


async def test_list_tasks_filters(sched, autojump_clock):
    s = sched(pools={"side": 2}, retry=ConstantBackoff(max_retries=0, delay=100))

    @s.job("ok")
    async def ok(ctx):
        pass

    @s.job("bad")
    async def bad(ctx):
        raise ValueError("nope")

    @s.job("flaky")
    async def flaky(ctx):
        raise ValueError("again")

    async with s:
        ok1 = await s.submit(Task("ok"))
        ok2 = await s.submit(Task("ok", pool="side"))
        dead = await s.submit(Task("bad"))
        retrying = await s.submit(Task("flaky", max_retries=5))
        scheduled = await s.submit(Task("ok", delay=3600, key="later-key"))
        await s.wait(ok1)
        await s.wait(ok2)
        await s.wait(dead)
        await trio.sleep(0.5)
        assert (await s.get(retrying)).status is TaskStatus.RETRYING

        async def ids(**kw):
            return [t.id for t in (await s.list_tasks(**kw)).tasks]

        # newest first
        assert await ids() == [scheduled, retrying, dead, ok2, ok1]
        assert await ids(status="succeeded") == [ok2, ok1]
        assert await ids(status=TaskStatus.DEAD) == [dead]
        assert await ids(status="failed") == [retrying, dead]
        assert await ids(status=["scheduled", TaskStatus.SUCCEEDED]) == [scheduled, ok2, ok1]
        assert await ids(name="ok") == [scheduled, ok2, ok1]
        assert await ids(pool="side") == [ok2]
        assert await ids(name="ok", pool="default") == [scheduled, ok1]
        assert await ids(query="LATER-key") == [scheduled]
        assert await ids(query="nope") == [dead]
        with pytest.raises(InvalidOptionError):
            await s.list_tasks(limit=0)
        await s.cancel(retrying)


async def test_list_tasks_cursor_paging(sched, autojump_clock):
    s = sched()

    @s.job("p")
    async def p(ctx):
        pass

    s.pause()
    async with s:
        submitted = [await s.submit(Task("p")) for _ in range(25)]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await s.list_tasks(limit=10, cursor=cursor)
            pages += 1
            seen += [t.id for t in page.tasks]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert pages == 3
        assert seen == submitted[::-1]
        exact = await s.list_tasks(limit=25)
        assert len(exact.tasks) == 25
        assert exact.next_cursor is None
        # paging keeps the filter
        first = await s.list_tasks(status="queued", limit=20)
        rest = await s.list_tasks(status="queued", limit=20, cursor=first.next_cursor)
        assert [t.id for t in first.tasks + rest.tasks] == submitted[::-1]
        s.resume()


async def test_list_tasks_refuses_a_malformed_cursor(sched, autojump_clock):
    s = sched()

    @s.job("p")
    async def p(ctx):
        pass

    async with s:
        await s.submit(Task("p"))
        for cursor in ("garbage", "-5"):
            with pytest.raises(InvalidOptionError):
                await s.list_tasks(cursor=cursor)


# ----- stats and join --------------------------------------------------------------------------------------


async def test_stats(sched, autojump_clock):
    s = sched(max_workers=3, pools={"side": 1}, retry=NoRetry())
    release = trio.Event()
    started = []

    @s.job("hold")
    async def hold(ctx):
        started.append(ctx.task_id)
        await release.wait()

    @s.job("bad")
    async def bad(ctx):
        raise RuntimeError("x")

    @s.job("ok")
    async def ok(ctx):
        pass

    async with s:
        for _ in range(2):
            await s.submit(Task("hold"))
        await s.submit(Task("hold", pool="side"))
        await s.submit(Task("hold", pool="side"))
        await s.wait(await s.submit(Task("bad")))
        await s.wait(await s.submit(Task("ok")))
        await s.submit(Task("ok", delay=60))
        await trio.sleep(0.5)
        st = await s.stats()
        assert st.running == 3
        assert st.succeeded == 1
        assert st.failed == 1
        assert st.paused is False
        assert st.counts["running"] == 3
        assert st.counts["queued"] == 1
        assert st.counts["dead"] == 1
        assert st.counts["succeeded"] == 1
        assert st.counts["scheduled"] == 1
        assert set(st.pools) == {"default", "side"}
        side = st.pools["side"]
        assert (side.size, side.running, side.paused) == (1, 1, False)
        assert side.counts["running"] == 1
        assert side.counts["queued"] == 1
        assert st.pools["default"].running == 2
        assert st.pools["default"].counts["dead"] == 1
        s.pause("side")
        assert (await s.stats()).pools["side"].paused is True
        s.resume("side")
        release.set()
        await s.join()
        st = await s.stats()
        assert st.running == 0
        assert st.succeeded == 5
        assert st.counts["succeeded"] == 5
        assert st.counts["scheduled"] == 1


async def test_join_waits_for_busy_tasks_but_not_scheduled_ones(sched, autojump_clock):
    s = sched(max_workers=2, retry=NoRetry())
    finished = []

    @s.job("work")
    async def work(ctx):
        await trio.sleep(ctx.json())
        finished.append(ctx.json())

    async with s:
        t0 = trio.current_time()
        for d in (3, 5, 9):
            await s.submit(Task("work", d))
        later = await s.submit(Task("work", 1, delay=1000))
        await s.join()
        assert sorted(finished) == [3, 5, 9]
        # 3 and 5 run together, then 9 starts at 3: the last ends at 12
        assert trio.current_time() - t0 == pytest.approx(12, abs=0.2)
        assert (await s.get(later)).status is TaskStatus.SCHEDULED
        await s.cancel(later)


async def test_an_error_in_the_body_cancels_and_hands_tasks_back(sched, autojump_clock):
    s = sched(shutdown_grace=100)
    cancelled: list[str] = []

    @s.job("long")
    async def long(ctx):
        try:
            await trio.sleep(1000)
        except trio.Cancelled:
            cancelled.append(ctx.task_id)
            raise

    with pytest.RaisesGroup(KeyError, allow_unwrapped=True, flatten_subgroups=True):
        async with s:
            tid = await s.submit(Task("long"))
            await trio.sleep(1)
            raise KeyError("boom")
    assert not s.is_running
    assert cancelled == [tid]
    info = await s.get(tid)
    assert info.status is TaskStatus.QUEUED
    assert info.attempts == 0


async def test_polling_get_lets_jobs_run(sched, autojump_clock):
    s = sched()

    @s.job("j")
    async def j(ctx):
        return "ran"

    async with s:
        tid = await s.submit(Task("j"))
        for _ in range(2000):
            if (await s.get(tid)).status is TaskStatus.SUCCEEDED:
                break
        else:
            pytest.fail("the job never ran while get() was polled")


def test_a_scheduler_can_be_collected_on_any_thread(monkeypatch):
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}"))
    gc.collect()
    s = Scheduler()  # with its own MemoryStorage; the scheduler and its pools reference each other
    del s
    collector = threading.Thread(target=gc.collect)
    collector.start()
    collector.join()
    assert unraisable == []


async def test_submit_before_start_runs_once_started(storage, autojump_clock):
    s = Scheduler(storage)
    ran = []

    @s.job("early")
    async def early(ctx):
        ran.append(ctx.text())

    tid = await s.submit(Task("early", "before"))
    assert (await s.get(tid)).status is TaskStatus.QUEUED
    async with s:
        assert (await s.wait(tid)).status is TaskStatus.SUCCEEDED
    assert ran == ["before"]
