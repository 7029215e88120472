"""Bad input: every refusal is a `skedulr.errors` class whose message says what to do, every failing job
is recorded on its task, and nothing bad a caller or a job does stops the worker or touches other tasks.

Each scheduler test ends by running a normal task (`_still_works`), so a refusal that left the
scheduler broken, or stored half a task, shows up in the same test.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from skedulr import (
    ConstantBackoff,
    JobContext,
    MemoryStorage,
    Middleware,
    Scheduler,
    Task,
    TaskStatus,
    _core,
    errors,
)

PAYLOAD_CAP = 64
RETRIES = 2  # so a job that always raises makes 3 attempts
NAME_RE = re.compile(r"[A-Za-z0-9_\-.:@]+")


def _refusal(excinfo: pytest.ExceptionInfo[BaseException], *fragments: str) -> str:
    """Checks a caught refusal: a SkedulrError whose message contains every fragment (the remedy)."""
    assert isinstance(excinfo.value, errors.SkedulrError), f"{type(excinfo.value).__name__} is no SkedulrError"
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


async def _still_works(s: Scheduler) -> None:
    """The scheduler is up, and a normal task submitted now runs to success with its result."""
    assert s.is_running
    tid = await s.submit(Task("echo", payload="ping"))
    info = await s.wait(tid, timeout=30)
    assert info.status is TaskStatus.SUCCEEDED
    assert info.result == "ping"


async def _count_tasks(s: Scheduler) -> int:
    page = await s.list_tasks(limit=10_000)
    return len(page.tasks)


class _NotSerialisable:
    pass


@pytest.fixture
async def live() -> AsyncIterator[Scheduler]:
    """A running scheduler with a small payload cap, a second pool and a few jobs. pytest-trio takes the clock
    from the test's own arguments only: tests using this fixture ask for `autojump_clock` themselves."""
    s = Scheduler(
        storage=MemoryStorage(max_payload_bytes=PAYLOAD_CAP),
        pools={"side": 2},
        retry=ConstantBackoff(max_retries=RETRIES, delay=1.0),
        lease_ttl=5.0,
    )

    @s.job("echo")
    async def echo(ctx: JobContext) -> str:
        await trio.sleep(0)
        return ctx.text()

    @s.job("boom")
    async def boom(ctx: JobContext) -> None:
        await trio.sleep(0)
        raise ValueError(f"boom on attempt {ctx.attempt}")

    @s.job("sync_boom")
    def sync_boom(ctx: JobContext) -> None:
        raise KeyError("sync boom")

    @s.job("flaky")
    async def flaky(ctx: JobContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "second time lucky"

    @s.job("bad_result")
    async def bad_result(ctx: JobContext) -> object:
        return _NotSerialisable()

    @s.job("no_ctx")
    async def no_ctx() -> None:  # registered with the wrong signature: calling it raises TypeError
        pass

    async with s:
        yield s


# ----- the error tree ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_class_is_a_skedulr_error(name: str) -> None:
    cls = getattr(errors, name)
    assert inspect.isclass(cls)
    assert issubclass(cls, errors.SkedulrError)
    assert issubclass(cls, Exception)
    assert cls.__module__ == "skedulr.errors"


def test_every_error_class_in_the_module_is_listed() -> None:
    defined = {
        n for n, v in vars(errors).items() if inspect.isclass(v) and issubclass(v, BaseException) and v is not Exception
    }
    defined = {n for n in defined if getattr(errors, n).__module__ == "skedulr.errors"}
    assert defined == set(errors.__all__)


def test_input_errors_are_value_errors_and_lookups_are_lookup_errors() -> None:
    # Callers that catch the builtin categories keep working.
    assert issubclass(errors.InvalidTaskError, ValueError)
    for cls in (errors.UnknownJobError, errors.UnknownPoolError, errors.TaskNotFoundError):
        assert issubclass(cls, LookupError)
    for cls in (
        errors.InvalidNameError,
        errors.InvalidOptionError,
        errors.InvalidCronError,
        errors.InvalidTimeZoneError,
        errors.UnknownJobError,
        errors.UnknownPoolError,
        errors.DuplicateTaskError,
        errors.UnknownParentError,
        errors.CycleError,
    ):
        assert issubclass(cls, errors.InvalidTaskError)
    assert issubclass(errors.CycleError, errors.DagError)
    assert issubclass(errors.UnknownParentError, errors.DagError)


# ----- jobs and pools that do not exist ---------------------------------------------------------------


async def test_unknown_job_name_is_refused_at_submit(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.UnknownJobError) as excinfo:
        await live.submit(Task("no_such_job"))
    message = _refusal(excinfo, "no_such_job", "@scheduler.job('no_such_job')")
    assert "echo" in message  # names what is registered
    assert await _count_tasks(live) == 0
    await _still_works(live)


async def test_unknown_job_in_a_batch_stores_nothing(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.UnknownJobError):
        await live.submit_many([Task("echo", id="fine-1"), Task("no_such_job")])
    with pytest.raises(errors.TaskNotFoundError):
        await live.get("fine-1")
    await _still_works(live)


async def test_unknown_pool_is_refused_at_submit(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.UnknownPoolError) as excinfo:
        await live.submit(Task("echo", pool="nowhere"))
    message = _refusal(excinfo, "nowhere", "scale_pool('nowhere', n)")
    assert "side" in message and "default" in message  # names the pools that exist
    assert await _count_tasks(live) == 0
    await _still_works(live)


async def test_unknown_pool_for_pause_and_resume(autojump_clock: Any, live: Scheduler) -> None:
    for op in (live.pause, live.resume):
        with pytest.raises(errors.UnknownPoolError) as excinfo:
            op("nowhere")
        _refusal(excinfo, "scale_pool")
    await _still_works(live)


async def test_task_of_a_job_this_scheduler_does_not_know_is_recorded_dead(
    autojump_clock: Any, live: Scheduler
) -> None:
    # Another instance sharing the storage may submit jobs this one never registered: the attempt fails
    # with UnknownJobError (no retries: they could not help), and the worker goes on.
    spec = (None, "registered_elsewhere", "default", b"", 0, RETRIES, 0, None, None, [], None)
    tid, created = await live.storage.submit(spec, live._clock.now_ms())
    assert created
    live.resume()  # wakes the fetchers: this submit went around the scheduler
    info = await live.wait(tid, timeout=30)
    assert info.status is TaskStatus.DEAD
    assert info.attempts == 1
    assert info.error is not None and info.error.startswith("UnknownJobError")
    assert "registered_elsewhere" in info.error
    await _still_works(live)


# ----- names, ids, keys -------------------------------------------------------------------------------

BAD_NAMES = [
    "",
    "has space",
    "slash/",
    "ünïcode",
    "tab\there",
    "new\nline",
    "semi;colon",
    "{hash-tag}",
    "star*",
    "x" * (_core.MAX_NAME_LEN + 1),
]
GOOD_NAMES = ["a", "A-z_0.9:@", "x" * _core.MAX_NAME_LEN]


def test_the_alphabet_constants() -> None:
    assert _core.MAX_NAME_LEN == 128
    assert _core.MAX_KEY_LEN == 256
    for piece in ("letters", "digits", "_", "-", ".", ":", "@"):
        assert piece in _core.NAME_ALPHABET


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=140) | st.from_regex(NAME_RE, fullmatch=True))
def test_validate_name_accepts_exactly_the_documented_alphabet(value: str) -> None:
    expected_ok = bool(NAME_RE.fullmatch(value)) and len(value) <= _core.MAX_NAME_LEN
    try:
        _core.validate_name("task id", value)
    except errors.InvalidNameError as e:
        assert not expected_ok, f"{value!r} refused: {e}"
        assert _core.NAME_ALPHABET in str(e) and "task id" in str(e)
    else:
        assert expected_ok, f"{value!r} accepted"


@pytest.mark.parametrize("bad", BAD_NAMES)
async def test_invalid_task_id_is_refused(autojump_clock: Any, live: Scheduler, bad: str) -> None:
    with pytest.raises(errors.InvalidNameError) as excinfo:
        await live.submit(Task("echo", id=bad))
    _refusal(excinfo, "task id", _core.NAME_ALPHABET, f"1 to {_core.MAX_NAME_LEN} characters")
    assert await _count_tasks(live) == 0
    await _still_works(live)


@pytest.mark.parametrize("good", GOOD_NAMES)
async def test_valid_task_ids_at_the_edges_are_accepted(autojump_clock: Any, live: Scheduler, good: str) -> None:
    tid = await live.submit(Task("echo", id=good, payload="x"))
    assert tid == good
    assert (await live.wait(tid, timeout=30)).status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("bad", [*BAD_NAMES[:-1], "k" * (_core.MAX_KEY_LEN + 1)])
async def test_invalid_idempotency_key_is_refused(autojump_clock: Any, live: Scheduler, bad: str) -> None:
    with pytest.raises(errors.InvalidNameError) as excinfo:
        await live.submit(Task("echo", key=bad))
    _refusal(excinfo, "idempotency key", _core.NAME_ALPHABET, f"1 to {_core.MAX_KEY_LEN} characters")
    assert await _count_tasks(live) == 0
    await _still_works(live)


async def test_idempotency_key_of_the_longest_length_is_accepted(autojump_clock: Any, live: Scheduler) -> None:
    key = "k" * _core.MAX_KEY_LEN
    first = await live.submit(Task("echo", key=key, payload="1"))
    second = await live.submit(Task("echo", key=key, payload="2"))
    assert first == second


@pytest.mark.parametrize("field", ["id", "key"])
async def test_non_str_id_or_key_is_refused_with_a_skedulr_error(
    autojump_clock: Any, live: Scheduler, field: str
) -> None:
    with pytest.raises(errors.InvalidTaskError):
        await live.submit(Task("echo", **{field: 5}))


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_pool_name_is_refused_when_creating_the_pool(bad: str) -> None:
    with pytest.raises(errors.InvalidNameError) as excinfo:
        Scheduler(pools={bad: 1})
    _refusal(excinfo, "pool name", _core.NAME_ALPHABET)
    with pytest.raises(errors.InvalidNameError):
        Scheduler().scale_pool(bad, 1)


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_job_name_is_refused_at_registration(bad: str) -> None:
    s = Scheduler()
    with pytest.raises(errors.InvalidNameError) as excinfo:
        s.register_job(bad, lambda ctx: None)
    _refusal(excinfo, "job name", _core.NAME_ALPHABET)
    with pytest.raises(errors.InvalidNameError):
        s.job(bad)(lambda ctx: None)


@pytest.mark.parametrize("bad", ["has space", "slash/", "x" * 129])
async def test_invalid_job_and_pool_names_are_refused_at_submit(autojump_clock: Any, live: Scheduler, bad: str) -> None:
    # A name that could never have been registered is unknown; the refusal is an input error either way.
    with pytest.raises((errors.UnknownJobError, errors.InvalidNameError)) as excinfo:
        await live.submit(Task(bad))
    _refusal(excinfo)
    with pytest.raises((errors.UnknownPoolError, errors.InvalidNameError)):
        await live.submit(Task("echo", pool=bad))
    assert await _count_tasks(live) == 0
    await _still_works(live)


@pytest.mark.parametrize("kind", ["job name", "pool name"])
async def test_storage_validates_job_and_pool_names_itself(kind: str) -> None:
    # The storage is shared by instances and tools that do not go through a Scheduler.
    storage = MemoryStorage()
    name, pool = ("bad name", "default") if kind == "job name" else ("echo", "bad pool")
    with pytest.raises(errors.InvalidNameError) as excinfo:
        await storage.submit((None, name, pool, b"", 0, 0, 0, None, None, [], None), 0)
    _refusal(excinfo, kind, _core.NAME_ALPHABET)
    assert len(storage._engine) == 0


def test_name_must_be_a_str() -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task(5)  # type: ignore[arg-type]
    _refusal(excinfo, "job name must be a str")


def test_str_and_int_subclasses_are_taken_like_their_base_and_bools_are_not_ints() -> None:
    class Jobs(enum.StrEnum):
        ECHO = "echo"

    class Level(enum.IntEnum):
        HIGH = 5

    task = Task(Jobs.ECHO, priority=Level.HIGH, max_retries=Level.HIGH, pool=Jobs.ECHO)
    assert (task.name, task.priority, task.max_retries, task.pool) == ("echo", 5, 5, "echo")
    for bad in ({"priority": True}, {"max_retries": False}, {"max_retries": -1}, {"max_retries": 1.0}):
        with pytest.raises(errors.InvalidOptionError):
            Task("echo", **bad)


# ----- priorities -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [_core.MAX_PRIORITY + 1, _core.MIN_PRIORITY - 1, 10**20, -(10**20)])
async def test_priority_out_of_range_is_refused(autojump_clock: Any, live: Scheduler, bad: int) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.submit(Task("echo", priority=bad))
    _refusal(excinfo, f"from {_core.MIN_PRIORITY} to {_core.MAX_PRIORITY}")
    await _still_works(live)


@pytest.mark.parametrize("bad", [1.5, 2.0, "5", None, True, float("nan")])
def test_priority_must_be_an_int(bad: Any) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task("echo", priority=bad)
    _refusal(excinfo, "priority must be an int")


@pytest.mark.parametrize("edge", [_core.MIN_PRIORITY, _core.MAX_PRIORITY])
async def test_priority_at_the_edges_is_accepted(autojump_clock: Any, live: Scheduler, edge: int) -> None:
    tid = await live.submit(Task("echo", priority=edge, payload="e"))
    info = await live.wait(tid, timeout=30)
    assert info.priority == edge and info.status is TaskStatus.SUCCEEDED


async def test_priority_out_of_range_is_refused_by_the_storage_too() -> None:
    storage = MemoryStorage()
    spec = (None, "echo", "default", b"", _core.MAX_PRIORITY + 1, 0, 0, None, None, [], None)
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await storage.submit(spec, 0)
    _refusal(excinfo, "out of range")


# ----- timeouts, delays, run_at, retries ------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (-1, "must be a number of seconds >= 0"),
        (-0.001, "must be a number of seconds >= 0"),
        (float("nan"), "must be a number of seconds >= 0"),
        (float("inf"), "must be a number of seconds >= 0"),
        (0, "timeout must be positive"),
        ("3", "must be a number of seconds >= 0"),
        (True, "must be a number of seconds >= 0"),
    ],
)
def test_bad_timeout_is_refused(bad: Any, fragment: str) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task("echo", timeout=bad)
    _refusal(excinfo, fragment)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (-1, "must be a number of seconds >= 0"),
        (float("nan"), "must be a number of seconds >= 0"),
        (float("-inf"), "must be a number of seconds >= 0"),
        (float("inf"), "must be a number of seconds >= 0"),
        ("1", "must be a number of seconds >= 0"),
    ],
)
def test_bad_delay_is_refused(bad: Any, fragment: str) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task("echo", delay=bad)
    _refusal(excinfo, fragment)


@pytest.mark.parametrize("field", ["timeout", "delay"])
async def test_huge_timeout_or_delay_is_refused_with_a_skedulr_error(
    autojump_clock: Any, live: Scheduler, field: str
) -> None:
    with pytest.raises(errors.InvalidOptionError):
        await live.submit(Task("echo", **{field: 1e300}))


def test_delay_and_run_at_together_are_refused() -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task("echo", delay=5, run_at=datetime.now(UTC) + timedelta(seconds=5))
    _refusal(excinfo, "either delay or run_at, not both")


@pytest.mark.parametrize("bad", [datetime(2030, 1, 1), "2030-01-01T00:00:00Z", 1893456000])
def test_run_at_must_be_an_aware_datetime(bad: Any) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task("echo", run_at=bad)
    _refusal(excinfo, "timezone-aware datetime")


async def test_run_at_in_the_past_runs_now(autojump_clock: Any, live: Scheduler) -> None:
    tid = await live.submit(Task("echo", payload="old", run_at=datetime(2000, 1, 1, tzinfo=UTC)))
    assert (await live.wait(tid, timeout=30)).status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_max_retries_is_refused(bad: Any) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task("echo", max_retries=bad)
    _refusal(excinfo, "max_retries must be an int >= 0")


async def test_too_many_retries_is_refused_at_submit(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.submit(Task("echo", max_retries=_core.MAX_RETRIES + 1))
    _refusal(excinfo, f"use 0 to {_core.MAX_RETRIES}")
    assert await _count_tasks(live) == 0
    await _still_works(live)


# ----- payloads ---------------------------------------------------------------------------------------


async def test_payload_over_the_cap_is_refused(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.submit(Task("echo", payload=b"x" * (PAYLOAD_CAP + 1)))
    _refusal(excinfo, f"{PAYLOAD_CAP + 1} bytes", f"{PAYLOAD_CAP}-byte cap", "store large data elsewhere")
    # JSON payloads count by their encoded size.
    with pytest.raises(errors.InvalidOptionError):
        await live.submit(Task("echo", payload={"k": "v" * PAYLOAD_CAP}))
    assert await _count_tasks(live) == 0
    await _still_works(live)


async def test_payload_at_the_cap_is_accepted(autojump_clock: Any, live: Scheduler) -> None:
    text = "y" * PAYLOAD_CAP
    tid = await live.submit(Task("echo", payload=text))
    info = await live.wait(tid, timeout=30)
    assert info.status is TaskStatus.SUCCEEDED and info.result == text


@pytest.mark.parametrize(
    "bad",
    [{1, 2}, object(), {"n": float("nan")}, [float("inf")], {"when": datetime(2030, 1, 1)}, {(1, 2): 3}],
    ids=["set", "object", "nan", "inf", "datetime", "tuple-key"],
)
def test_non_serialisable_payload_is_refused(bad: Any) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task("echo", payload=bad)
    _refusal(excinfo, "payload must be bytes, str or JSON-serialisable")


# ----- cron specs and time zones ----------------------------------------------------------------------

BAD_CRONS = [
    "",
    "* * * *",
    "* * * * * *",
    "61 * * * *",
    "* 24 * * *",
    "* * 0 * *",
    "* * * 13 *",
    "* * * * 8",
    "*/0 * * * *",
    "* * * * FRI-MON",
    "0 0 30 2 *",
    "@reboot",
    "@sometimes",
    "a b c d e",
]


@pytest.mark.parametrize("spec", BAD_CRONS)
async def test_invalid_cron_spec_is_refused(autojump_clock: Any, live: Scheduler, spec: str) -> None:
    with pytest.raises(errors.InvalidCronError) as excinfo:
        await live.schedule_cron(spec, Task("echo"))
    _refusal(excinfo, "invalid cron spec")
    assert await live.list_schedules() == []
    await _still_works(live)


async def test_cron_error_messages_say_what_is_allowed(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.InvalidCronError) as excinfo:
        await live.schedule_cron("61 * * * *", Task("echo"))
    _refusal(excinfo, "minute", "0-59")
    with pytest.raises(errors.InvalidCronError) as excinfo:
        await live.schedule_cron("* * * *", Task("echo"))
    _refusal(excinfo, "5 fields", "@daily")
    with pytest.raises(errors.InvalidCronError) as excinfo:
        await live.schedule_cron("0 0 30 2 *", Task("echo"))
    _refusal(excinfo, "never fires")


async def test_cron_spec_must_be_a_str(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.schedule_cron(5, Task("echo"))  # type: ignore[arg-type]
    _refusal(excinfo, "'*/5 * * * *'")


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "Europe/Berln", "", "+02:00", "CEST"])
async def test_unknown_time_zone_is_refused(autojump_clock: Any, live: Scheduler, tz: str) -> None:
    with pytest.raises(errors.InvalidTimeZoneError) as excinfo:
        await live.schedule_cron("*/5 * * * *", Task("echo"), tz=tz)
    _refusal(excinfo, "IANA name", "Europe/Berlin")
    assert await live.list_schedules() == []
    await _still_works(live)


async def test_time_zone_must_be_a_str(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.InvalidTaskError):
        await live.schedule_cron("*/5 * * * *", Task("echo"), tz=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "5"])
async def test_bad_interval_is_refused(autojump_clock: Any, live: Scheduler, bad: Any) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.schedule_every(bad, Task("echo"))
    _refusal(excinfo, "positive number of seconds")
    assert await live.list_schedules() == []


@pytest.mark.parametrize("field", ["id", "key", "on_success"])
async def test_schedule_template_cannot_name_an_id_key_or_parents(
    autojump_clock: Any, live: Scheduler, field: str
) -> None:
    parent = await live.submit(Task("echo", payload="p"))
    value = parent if field == "on_success" else "fixed"
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.schedule_every(10, Task("echo", **{field: value}))
    _refusal(excinfo, "every tick creates a new task")
    assert await live.list_schedules() == []
    await _still_works(live)


async def test_invalid_schedule_id_is_refused(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.InvalidNameError) as excinfo:
        await live.schedule_every(10, Task("echo"), id="not ok")
    _refusal(excinfo, "schedule id", _core.NAME_ALPHABET)


# ----- DAG edges --------------------------------------------------------------------------------------


async def test_dangling_parent_is_refused(autojump_clock: Any, live: Scheduler) -> None:
    for trigger in ("on_success", "on_failure", "on_complete"):
        with pytest.raises(errors.UnknownParentError) as excinfo:
            await live.submit(Task("echo", **{trigger: "ghost"}))
        _refusal(excinfo, '"ghost"', "submit the parent first")
    assert await _count_tasks(live) == 0
    await _still_works(live)


async def test_dangling_parent_in_a_batch_stores_nothing(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.UnknownParentError):
        await live.submit_many([Task("echo", id="b1"), Task("echo", id="b2", on_success=["b1", "ghost"])])
    assert await _count_tasks(live) == 0
    await _still_works(live)


async def test_self_parent_is_refused(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.CycleError) as excinfo:
        await live.submit(Task("echo", id="me", on_success="me"))
    _refusal(excinfo, '"me"', "itself")
    with pytest.raises(errors.CycleError):
        await live.submit_many([Task("echo", id="me", on_complete="me")])
    with pytest.raises(errors.TaskNotFoundError):
        await live.get("me")
    await _still_works(live)


@pytest.mark.parametrize("length", [2, 3])
async def test_cyclic_batch_is_refused_and_stores_nothing(autojump_clock: Any, live: Scheduler, length: int) -> None:
    ids = [f"c{i}" for i in range(length)]
    batch = [Task("echo", id=ids[i], on_success=ids[(i + 1) % length]) for i in range(length)]
    with pytest.raises(errors.CycleError) as excinfo:
        await live.submit_many([Task("echo", id="innocent"), *batch])
    _refusal(excinfo, "cycle", "cannot (indirectly) wait for itself")
    assert await _count_tasks(live) == 0
    await _still_works(live)


async def test_invalid_parent_id_is_refused(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.InvalidNameError) as excinfo:
        await live.submit(Task("echo", on_success="not a valid id"))
    _refusal(excinfo, "parent task id", _core.NAME_ALPHABET)
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Task("echo", on_failure=[1, 2])  # type: ignore[list-item]
    _refusal(excinfo, "takes task ids (str)")
    await _still_works(live)


async def test_duplicate_id_is_refused_and_the_first_task_is_untouched(autojump_clock: Any, live: Scheduler) -> None:
    first = await live.submit(Task("echo", id="dup", payload="first"))
    with pytest.raises(errors.DuplicateTaskError) as excinfo:
        await live.submit(Task("echo", id="dup", payload="second"))
    _refusal(excinfo, '"dup"', "choose another id or leave it out")
    info = await live.wait(first, timeout=30)
    assert info.result == "first" and info.payload == b"first"
    # ... also after it ended, and inside a batch, and within one batch
    with pytest.raises(errors.DuplicateTaskError):
        await live.submit(Task("echo", id="dup"))
    with pytest.raises(errors.DuplicateTaskError):
        await live.submit_many([Task("echo", id="new-1"), Task("echo", id="dup")])
    with pytest.raises(errors.DuplicateTaskError):
        await live.submit_many([Task("echo", id="twice"), Task("echo", id="twice")])
    for never in ("new-1", "twice"):
        with pytest.raises(errors.TaskNotFoundError):
            await live.get(never)
    assert await _count_tasks(live) == 1
    await _still_works(live)


# ----- jobs that fail ---------------------------------------------------------------------------------


async def test_job_that_raises_is_recorded_with_traceback_and_retried(autojump_clock: Any, live: Scheduler) -> None:
    tid = await live.submit(Task("boom"))
    info = await live.wait(tid, timeout=60)
    assert info.status is TaskStatus.DEAD
    assert info.attempts == RETRIES + 1
    assert info.error == f"ValueError: boom on attempt {RETRIES + 1}"  # the last attempt's error
    assert info.traceback is not None
    assert "Traceback (most recent call last)" in info.traceback
    assert "in boom" in info.traceback and "raise ValueError" in info.traceback
    dead = await live.list_tasks(status="failed")
    assert [t.id for t in dead.tasks] == [tid]
    stats = await live.stats()
    assert stats.failed == RETRIES + 1
    await _still_works(live)


async def test_sync_job_that_raises_is_recorded(autojump_clock: Any, live: Scheduler) -> None:
    tid = await live.submit(Task("sync_boom", max_retries=0))
    info = await live.wait(tid, timeout=60)
    assert info.status is TaskStatus.DEAD
    assert info.attempts == 1
    assert info.error == "KeyError: 'sync boom'"
    assert info.traceback is not None and "in sync_boom" in info.traceback
    await _still_works(live)


async def test_failed_attempt_then_success_clears_the_error(autojump_clock: Any, live: Scheduler) -> None:
    tid = await live.submit(Task("flaky"))
    info = await live.wait(tid, timeout=60)
    assert info.status is TaskStatus.SUCCEEDED
    assert info.attempts == 2
    assert info.result == "second time lucky"
    assert info.error is None and info.traceback is None


async def test_job_returning_something_unstorable_goes_dead_without_retries(
    autojump_clock: Any, live: Scheduler
) -> None:
    tid = await live.submit(Task("bad_result"))
    info = await live.wait(tid, timeout=60)
    assert info.status is TaskStatus.DEAD
    assert info.attempts == 1
    assert info.error is not None and info.error.startswith("ResultNotSerializableError")
    assert "_NotSerialisable" in info.error
    await _still_works(live)


async def test_job_with_the_wrong_signature_fails_like_any_job(autojump_clock: Any, live: Scheduler) -> None:
    tid = await live.submit(Task("no_ctx", max_retries=1))
    info = await live.wait(tid, timeout=60)
    assert info.status is TaskStatus.DEAD
    assert info.attempts == 2
    assert info.error is not None and info.error.startswith("TypeError")


async def test_failures_do_not_touch_other_tasks(autojump_clock: Any, live: Scheduler) -> None:
    bad = [await live.submit(Task(name)) for name in ("boom", "sync_boom", "bad_result", "no_ctx")]
    good = [await live.submit(Task("echo", payload=str(i), pool="side")) for i in range(10)]
    good += [await live.submit(Task("echo", payload=str(i))) for i in range(10, 20)]
    for i, tid in enumerate(good):
        info = await live.wait(tid, timeout=60)
        assert info.status is TaskStatus.SUCCEEDED and info.result == str(i) and info.attempts == 1
    for tid in bad:
        assert (await live.wait(tid, timeout=60)).status is TaskStatus.DEAD
    await _still_works(live)


async def test_middleware_that_raises_before_the_job_fails_the_attempt(autojump_clock: Any, live: Scheduler) -> None:
    class Broken(Middleware):
        async def before_attempt(self, ctx: JobContext) -> None:
            if ctx.name == "flaky":
                raise RuntimeError("middleware broke")

    live.use(Broken())
    tid = await live.submit(Task("flaky", max_retries=0))
    info = await live.wait(tid, timeout=60)
    assert info.status is TaskStatus.DEAD
    assert info.error == "RuntimeError: middleware broke"
    await _still_works(live)


# ----- registration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [5, None, "echo", b"fn", [lambda ctx: None]])
def test_job_registered_with_a_non_callable_is_refused(bad: Any) -> None:
    s = Scheduler()
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        s.register_job("job", bad)
    _refusal(excinfo, "'job'", "must be a function")
    with pytest.raises(errors.InvalidOptionError):
        s.job("job")(bad)
    with pytest.raises(errors.UnknownJobError):  # nothing was registered
        s._jobs.require("job")


@pytest.mark.parametrize("bad", [-1, 0, float("nan")])
def test_job_registered_with_a_bad_timeout_is_refused(bad: float) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Scheduler().register_job("job", lambda ctx: None, timeout=bad)
    _refusal(excinfo, "timeout must be a positive number of seconds")


@pytest.mark.parametrize("bad", [float("inf"), "1"])
async def test_job_registered_with_an_infinite_or_str_timeout_is_refused(autojump_clock: Any, bad: Any) -> None:
    s = Scheduler()
    with pytest.raises(errors.InvalidOptionError):
        s.register_job("job", lambda ctx: None, timeout=bad)
        async with s:  # if registration let it through, submit must still not leak a non-skedulr error
            await s.submit(Task("job"))


def test_middleware_must_subclass_middleware() -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Scheduler().use(object())  # type: ignore[arg-type]
    _refusal(excinfo, "subclass skedulr.Middleware")


# ----- Scheduler(...) arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"lease_ttl": -1}, "lease_ttl must be a positive number of seconds"),
        ({"lease_ttl": 0}, "lease_ttl must be a positive number of seconds"),
        ({"lease_ttl": float("nan")}, "lease_ttl must be a positive number of seconds"),
        ({"lease_ttl": "30"}, "lease_ttl must be a positive number of seconds"),
        ({"block_limit": 0}, "block_limit must be a positive number of seconds"),
        ({"default_timeout": -5}, "default_timeout must be a positive number of seconds"),
        ({"default_timeout": float("inf")}, "default_timeout must be a positive number of seconds"),
        ({"shutdown_grace": -1}, "shutdown_grace must be a number of seconds >= 0"),
        ({"max_workers": -1}, "size must be an int from 0 to 10000"),
        ({"max_workers": 2.5}, "size must be an int from 0 to 10000"),
        ({"max_workers": "3"}, "size must be an int from 0 to 10000"),
        ({"max_workers": True}, "size must be an int from 0 to 10000"),
        ({"max_workers": 10_001}, "size must be an int from 0 to 10000"),
        ({"pools": {"p": -1}}, "pool 'p': size must be an int from 0 to 10000"),
        ({"pools": {"p": 1.0}}, "pool 'p': size must be an int from 0 to 10000"),
        ({"pools": {"p": None}}, "pool 'p': size must be an int from 0 to 10000"),
    ],
)
def test_bad_scheduler_arguments_are_refused(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        Scheduler(**kwargs)
    _refusal(excinfo, fragment)


@pytest.mark.parametrize("bad", [-1, 1.5, "2", 10_001])
def test_bad_pool_size_at_runtime_is_refused(bad: Any) -> None:
    s = Scheduler(pools={"p": 1})
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        s.scale_pool("p", bad)
    _refusal(excinfo, "size must be an int from 0 to 10000")
    assert s.pools["p"] == 1


@pytest.mark.parametrize("bad", [5, "exponential", object()])
def test_retry_must_be_a_retry_policy(bad: Any) -> None:
    with pytest.raises(errors.InvalidOptionError):
        Scheduler(retry=bad)


async def test_permanent_errors_must_be_exception_types(autojump_clock: Any) -> None:
    with pytest.raises(errors.InvalidOptionError):
        s = Scheduler(permanent_errors=[5])  # type: ignore[list-item]

        @s.job("boom")
        async def boom(ctx: JobContext) -> None:
            raise ValueError("boom")

        async with s:  # if the constructor let it through, a failing job must not crash the worker
            tid = await s.submit(Task("boom", max_retries=0))
            assert (await s.wait(tid, timeout=30)).status is TaskStatus.DEAD


async def test_running_a_scheduler_twice_is_refused(autojump_clock: Any, live: Scheduler) -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(errors.InvalidOptionError) as excinfo:
            await nursery.start(live.run)
    _refusal(excinfo, "already running")
    await _still_works(live)


# ----- reading and operating --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 10_001, 1.5, True, "10"])
async def test_bad_list_limit_is_refused(autojump_clock: Any, live: Scheduler, bad: Any) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.list_tasks(limit=bad)
    _refusal(excinfo, "limit must be an int from 1 to 10000")
    await _still_works(live)


@pytest.mark.parametrize("bad", ["bogus", "QUEUED", "fail", ["queued", "nope"]])
async def test_unknown_status_filter_is_refused(autojump_clock: Any, live: Scheduler, bad: Any) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.list_tasks(status=bad)
    message = _refusal(excinfo, "unknown status")
    for status in TaskStatus:
        assert status.value in message  # lists what is allowed
    await _still_works(live)


@pytest.mark.parametrize("bad", ["not-a-cursor", "-1", "1.5", "9" * 25])
async def test_bad_list_cursor_is_refused(autojump_clock: Any, live: Scheduler, bad: str) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await live.list_tasks(cursor=bad)
    _refusal(excinfo, "next_cursor")
    await _still_works(live)


async def test_a_cursor_from_list_tasks_pages_on(autojump_clock: Any, live: Scheduler) -> None:
    ids = [await live.submit(Task("echo", delay=3600)) for _ in range(5)]
    first = await live.list_tasks(limit=2)
    assert first.next_cursor is not None
    second = await live.list_tasks(limit=10, cursor=first.next_cursor)
    assert [t.id for t in first.tasks + second.tasks] == ids[::-1]  # newest first
    assert second.next_cursor is None


@pytest.mark.parametrize("op", ["resubmit_dead", "purge_dead"])
async def test_negative_bulk_limit_is_refused(autojump_clock: Any, live: Scheduler, op: str) -> None:
    with pytest.raises(errors.InvalidOptionError):
        await getattr(live, op)(limit=-1)


async def test_resubmit_of_a_task_that_is_not_dead_is_refused(autojump_clock: Any, live: Scheduler) -> None:
    done = await live.submit(Task("echo", payload="d"))
    await live.wait(done, timeout=30)
    later = await live.submit(Task("echo", delay=3600))
    for tid, status in ((done, "succeeded"), (later, "scheduled")):
        with pytest.raises(errors.InvalidStateError) as excinfo:
            await live.resubmit(tid)
        _refusal(excinfo, f"is {status}", "only dead tasks can be resubmitted")
    assert (await live.get(later)).status is TaskStatus.SCHEDULED
    assert (await live.get(done)).attempts == 1
    await _still_works(live)


async def test_resubmit_of_a_dead_task_runs_it_again(autojump_clock: Any, live: Scheduler) -> None:
    tid = await live.submit(Task("flaky", max_retries=0))
    assert (await live.wait(tid, timeout=30)).status is TaskStatus.DEAD
    await live.resubmit(tid)
    info = await live.wait(tid, timeout=30)
    # A fresh attempt budget: attempt numbering restarts, so the flaky job fails again on "attempt 1".
    assert info.status is TaskStatus.DEAD and info.attempts == 1


async def test_purge_of_a_live_task_is_refused(autojump_clock: Any, live: Scheduler) -> None:
    later = await live.submit(Task("echo", delay=3600))
    with pytest.raises(errors.InvalidStateError) as excinfo:
        await live.purge(later)
    _refusal(excinfo, "cancel it before purging")
    assert (await live.get(later)).status is TaskStatus.SCHEDULED


@pytest.mark.parametrize("op", ["get", "cancel", "resubmit", "purge", "wait"])
async def test_unknown_task_id_is_not_found(autojump_clock: Any, live: Scheduler, op: str) -> None:
    with pytest.raises(errors.TaskNotFoundError) as excinfo:
        await getattr(live, op)("never-was")
    _refusal(excinfo, '"never-was"')
    await _still_works(live)


async def test_unknown_schedule_id_is_not_found(autojump_clock: Any, live: Scheduler) -> None:
    with pytest.raises(errors.ScheduleNotFoundError) as excinfo:
        await live.unschedule("never-was")
    _refusal(excinfo, '"never-was"')


async def test_cancel_of_an_ended_task_reports_false(autojump_clock: Any, live: Scheduler) -> None:
    tid = await live.submit(Task("echo", payload="c"))
    await live.wait(tid, timeout=30)
    assert await live.cancel(tid) is False
    assert (await live.get(tid)).status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("op", ["submit", "submit_many"])
async def test_submit_takes_tasks(autojump_clock: Any, live: Scheduler, op: str) -> None:
    arg: Any = "echo" if op == "submit" else ["echo"]
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        await getattr(live, op)(arg)
    _refusal(excinfo, "skedulr.Task")
    await _still_works(live)


# ----- before the scheduler runs ----------------------------------------------------------------------


async def test_submit_before_the_scheduler_runs_is_stored_and_runs_once_it_starts(autojump_clock: Any) -> None:
    # Nothing refuses a submit to a stopped scheduler (SchedulerNotRunningError is raised nowhere): the task
    # goes to the storage, which outlives schedulers (README: "a new Scheduler on the same MemoryStorage runs
    # them"), and runs once the scheduler starts. Refusals of bad input apply all the same.
    s = Scheduler(storage=MemoryStorage())

    @s.job("echo")
    async def echo(ctx: JobContext) -> str:
        return ctx.text()

    assert not s.is_running
    tid = await s.submit(Task("echo", payload="early"))
    assert (await s.get(tid)).status is TaskStatus.QUEUED
    with pytest.raises(errors.UnknownJobError):
        await s.submit(Task("nope"))
    with pytest.raises(errors.UnknownPoolError):
        await s.submit(Task("echo", pool="nowhere"))
    async with s:
        info = await s.wait(tid, timeout=30)
    assert info.status is TaskStatus.SUCCEEDED and info.result == "early"
    assert not s.is_running


async def test_submit_after_the_scheduler_stopped_waits_for_the_next_one(autojump_clock: Any) -> None:
    storage = MemoryStorage()
    first = Scheduler(storage=storage)
    first.register_job("echo", _echo)
    async with first:
        pass
    tid = await first.submit(Task("echo", payload="later"))
    assert (await first.get(tid)).status is TaskStatus.QUEUED
    second = Scheduler(storage=storage)
    second.register_job("echo", _echo)
    async with second:
        assert (await second.wait(tid, timeout=30)).result == "later"


async def _echo(ctx: JobContext) -> str:
    return ctx.text()
