"""The application the multi-process Redis tests run: `python -m skedulr worker redis_app:scheduler`.

Configured from the environment (the tests set it per worker process):

- `SKEDULR_TEST_REDIS`: Redis URL; `SKEDULR_TEST_PREFIX`: key prefix (one per test)
- `SKEDULR_TEST_LEASE`: lease TTL in seconds (default 2)
- `SKEDULR_TEST_WORKERS`: size of the default pool (default 10)
- `SKEDULR_TEST_GRACE`: shutdown grace in seconds (default 10)
- `SKEDULR_TEST_POLL`: seconds between looks for work without a wake-up hint (default 0.2)

Jobs that record their runs push `"<task id>:<pid>"` onto the plain list `<prefix>:runs` (outside the
storage's `{prefix}` keys) when they start, so a test can count executions per task and per process.
Every job returns the pid of the process that ran it, so a task's stored result names its last runner.

`scheduler` is a factory (the worker command calls it): importing this module reads no environment, so
a test can also `build(...)` a scheduler with the same jobs in its own process (to add a schedule, say).
"""

from __future__ import annotations

import os
import threading

import redis
import trio

from skedulr import ConstantBackoff, JobContext, Scheduler
from skedulr.storage.redis import RedisStorage

RETRY_DELAY = 3.0  # seconds between the attempts of `flaky`: long enough to restart every worker meanwhile

_recorder: redis.Redis | None = None
_recorder_lock = threading.Lock()


def runs_key(prefix: str) -> str:
    return f"{prefix}:runs"


def _record(ctx: JobContext) -> None:
    """RPUSH `<task id>:<pid>` onto the runs list, through a plain redis-py client (thread-safe)."""
    global _recorder
    storage = ctx.scheduler.storage
    assert isinstance(storage, RedisStorage)
    with _recorder_lock:
        if _recorder is None:
            _recorder = redis.Redis.from_url(storage.url, socket_timeout=5)
        client = _recorder
    client.rpush(runs_key(storage.prefix), f"{ctx.task_id}:{os.getpid()}")


def build(
    url: str,
    prefix: str,
    *,
    lease_ttl: float = 2.0,
    max_workers: int = 10,
    shutdown_grace: float = 10.0,
    poll_interval: float = 0.2,
) -> Scheduler:
    storage = RedisStorage(url, prefix=prefix, poll_interval=poll_interval)
    sched = Scheduler(storage=storage, lease_ttl=lease_ttl, max_workers=max_workers, shutdown_grace=shutdown_grace)

    @sched.job("quick")
    def quick(ctx: JobContext) -> int:
        """Records its run and returns (a sync job: it runs in a thread)."""
        _record(ctx)
        return os.getpid()

    @sched.job("slow")
    async def slow(ctx: JobContext) -> int:
        """Records its run, then sleeps for the payload's number of seconds (a payload that is not a
        number fails the attempt with ValueError, before anything is recorded)."""
        seconds = float(ctx.payload)
        _record(ctx)
        await trio.sleep(seconds)
        return os.getpid()

    @sched.job("plain")
    async def plain(ctx: JobContext) -> int:
        """Sleeps for the payload's seconds (0 if empty) and touches nothing else: usable while Redis is down."""
        await trio.sleep(float(ctx.payload or b"0"))
        return os.getpid()

    @sched.job("tick")
    def tick(ctx: JobContext) -> int:
        """The task a schedule submits: records its run."""
        _record(ctx)
        return os.getpid()

    @sched.job("flaky", retry=ConstantBackoff(max_retries=3, delay=RETRY_DELAY))
    def flaky(ctx: JobContext) -> int:
        """Records its run; its first attempt fails, so the task waits RETRY_DELAY seconds as retrying."""
        _record(ctx)
        if ctx.attempt < 2:
            raise RuntimeError(f"flaky: attempt {ctx.attempt} fails on purpose")
        return os.getpid()

    return sched


def scheduler() -> Scheduler:
    """The worker's scheduler, configured from the environment (see the module docstring)."""
    env = os.environ
    return build(
        env["SKEDULR_TEST_REDIS"],
        env["SKEDULR_TEST_PREFIX"],
        lease_ttl=float(env.get("SKEDULR_TEST_LEASE", "2")),
        max_workers=int(env.get("SKEDULR_TEST_WORKERS", "10")),
        shutdown_grace=float(env.get("SKEDULR_TEST_GRACE", "10")),
        poll_interval=float(env.get("SKEDULR_TEST_POLL", "0.2")),
    )
