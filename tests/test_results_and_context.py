"""Results, the job context, progress reports and middleware."""

from __future__ import annotations

import threading

import pytest
import trio

from skedulr import AttemptOutcome, ConstantBackoff, JobContext, Middleware, NoRetry, Task, TaskStatus
from skedulr.errors import InvalidOptionError

# ----- results -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"\x00\xffraw bytes",
        "text ünïcode",
        "",
        {"a": [1, 2.5, None, True], "b": {"c": "d"}},
        [1, "two", 3.0],
        42,
        False,
    ],
)
async def test_result_round_trip(sched, autojump_clock, value):
    s = sched()

    @s.job("give")
    async def give(ctx):
        return value

    async with s:
        info = await s.wait(await s.submit(Task("give")))
    assert info.status is TaskStatus.SUCCEEDED
    assert info.result == value
    assert type(info.result) is type(value)


async def test_no_result_is_none(sched, autojump_clock):
    s = sched()

    @s.job("nothing")
    def nothing(ctx):
        return None

    async with s:
        info = await s.wait(await s.submit(Task("nothing")))
    assert info.status is TaskStatus.SUCCEEDED
    assert info.result is None


async def test_sync_job_result(sched, autojump_clock):
    s = sched()

    @s.job("sync")
    def sync_job(ctx):
        return {"thread": threading.current_thread() is not threading.main_thread(), "n": ctx.json()["n"] * 2}

    async with s:
        info = await s.wait(await s.submit(Task("sync", {"n": 21})))
    assert info.result == {"thread": True, "n": 42}


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), {"x": b"bytes inside"}])
async def test_non_serialisable_result_goes_dead_without_retries(sched, autojump_clock, value):
    s = sched(retry=ConstantBackoff(max_retries=5, delay=1))
    calls: list[int] = []

    @s.job("weird")
    async def weird(ctx):
        calls.append(ctx.attempt)
        return value

    async with s:
        info = await s.wait(await s.submit(Task("weird")))
    assert info.status is TaskStatus.DEAD
    assert info.attempts == 1
    assert calls == [1]
    assert info.error.startswith("ResultNotSerializableError")
    assert info.result is None


# ----- context -------------------------------------------------------------------------------------------------


async def test_ctx_fields(sched, autojump_clock):
    s = sched(pools={"side": 1}, retry=ConstantBackoff(max_retries=2, delay=1))
    seen: list[dict] = []

    @s.job("inspect")
    async def inspect_job(ctx: JobContext):
        seen.append(
            {
                "task_id": ctx.task_id,
                "name": ctx.name,
                "pool": ctx.pool,
                "priority": ctx.priority,
                "attempt": ctx.attempt,
                "payload": ctx.payload,
                "json": ctx.json(),
                "cancelled": ctx.cancelled,
                "deadline": ctx.deadline,
                "scheduler": ctx.scheduler is s,
                "repr": repr(ctx),
            }
        )
        if ctx.attempt < 2:
            raise ValueError("again")

    @s.job("text")
    async def text_job(ctx):
        return ctx.text()

    async with s:
        tid = await s.submit(Task("inspect", {"k": "v", "n": [1, 2]}, priority=9, pool="side"))
        await s.wait(tid)
        text = await s.wait(await s.submit(Task("text", "héllo wörld")))
    assert [x["attempt"] for x in seen] == [1, 2]
    first = seen[0]
    assert first["task_id"] == tid
    assert first["name"] == "inspect"
    assert first["pool"] == "side"
    assert first["priority"] == 9
    assert first["payload"] == b'{"k":"v","n":[1,2]}'
    assert first["json"] == {"k": "v", "n": [1, 2]}
    assert first["cancelled"] is False
    assert first["deadline"] is None
    assert first["scheduler"] is True
    assert tid in first["repr"] and "attempt=1" in first["repr"]
    assert text.result == "héllo wörld"


async def test_bytes_payload_is_passed_through(sched, autojump_clock):
    s = sched()

    @s.job("raw")
    async def raw(ctx):
        return ctx.payload[::-1]

    async with s:
        info = await s.wait(await s.submit(Task("raw", b"\x01\x02\x03")))
    assert info.result == b"\x03\x02\x01"
    assert info.payload == b"\x01\x02\x03"


async def test_report_progress_from_an_async_job(sched, autojump_clock, until):
    s = sched()
    reported = trio.Event()
    release = trio.Event()

    @s.job("steps")
    async def steps(ctx):
        ctx.report_progress(0.25)
        reported.set()
        await release.wait()
        ctx.report_progress(7)  # clamped
        await trio.sleep(1)

    async with s:
        tid = await s.submit(Task("steps"))
        await reported.wait()
        await until(lambda: _progress(s, tid, 0.25))
        release.set()
        await until(lambda: _progress(s, tid, 1.0))
        assert (await s.get(tid)).status is TaskStatus.RUNNING
        info = await s.wait(tid)
    assert info.progress == 1.0


async def test_report_progress_from_a_sync_job(sched, autojump_clock, until):
    s = sched()
    reported = threading.Event()
    release = threading.Event()

    @s.job("sync")
    def sync_job(ctx):
        ctx.report_progress(0.4)
        reported.set()
        release.wait(5)

    async with s:
        tid = await s.submit(Task("sync"))
        assert await trio.to_thread.run_sync(reported.wait, 5)
        try:
            await until(lambda: _progress(s, tid, 0.4), timeout=30)
            info = await s.get(tid)
            assert info.status is TaskStatus.RUNNING
        finally:
            release.set()
        await s.wait(tid)


async def test_report_progress_refuses_non_numbers(sched, autojump_clock):
    s = sched(retry=NoRetry())

    @s.job("bad_progress")
    async def bad_progress(ctx):
        for bad in ("half", float("nan"), True):
            with pytest.raises(InvalidOptionError):
                ctx.report_progress(bad)
        ctx.report_progress(-3)
        await trio.sleep(1)
        return "checked"

    async with s:
        tid = await s.submit(Task("bad_progress"))
        await trio.sleep(0.5)
        assert (await s.get(tid)).progress == 0.0
        assert (await s.wait(tid)).result == "checked"


async def _progress(s, tid, expected):
    return (await s.get(tid)).progress == expected


# ----- middleware ------------------------------------------------------------------------------------------------


class Recorder(Middleware):
    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log

    async def before_attempt(self, ctx):
        self.log.append(f"{self.name}.before {ctx.text()}")

    async def after_attempt(self, ctx, outcome: AttemptOutcome):
        self.log.append(f"{self.name}.after {ctx.text()} {outcome.status}")
        self.log.append(outcome)


async def test_middleware_order_and_outcomes(sched, autojump_clock):
    s = sched(retry=NoRetry())
    log: list = []
    s.use(Recorder("outer", log))
    s.use(Recorder("inner", log))

    @s.job("j")
    async def j(ctx):
        log.append(f"job {ctx.text()}")
        if ctx.text() == "bad":
            raise ValueError("nope")
        return {"ok": ctx.text()}

    async with s:
        await s.wait(await s.submit(Task("j", "good")))
        await trio.sleep(0.1)
        await s.wait(await s.submit(Task("j", "bad")))
        await trio.sleep(0.1)
    text = [x for x in log if isinstance(x, str)]
    assert text == [
        "outer.before good",
        "inner.before good",
        "job good",
        "inner.after good succeeded",
        "outer.after good succeeded",
        "outer.before bad",
        "inner.before bad",
        "job bad",
        "inner.after bad failed",
        "outer.after bad failed",
    ]
    outcomes = [x for x in log if isinstance(x, AttemptOutcome)]
    assert outcomes[0].result == {"ok": "good"}
    assert outcomes[0].error is None
    assert isinstance(outcomes[2].error, ValueError)
    assert outcomes[2].duration >= 0


async def test_middleware_after_sees_a_timeout_as_failed(sched, autojump_clock):
    s = sched(retry=NoRetry())
    log: list = []
    s.use(Recorder("m", log))

    @s.job("slow")
    async def slow(ctx):
        await trio.sleep(100)

    async with s:
        info = await s.wait(await s.submit(Task("slow", "t", timeout=1)))
        await trio.sleep(0.1)
    assert info.error.startswith("JobTimeoutError")
    text = [x for x in log if isinstance(x, str)]
    assert text == ["m.before t", "m.after t failed"]


async def test_middleware_after_sees_a_cancel(sched, autojump_clock):
    s = sched()
    log: list = []
    s.use(Recorder("m", log))

    @s.job("slow")
    async def slow(ctx):
        await trio.sleep(100)

    async with s:
        tid = await s.submit(Task("slow", "c"))
        await trio.sleep(1)
        await s.cancel(tid)
        await trio.sleep(1)
    text = [x for x in log if isinstance(x, str)]
    assert text == ["m.before c", "m.after c cancelled"]


async def test_middleware_before_raising_fails_the_attempt(sched, autojump_clock):
    s = sched(retry=ConstantBackoff(max_retries=1, delay=1))
    ran: list[int] = []
    afters: list[str] = []

    class Gate(Middleware):
        async def before_attempt(self, ctx):
            if ctx.attempt == 1:
                raise PermissionError("gate closed")

        async def after_attempt(self, ctx, outcome):
            afters.append(outcome.status)

    s.use(Gate())

    @s.job("j")
    async def j(ctx):
        ran.append(ctx.attempt)

    async with s:
        tid = await s.submit(Task("j"))
        await trio.sleep(0.5)
        info = await s.get(tid)
        assert info.status is TaskStatus.RETRYING
        assert info.error == "PermissionError: gate closed"
        done = await s.wait(tid)
        await trio.sleep(0.1)
    assert done.status is TaskStatus.SUCCEEDED
    assert ran == [2]  # the job never ran on the gated attempt
    assert afters == ["failed", "succeeded"]


async def test_middleware_after_errors_are_ignored(sched, autojump_clock, caplog):
    s = sched()

    class Broken(Middleware):
        async def after_attempt(self, ctx, outcome):
            raise RuntimeError("metrics down")

    s.use(Broken())

    @s.job("j")
    async def j(ctx):
        return 1

    async with s:
        info = await s.wait(await s.submit(Task("j")))
        await trio.sleep(0.1)
    assert info.status is TaskStatus.SUCCEEDED
    assert "metrics down" in caplog.text


async def test_use_requires_a_middleware(sched):
    s = sched()
    with pytest.raises(InvalidOptionError):
        s.use(object())
