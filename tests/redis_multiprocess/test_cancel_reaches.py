"""A cancel issued elsewhere (the synchronous `Client`, another scheduler with a `RedisStorage` of its own)
stops the job where it runs through the `{prefix}:cancel` pub/sub channel, in about a round trip.

Every worker here runs with `lease_ttl=30`: it renews its leases every 10 s and reaps every 15 s, so a
job that sees its cancellation within a second of the cancel call was told by the message, not by a
renewal that found the lease gone. The task then ends cancelled after one attempt: the stopped attempt
is neither retried nor handed back to the queue.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import trio
from redis_workers import Cluster, cluster_fixture, wait_for  # noqa: F401

from skedulr import Client, JobContext, RedisStorage, Scheduler, Task, TaskStatus

LEASE_TTL = 30.0  # heartbeats every 10 s, reaps every 15 s: far slower than the bound below
PROMPT = 1.0  # seconds from the cancel call to the job seeing it
GIVE_UP = 5.0  # a cancel that has not arrived by then is not coming by pub/sub


@pytest.fixture
def prefix() -> str:
    return f"cancel-{os.urandom(4).hex()}"


def _assert_ended_cancelled_once(redis_url: str, prefix: str, task_id: str, runs: list[int]) -> None:
    """Read after the worker stopped (it has flushed every outcome it had): cancelled, one attempt, and
    nothing left leased or queued for it."""
    with Client(redis_url, prefix=prefix) as client:
        info = client.get(task_id)
    assert (info.status, info.attempts, info.error) == (TaskStatus.CANCELLED, 1, "cancelled"), info
    assert runs == [1], f"the job ran again after its cancel: attempts {runs}"
    r = redis.Redis.from_url(redis_url)
    try:
        assert r.zcard(f"{{{prefix}}}:leases") == 0, "a lease was left behind"
        assert r.zcard(f"{{{prefix}}}:r:default") == 0, "the cancelled task went back to the queue"
    finally:
        r.close()


async def _cancel_and_expect_it_seen(
    entered: float, cancel: Callable[[], Any], seen_at: list[float], until: Callable[..., Any]
) -> None:
    """Cancels (`await cancel()`), then expects the job to note the moment it saw the cancel in `seen_at`
    within PROMPT seconds: long before a heartbeat could have told it (`entered`: when the scheduler
    started, so its first renewal is LEASE_TTL / 3 away)."""
    cancel_at = time.monotonic()
    assert cancel_at - entered < LEASE_TTL / 3 - GIVE_UP, "too slow to start: a heartbeat could interfere"
    assert await cancel() is True
    try:
        await until(lambda: seen_at, timeout=GIVE_UP)
    except trio.TooSlowError:
        pytest.fail(f"the job did not see the cancel within {GIVE_UP:g}s: no pub/sub message reached it")
    assert seen_at[0] - cancel_at < PROMPT, f"the job saw the cancel {seen_at[0] - cancel_at:.2f}s later"


async def test_a_client_cancel_stops_an_async_job_within_a_second(
    redis_url: str, prefix: str, until: Callable[..., Any]
) -> None:
    """The sync Client shares no process with the worker: only Redis can tell the worker."""
    sched = Scheduler(storage=RedisStorage(redis_url, prefix=prefix), lease_ttl=LEASE_TTL, max_workers=2)
    runs: list[int] = []
    stopped_at: list[float] = []

    @sched.job("long")
    async def long(ctx: JobContext) -> None:
        runs.append(ctx.attempt)
        try:
            await trio.sleep(60)
        finally:
            stopped_at.append(time.monotonic())

    with Client(redis_url, prefix=prefix) as client:
        async with sched:
            entered = time.monotonic()
            task_id = await trio.to_thread.run_sync(client.submit, Task("long", max_retries=3))
            await until(lambda: runs, timeout=10)
            await _cancel_and_expect_it_seen(
                entered, lambda: trio.to_thread.run_sync(client.cancel, task_id), stopped_at, until
            )
    _assert_ended_cancelled_once(redis_url, prefix, task_id, runs)


async def test_another_schedulers_cancel_stops_a_sync_job_within_a_second(
    redis_url: str, prefix: str, until: Callable[..., Any]
) -> None:
    """Two running schedulers, each with its own RedisStorage (own connections, own subscription): the
    one that cancels does not hold the task, so the other must hear of it; a sync job sees `ctx.cancelled`."""
    worker = Scheduler(storage=RedisStorage(redis_url, prefix=prefix), lease_ttl=LEASE_TTL, max_workers=2)
    operator = Scheduler(storage=RedisStorage(redis_url, prefix=prefix), lease_ttl=LEASE_TTL, max_workers=0)
    runs: list[int] = []
    saw_cancel_at: list[float] = []
    running = threading.Event()

    @worker.job("crunch")
    def crunch(ctx: JobContext) -> None:
        runs.append(ctx.attempt)
        running.set()
        give_up = time.monotonic() + 30  # a lost cancel must not hang the test's thread for ever
        while not ctx.cancelled and time.monotonic() < give_up:
            time.sleep(0.005)
        if ctx.cancelled:
            saw_cancel_at.append(time.monotonic())

    operator.register_job("crunch", crunch)  # known there too (Scheduler.submit checks), never run: 0 workers

    async with worker, operator:
        entered = time.monotonic()
        task_id = await operator.submit(Task("crunch", max_retries=3))
        await until(running.is_set, timeout=10)
        assert (await operator.get(task_id)).status is TaskStatus.RUNNING
        await _cancel_and_expect_it_seen(entered, lambda: operator.cancel(task_id), saw_cancel_at, until)
    _assert_ended_cancelled_once(redis_url, prefix, task_id, runs)


def test_a_client_cancel_stops_a_job_in_a_worker_process(cluster: Cluster) -> None:
    """A `skedulr worker` process with a 20 s shutdown grace: after the cancel, a SIGTERM ends it at once
    only if the job has already stopped (else the graceful shutdown waits for it, up to the grace)."""
    worker = cluster.spawn(lease=LEASE_TTL, grace=20)
    client = cluster.client()
    spawned = time.monotonic()
    task_id = client.submit(Task("slow", payload="60", max_retries=3))
    wait_for(lambda: cluster.runs().get(task_id), 10, lambda: f"the worker to start the job\n{cluster.logs()}")
    assert time.monotonic() - spawned < LEASE_TTL / 3 - GIVE_UP, "too slow to start: a heartbeat could interfere"
    cancel_at = time.monotonic()
    assert client.cancel(task_id) is True
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(GIVE_UP) == 0, worker.log()
    took = time.monotonic() - cancel_at
    assert took < PROMPT + 0.5, f"the worker needed {took:.2f}s to stop after the cancel: its job went on running"
    info = client.get(task_id)
    assert (info.status, info.attempts, info.error, info.result) == (TaskStatus.CANCELLED, 1, "cancelled", None), info
    assert cluster.runs()[task_id] == [worker.pid]
    r = cluster.redis()
    assert r.zcard(cluster.key("leases")) == 0, "a lease was left behind"
    assert r.zcard(cluster.key("r", "default")) == 0, "the cancelled task went back to the queue"
