"""DAG triggers: on_success / on_failure / on_complete, joins, the skip cascade, late children, bad edges."""

from __future__ import annotations

import pytest
import trio

from skedulr import NoRetry, Task, TaskStatus
from skedulr.errors import CycleError, TaskNotFoundError, UnknownParentError


def dag_scheduler(sched):
    """A scheduler with `ok` (sleeps its payload seconds), `bad` (fails at once, no retries) and `log`."""
    s = sched(retry=NoRetry())
    ran: list[str] = []

    @s.job("ok")
    async def ok(ctx):
        ran.append(ctx.task_id)
        await trio.sleep(ctx.json() if ctx.payload else 0)

    @s.job("bad")
    async def bad(ctx):
        ran.append(ctx.task_id)
        raise ValueError("parent failed")

    @s.job("log")
    async def log(ctx):
        ran.append(ctx.task_id)

    return s, ran


async def test_on_success_runs_after_the_parent_succeeded(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        p = await s.submit(Task("ok", 5, id="p"))
        c = await s.submit(Task("log", id="c", on_success=p))
        info = await s.get(c)
        assert info.status is TaskStatus.WAITING
        assert info.parents == (("p", "on_success"),)
        await trio.sleep(2)
        assert (await s.get(c)).status is TaskStatus.WAITING
        child = await s.wait(c)
        parent = await s.get(p)
    assert child.status is TaskStatus.SUCCEEDED
    assert child.started_at >= parent.finished_at
    assert ran == ["p", "c"]


async def test_triggers_on_a_failed_parent(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        p = await s.submit(Task("bad", id="p"))
        on_success = await s.submit(Task("log", id="s", on_success=p))
        on_failure = await s.submit(Task("log", id="f", on_failure=p))
        on_complete = await s.submit(Task("log", id="c", on_complete=p))
        await s.join()
        statuses = {t: (await s.get(t)).status for t in (p, on_success, on_failure, on_complete)}
    assert statuses == {
        "p": TaskStatus.DEAD,
        "s": TaskStatus.SKIPPED,
        "f": TaskStatus.SUCCEEDED,
        "c": TaskStatus.SUCCEEDED,
    }
    assert sorted(ran) == ["c", "f", "p"]


async def test_triggers_on_a_succeeded_parent(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        p = await s.submit(Task("ok", 1, id="p"))
        await s.submit(Task("log", id="s", on_success=p))
        await s.submit(Task("log", id="f", on_failure=p))
        await s.submit(Task("log", id="c", on_complete=p))
        await s.join()
        statuses = {t.id: t.status for t in (await s.list_tasks()).tasks}
        skipped = await s.get("f")
    assert statuses == {
        "p": TaskStatus.SUCCEEDED,
        "s": TaskStatus.SUCCEEDED,
        "f": TaskStatus.SKIPPED,
        "c": TaskStatus.SUCCEEDED,
    }
    assert "f" not in ran
    assert skipped.error is not None and "skipped" in skipped.error


async def test_on_complete_fires_for_a_cancelled_parent(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        p = await s.submit(Task("ok", 100, id="p"))
        await s.submit(Task("log", id="c", on_complete=p))
        await s.submit(Task("log", id="s", on_success=p))
        await trio.sleep(1)
        assert await s.cancel(p)
        assert (await s.wait("c", timeout=5)).status is TaskStatus.SUCCEEDED
        assert (await s.get("s")).status is TaskStatus.SKIPPED
    assert ran == ["p", "c"]


async def test_multi_parent_join(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        t0 = trio.current_time()
        a = await s.submit(Task("ok", 2, id="a"))
        b = await s.submit(Task("ok", 6, id="b"))
        f = await s.submit(Task("bad", id="f"))
        join = await s.submit(Task("log", id="join", on_success=[a, b], on_failure=f))
        await trio.sleep(4)  # a and f are done, b is not
        assert (await s.get(join)).status is TaskStatus.WAITING
        info = await s.wait(join)
        assert info.status is TaskStatus.SUCCEEDED
        assert trio.current_time() - t0 == pytest.approx(6, abs=0.2)
        assert info.started_at >= (await s.get(b)).finished_at
        assert set(info.parents) == {("a", "on_success"), ("b", "on_success"), ("f", "on_failure")}
    assert ran[-1] == "join"


async def test_join_is_skipped_as_soon_as_one_condition_cannot_hold(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        slow = await s.submit(Task("ok", 50, id="slow"))
        f = await s.submit(Task("bad", id="f"))
        join = await s.submit(Task("log", id="join", on_success=[slow, f]))
        await trio.sleep(1)
        info = await s.get(join)
        assert info.status is TaskStatus.SKIPPED  # before `slow` has ended
        assert (await s.get(slow)).status is TaskStatus.RUNNING
        await s.join()
    assert "join" not in ran


async def test_skip_cascade(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        root = await s.submit(Task("bad", id="root"))
        b = await s.submit(Task("log", id="b", on_success=root))
        c = await s.submit(Task("log", id="c", on_success=b))
        d = await s.submit(Task("log", id="d", on_failure=c))  # c never goes dead: skipped too
        e = await s.submit(Task("log", id="e", on_success=[c, root]))
        fin = await s.submit(Task("log", id="fin", on_complete=c))  # skipped is an end: runs
        await s.join()
        statuses = {t: (await s.get(t)).status for t in (root, b, c, d, e, fin)}
    assert statuses == {
        "root": TaskStatus.DEAD,
        "b": TaskStatus.SKIPPED,
        "c": TaskStatus.SKIPPED,
        "d": TaskStatus.SKIPPED,
        "e": TaskStatus.SKIPPED,
        "fin": TaskStatus.SUCCEEDED,
    }
    assert sorted(ran) == ["fin", "root"]


async def test_child_submitted_after_parent_ended(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        ok = await s.submit(Task("ok", id="ok"))
        bad = await s.submit(Task("bad", id="bad"))
        await s.wait(ok)
        await s.wait(bad)
        runs = await s.submit(Task("log", id="runs", on_success=ok))
        also = await s.submit(Task("log", id="also", on_failure=bad, on_complete=ok))
        skipped = await s.submit(Task("log", id="skipped", on_success=bad))
        assert (await s.get(skipped)).status is TaskStatus.SKIPPED  # at once
        assert (await s.get(runs)).status in (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED)
        assert (await s.wait(runs, timeout=1)).status is TaskStatus.SUCCEEDED
        assert (await s.wait(also, timeout=1)).status is TaskStatus.SUCCEEDED
        # a child of a skipped task added later is skipped at once too
        grandchild = await s.submit(Task("log", id="grandchild", on_success=skipped))
        assert (await s.get(grandchild)).status is TaskStatus.SKIPPED
    assert "skipped" not in ran
    assert "grandchild" not in ran


async def test_submit_many_with_edges_inside_the_batch(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        ids = await s.submit_many(
            [
                Task("log", id="last", on_success=["left", "right"]),
                Task("ok", 1, id="left", on_success="first"),
                Task("ok", 2, id="right", on_success="first"),
                Task("ok", 1, id="first"),
            ]
        )
        assert ids == ["last", "left", "right", "first"]
        await s.wait("last")
    assert ran[0] == "first"
    assert sorted(ran[1:3]) == ["left", "right"]
    assert ran[3] == "last"


async def test_cycle_is_rejected_in_submit_many(sched, autojump_clock):
    s, _ = dag_scheduler(sched)
    async with s:
        with pytest.raises(CycleError):
            await s.submit_many(
                [
                    Task("log", id="a", on_success="c"),
                    Task("log", id="b", on_success="a"),
                    Task("log", id="c", on_complete="b"),
                    Task("log", id="free"),
                ]
            )
        with pytest.raises(CycleError):
            await s.submit(Task("log", id="self", on_success="self"))
        for tid in ("a", "b", "c", "free", "self"):  # nothing was stored
            with pytest.raises(TaskNotFoundError):
                await s.get(tid)


async def test_unknown_parent_is_rejected(sched, autojump_clock):
    s, _ = dag_scheduler(sched)
    async with s:
        with pytest.raises(UnknownParentError):
            await s.submit(Task("log", id="orphan", on_success="nobody"))
        with pytest.raises(UnknownParentError):
            await s.submit_many([Task("log", id="x1"), Task("log", id="x2", on_failure="ghost")])
        assert (await s.list_tasks()).tasks == []


async def test_cancel_a_waiting_child(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        p = await s.submit(Task("ok", 5, id="p"))
        c = await s.submit(Task("log", id="c", on_success=p))
        gc = await s.submit(Task("log", id="gc", on_success=c))
        fin = await s.submit(Task("log", id="fin", on_complete=c))
        assert await s.cancel(c) is True
        assert (await s.get(c)).status is TaskStatus.CANCELLED
        assert (await s.get(gc)).status is TaskStatus.SKIPPED
        await s.join()
        assert (await s.get(p)).status is TaskStatus.SUCCEEDED
        assert (await s.get(c)).status is TaskStatus.CANCELLED
        assert (await s.get(fin)).status is TaskStatus.SUCCEEDED
    assert sorted(ran) == ["fin", "p"]


async def test_cancelling_a_parent_that_is_not_running_releases_its_on_complete_child(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    async with s:
        parent = await s.submit(Task("ok", id="parent", delay=100))
        child = await s.submit(Task("log", id="child", on_complete=parent))
        await trio.sleep(1)  # the fetcher has looked and parked again
        assert await s.cancel(parent) is True
        assert (await s.get(child)).status is not TaskStatus.WAITING
        info = await s.wait(child, timeout=5)
        assert info.status is TaskStatus.SUCCEEDED
    assert ran == ["child"]


async def test_cancelling_a_running_parent_releases_a_child_in_another_pool(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    s.scale_pool("other", 1)
    async with s:
        parent = await s.submit(Task("ok", 100, id="parent", pool="other"))
        child = await s.submit(Task("log", id="child", on_complete=parent))
        await trio.sleep(1)
        assert await s.cancel(parent) is True
        info = await s.wait(child, timeout=5)
        assert info.status is TaskStatus.SUCCEEDED
    assert ran == ["parent", "child"]


async def test_child_in_another_pool_runs_after_its_parent_succeeded(sched, autojump_clock):
    s, ran = dag_scheduler(sched)
    s.scale_pool("other", 1)
    async with s:
        await trio.sleep(1)
        parent = await s.submit(Task("ok", 2, id="parent", pool="other"))
        child = await s.submit(Task("log", id="child", on_success=parent))
        info = await s.wait(child, timeout=5)
    assert info.status is TaskStatus.SUCCEEDED
    assert ran == ["parent", "child"]
