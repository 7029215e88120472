"""Retries with backoff, the dead letter queue, permanent errors, resubmitting and purging."""

from __future__ import annotations

import itertools

import pytest
import trio

from skedulr import ConstantBackoff, ExponentialBackoff, LinearBackoff, MemoryStorage, NoRetry, Task, TaskStatus
from skedulr.errors import InvalidOptionError, InvalidStateError, PermanentError, TaskNotFoundError


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_failures_recorded_in_one_call_each_go_their_own_way(storage):
    """The storage takes a flush's failures in one call: a retry due at once, a retry due later, a
    permanent error (dead), and a stale token, which alone is refused."""
    spec = (None, "job", "default", b"", 0, 1, 0, None, None, [], None)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([spec, spec, spec], 1000)]
        rows = {row[2]: row for row in await storage.claim("default", 3, 1, 5000, 1000)}
        now, later, dead = (rows[task_id] for task_id in ids)
        stale = (now[0], now[1] + 1000)
        refused = await storage.fail_many(
            [(now[0], now[1], "E: now", "tb", 0), (later[0], later[1], "E: later", "tb", 500),
             (dead[0], dead[1], "E: dead", "tb", None), (*stale, "E: stale", "tb", 0)],
            1100,
        )  # fmt: skip
        assert [tuple(held) for held in refused] == [stale]
        infos = [await storage.get(task_id, 1200) for task_id in ids]
        assert [i.status for i in infos] == [TaskStatus.QUEUED, TaskStatus.RETRYING, TaskStatus.DEAD]
        assert [i.error for i in infos] == ["E: now", "E: later", "E: dead"]
        assert [row[2] for row in await storage.claim("default", 3, 1, 5000, 1200)] == [ids[0]]
        assert [row[2] for row in await storage.claim("default", 3, 1, 5000, 1600)] == [ids[1]]


async def test_exponential_backoff_spaces_attempts(sched, autojump_clock):
    s = sched(retry=ExponentialBackoff(max_retries=4, base=2.0, cap=60.0, jitter=0))
    times: list[float] = []

    @s.job("fail")
    async def fail(ctx):
        times.append(trio.current_time())
        raise ValueError("boom")

    async with s:
        info = await s.wait(await s.submit(Task("fail")))
    assert info.status is TaskStatus.DEAD
    assert info.attempts == 5
    assert gaps(times) == pytest.approx([2, 4, 8, 16], abs=0.01)


async def test_exponential_backoff_is_capped(sched, autojump_clock):
    s = sched(retry=ExponentialBackoff(max_retries=5, base=1.0, cap=5.0, jitter=0))
    times: list[float] = []

    @s.job("fail")
    async def fail(ctx):
        times.append(trio.current_time())
        raise ValueError("boom")

    async with s:
        await s.wait(await s.submit(Task("fail")))
    assert gaps(times) == pytest.approx([1, 2, 4, 5, 5], abs=0.01)


async def test_jitter_stays_within_its_spread_and_under_the_cap(sched, autojump_clock):
    policy = ExponentialBackoff(max_retries=6, base=1.0, cap=8.0, jitter=0.5, seed=7)
    s = sched(retry=policy)
    times: dict[str, list[float]] = {}

    @s.job("fail")
    async def fail(ctx):
        times.setdefault(ctx.task_id, []).append(trio.current_time())
        raise ValueError("boom")

    async with s:
        ids = [await s.submit(Task("fail")) for _ in range(5)]
        for tid in ids:
            await s.wait(tid)
    spreads = set()
    for tid in ids:
        observed = gaps(times[tid])
        assert len(observed) == 6
        for retry, gap in enumerate(observed, start=1):
            nominal = min(8.0, 2 ** (retry - 1))
            assert nominal * 0.5 - 0.01 <= gap <= min(8.0, nominal * 1.5) + 0.01
            # the scheduler waits what the policy says
            assert gap == pytest.approx(policy.delay_ms(retry, tid) / 1000, abs=0.01)
        spreads.add(tuple(round(g, 2) for g in observed))
    assert len(spreads) > 1  # the jitter is salted per task


async def test_constant_and_linear_backoff(sched, autojump_clock):
    s = sched(retry=NoRetry())
    times: dict[str, list[float]] = {"const": [], "lin": []}

    @s.job("const", retry=ConstantBackoff(max_retries=3, delay=5))
    async def const(ctx):
        times["const"].append(trio.current_time())
        raise ValueError("c")

    @s.job("lin", retry=LinearBackoff(max_retries=4, base=1, step=3, cap=8))
    async def lin(ctx):
        times["lin"].append(trio.current_time())
        raise ValueError("l")

    async with s:
        a = await s.submit(Task("const"))
        b = await s.submit(Task("lin"))
        await s.wait(a)
        await s.wait(b)
    assert gaps(times["const"]) == pytest.approx([5, 5, 5], abs=0.01)
    assert gaps(times["lin"]) == pytest.approx([1, 4, 7, 8], abs=0.01)


async def test_retrying_state_between_attempts_and_success_on_a_retry(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=3, delay=10))
    attempts: list[int] = []

    @s.job("flaky")
    async def flaky(ctx):
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"try {ctx.attempt}")
        return "ok"

    async with s:
        tid = await s.submit(Task("flaky"))
        await trio.sleep(5)
        info = await s.get(tid)
        assert info.status is TaskStatus.RETRYING
        assert info.attempts == 1
        assert info.error == "ConnectionError: try 1"
        assert [t.id for t in (await s.list_tasks(status="failed")).tasks] == [tid]
        done = await s.wait(tid)
    assert attempts == [1, 2, 3]
    assert done.status is TaskStatus.SUCCEEDED
    assert done.attempts == 3
    assert done.result == "ok"
    assert done.error is None


async def test_out_of_attempts_goes_dead_with_error_and_traceback(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=2, delay=1))

    def deep_helper(n):
        raise KeyError(f"missing {n}")

    @s.job("broken")
    async def broken(ctx):
        deep_helper(ctx.attempt)

    async with s:
        tid = await s.submit(Task("broken"))
        info = await s.wait(tid)
        assert info.status is TaskStatus.DEAD
        assert info.attempts == 3
        assert info.error == "KeyError: 'missing 3'"
        assert "Traceback (most recent call last)" in info.traceback
        assert "deep_helper" in info.traceback
        assert "KeyError: 'missing 3'" in info.traceback
        assert info.finished_at is not None
        assert [t.id for t in (await s.list_tasks(status="dead")).tasks] == [tid]
        assert [t.id for t in (await s.list_tasks(status="failed")).tasks] == [tid]


async def test_an_unprintable_error_is_still_recorded(sched, autojump_clock):
    class UnprintableError(Exception):
        def __str__(self):
            raise RuntimeError("no text for you")

    s = sched(retry=NoRetry())

    @s.job("odd")
    async def odd(ctx):
        raise UnprintableError()

    @s.job("ok")
    async def ok(ctx):
        return "fine"

    async with s:
        info = await s.wait(await s.submit(Task("odd")), timeout=5)
        after = await s.wait(await s.submit(Task("ok")), timeout=5)
    assert info.status is TaskStatus.DEAD
    assert info.error.startswith("UnprintableError")
    assert after.result == "fine"


async def test_permanent_error_skips_retries(sched, autojump_clock):
    class RejectedError(PermanentError):
        pass

    s = sched(retry=ConstantBackoff(max_retries=5, delay=1))
    calls: list[str] = []

    @s.job("perm")
    async def perm(ctx):
        calls.append(ctx.text())
        raise (PermanentError if ctx.text() == "base" else RejectedError)("do not retry")

    async with s:
        a = await s.wait(await s.submit(Task("perm", "base")))
        b = await s.wait(await s.submit(Task("perm", "sub")))
    assert a.status is b.status is TaskStatus.DEAD
    assert a.attempts == b.attempts == 1
    assert a.error == "PermanentError: do not retry"
    assert b.error == "RejectedError: do not retry"
    assert calls == ["base", "sub"]


async def test_permanent_errors_option(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=5, delay=1), permanent_errors=[LookupError])
    calls: dict[str, int] = {}

    @s.job("j")
    async def j(ctx):
        calls[ctx.text()] = calls.get(ctx.text(), 0) + 1
        raise {"key": KeyError, "index": IndexError, "value": ValueError}[ctx.text()]("x")

    async with s:
        results = {k: await s.wait(await s.submit(Task("j", k))) for k in ("key", "index", "value")}
    assert calls == {"key": 1, "index": 1, "value": 6}
    assert results["key"].status is TaskStatus.DEAD
    assert results["value"].attempts == 6


async def test_per_task_max_retries_overrides(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=4, delay=1))
    calls: dict[str, int] = {}

    @s.job("j")
    async def j(ctx):
        calls[ctx.text()] = calls.get(ctx.text(), 0) + 1
        raise ValueError("no")

    async with s:
        ids = {k: await s.submit(Task("j", k, max_retries=n)) for k, n in (("zero", 0), ("one", 1))}
        ids["default"] = await s.submit(Task("j", "default"))
        infos = {k: await s.wait(t) for k, t in ids.items()}
    assert calls == {"zero": 1, "one": 2, "default": 5}
    assert {k: i.max_retries for k, i in infos.items()} == {"zero": 0, "one": 1, "default": 4}


async def test_per_job_retry_policy(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=5, delay=100))
    times: list[float] = []

    @s.job("own", retry=ConstantBackoff(max_retries=2, delay=3))
    async def own(ctx):
        times.append(trio.current_time())
        raise ValueError("x")

    async with s:
        info = await s.wait(await s.submit(Task("own")))
        assert info.max_retries == 2
        assert info.attempts == 3
        assert gaps(times) == pytest.approx([3, 3], abs=0.01)
        # a task's max_retries still overrides the job's count, keeping the job's spacing
        times.clear()
        info = await s.wait(await s.submit(Task("own", max_retries=3)))
        assert info.attempts == 4
        assert gaps(times) == pytest.approx([3, 3, 3], abs=0.01)


async def test_resubmit_runs_a_dead_task_again(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=1, delay=1))
    fixed = False
    calls: list[int] = []

    @s.job("j")
    async def j(ctx):
        calls.append(ctx.attempt)
        if not fixed:
            raise ValueError("not yet")
        return "fixed"

    async with s:
        tid = await s.submit(Task("j"))
        assert (await s.wait(tid)).status is TaskStatus.DEAD
        fixed = True
        await s.resubmit(tid)
        info = await s.wait(tid)
        assert info.status is TaskStatus.SUCCEEDED
        assert info.result == "fixed"
        assert info.attempts == 1  # a fresh attempt budget
        with pytest.raises(InvalidStateError):
            await s.resubmit(tid)
        with pytest.raises(TaskNotFoundError):
            await s.resubmit("no-such-task")
    assert calls[:2] == [1, 2]
    assert calls[-1] == 1


async def test_resubmit_dead_by_name(sched, autojump_clock):
    s = sched(retry=NoRetry())
    healthy = False

    @s.job("a")
    async def a(ctx):
        if not healthy:
            raise ValueError("a down")

    @s.job("b")
    async def b(ctx):
        if not healthy:
            raise ValueError("b down")

    async with s:
        a_ids = [await s.submit(Task("a")) for _ in range(3)]
        b_ids = [await s.submit(Task("b")) for _ in range(2)]
        for tid in a_ids + b_ids:
            assert (await s.wait(tid)).status is TaskStatus.DEAD
        healthy = True
        again = await s.resubmit_dead(name="a")
        assert again == a_ids  # oldest first
        for tid in a_ids:
            assert (await s.wait(tid)).status is TaskStatus.SUCCEEDED
        for tid in b_ids:
            assert (await s.get(tid)).status is TaskStatus.DEAD
        assert await s.resubmit_dead(name="a") == []
        assert await s.resubmit_dead(limit=1) == b_ids[:1]
        assert (await s.wait(b_ids[0])).status is TaskStatus.SUCCEEDED


async def test_purge_and_purge_dead(sched, autojump_clock):
    s = sched(retry=NoRetry())

    @s.job("bad")
    async def bad(ctx):
        raise ValueError("x")

    @s.job("worse")
    async def worse(ctx):
        raise ValueError("y")

    @s.job("hang")
    async def hang(ctx):
        await trio.sleep(1000)

    async with s:
        bad_ids = [await s.submit(Task("bad")) for _ in range(3)]
        worse_id = await s.submit(Task("worse"))
        for tid in [*bad_ids, worse_id]:
            await s.wait(tid)
        await s.purge(bad_ids[0])
        with pytest.raises(TaskNotFoundError):
            await s.get(bad_ids[0])
        assert await s.purge_dead(name="bad") == bad_ids[1:]
        for tid in bad_ids:
            with pytest.raises(TaskNotFoundError):
                await s.get(tid)
        assert [t.id for t in (await s.list_tasks(status="dead")).tasks] == [worse_id]
        live = await s.submit(Task("hang"))
        with pytest.raises(InvalidStateError):
            await s.purge(live)
        assert await s.purge_dead() == [worse_id]
        assert (await s.list_tasks(status="dead")).tasks == []
        await s.cancel(live)


async def test_dead_tasks_stay_in_the_dlq_past_retention(sched, autojump_clock):
    s = sched(storage=MemoryStorage(retention=100), retry=NoRetry())

    @s.job("ok")
    async def ok(ctx):
        pass

    @s.job("bad")
    async def bad(ctx):
        raise ValueError("kept")

    async with s:
        done = await s.submit(Task("ok"))
        dead = await s.submit(Task("bad"))
        await s.wait(done)
        await s.wait(dead)
        await trio.sleep(50)
        assert (await s.get(done)).status is TaskStatus.SUCCEEDED  # within retention
        await trio.sleep(150)
        with pytest.raises(TaskNotFoundError):
            await s.get(done)
        info = await s.get(dead)
        assert info.status is TaskStatus.DEAD
        assert info.error == "ValueError: kept"
        assert [t.id for t in (await s.list_tasks()).tasks] == [dead]


async def test_on_failure_child_fires_only_after_the_final_failure(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=2, delay=10))
    events: list[tuple[str, float]] = []

    @s.job("parent")
    async def parent(ctx):
        events.append((f"parent{ctx.attempt}", trio.current_time()))
        raise ValueError("parent fails")

    @s.job("handler")
    async def handler(ctx):
        events.append(("handler", trio.current_time()))

    async with s:
        p = await s.submit(Task("parent"))
        c = await s.submit(Task("handler", on_failure=p))
        await trio.sleep(15)  # parent has failed twice and is retrying
        assert (await s.get(p)).status is TaskStatus.RETRYING
        assert (await s.get(c)).status is TaskStatus.WAITING
        info = await s.wait(c)
        assert info.status is TaskStatus.SUCCEEDED
        parent_info = await s.get(p)
    assert [e for e, _ in events] == ["parent1", "parent2", "parent3", "handler"]
    assert parent_info.status is TaskStatus.DEAD
    assert info.started_at >= parent_info.finished_at


async def test_retry_policies_validate(sched):
    with pytest.raises(InvalidOptionError):
        ExponentialBackoff(max_retries=-1)
    with pytest.raises(InvalidOptionError):
        ConstantBackoff(delay=-1)
    with pytest.raises(InvalidOptionError):
        LinearBackoff(cap=float("nan"))
    with pytest.raises(InvalidOptionError):
        Task("x", max_retries=-2)
