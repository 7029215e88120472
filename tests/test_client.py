"""The synchronous Client against a real Redis, with a Trio scheduler doing the work."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest
import redis
import trio

from skedulr import Client, RedisStorage, Scheduler, Task, TaskStatus
from skedulr.errors import InvalidOptionError, InvalidStateError, TaskNotFoundError, UnknownParentError


@pytest.fixture
def prefix() -> str:
    return f"client-{os.urandom(4).hex()}"


def test_submit_get_list_cancel_without_trio(redis_url: str, prefix: str) -> None:
    with Client(redis_url, prefix=prefix) as client:
        first = client.submit(Task("echo", payload="a", delay=60))
        second = client.submit(Task("echo", payload="b", key="only-once"))
        assert client.submit(Task("echo", payload="b", key="only-once")) == second
        assert client.get(first).status is TaskStatus.SCHEDULED
        assert client.get(second).status is TaskStatus.QUEUED
        assert [t.id for t in client.list_tasks().tasks] == [second, first]
        assert client.cancel(first) is True
        assert client.cancel(first) is False
        assert client.get(first).status is TaskStatus.CANCELLED
        with pytest.raises(TaskNotFoundError):
            client.get("no-such-task")
        with pytest.raises(UnknownParentError):
            client.submit(Task("echo", on_success="no-such-task"))
        with pytest.raises(InvalidStateError):
            client.resubmit(second)
        assert "redis://" in repr(client)


@pytest.mark.parametrize(("skew_ms", "delay"), [(60_000, 1.0), (-60_000, 30.0)])
def test_a_delay_counts_on_the_servers_clock_whatever_the_submitters(
    redis_url: str, prefix: str, skew_ms: int, delay: float
) -> None:
    """A submitter whose clock is a minute ahead (or behind) still gets the delay it asked for: the task
    is due `delay` after the submit on the Redis server's clock, neither a minute late nor at once."""
    server = redis.Redis.from_url(redis_url)
    with Client(redis_url, prefix=prefix) as client:
        client._now = lambda: int(time.time() * 1000) + skew_ms  # type: ignore[method-assign]
        before = _server_ms(server)
        task_id = client.submit(Task("echo", delay=delay))
        info = client.get(task_id)
    server.close()
    assert info.status is TaskStatus.SCHEDULED
    assert info.run_at is not None
    due_in_ms = info.run_at.timestamp() * 1000 - before
    assert delay * 1000 <= due_in_ms < delay * 1000 + 1000, due_in_ms


@pytest.mark.parametrize("skew_ms", [60_000, -60_000])
def test_a_run_at_is_the_moment_it_names_on_the_servers_clock(redis_url: str, prefix: str, skew_ms: int) -> None:
    """A run_at names a moment: the task is due then on the Redis server's clock, whatever the clock of
    the machine that submitted it says."""
    server = redis.Redis.from_url(redis_url)
    with Client(redis_url, prefix=prefix) as client:
        client._now = lambda: int(time.time() * 1000) + skew_ms  # type: ignore[method-assign]
        moment = _server_ms(server) + 30_000
        task_id = client.submit(Task("echo", run_at=datetime.fromtimestamp(moment / 1000, tz=UTC)))
        info = client.get(task_id)
    server.close()
    assert info.status is TaskStatus.SCHEDULED
    assert info.run_at is not None and abs(info.run_at.timestamp() * 1000 - moment) <= 1, info.run_at


def _server_ms(server: redis.Redis) -> int:
    seconds, micros = server.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_workers_run_what_the_client_submits(redis_url: str, prefix: str) -> None:
    sched = Scheduler(RedisStorage(redis_url, prefix=prefix), max_workers=4)
    attempts: list[int] = []

    @sched.job("flaky")
    async def flaky(ctx):  # type: ignore[no-untyped-def]
        attempts.append(ctx.attempt)
        if len(attempts) == 1:
            raise RuntimeError("first run fails")
        return ctx.json()

    client = Client(redis_url, prefix=prefix, default_max_retries=0)
    try:
        tid = client.submit(Task("flaky", payload={"n": 1}))
        async with sched:
            with trio.fail_after(10):
                while client.get(tid).status is not TaskStatus.DEAD:
                    await trio.sleep(0.01)
            assert client.resubmit_dead(name="flaky") == [tid]
            info = await sched.wait(tid, timeout=10)
        assert info.status is TaskStatus.SUCCEEDED
        assert client.get(tid).result == {"n": 1}
        assert attempts == [1, 1]  # the resubmitted task starts a fresh attempt budget
    finally:
        client.close()


async def test_a_pool_set_through_the_client_reaches_running_workers(redis_url: str, prefix: str) -> None:
    sched = Scheduler(RedisStorage(redis_url, prefix=prefix), max_workers=1)
    with Client(redis_url, prefix=prefix) as client:
        async with sched:
            client.set_pool("reports", size=4)
            client.set_pool("default", paused=True)
            with trio.fail_after(5):  # the wake-up hint brings it well before the next poll
                while sched.pools.get("reports") != 4 or not (await sched.stats()).pools["default"].paused:
                    await trio.sleep(0.01)


def test_a_large_batch_from_the_client_is_staged_and_all_or_nothing(redis_url: str, prefix: str) -> None:
    # more than a part: sent as parts and one commit, not as one long script that would hold Redis
    client_redis = redis.Redis.from_url(redis_url)
    with Client(redis_url, prefix=prefix, max_payload_bytes=100) as client:
        with pytest.raises(InvalidOptionError, match="100-byte cap"):
            client.submit_many([Task("echo", payload=b"x" * (500 if i == 2400 else 1)) for i in range(2500)])
        assert client.list_tasks().tasks == []
        assert client_redis.keys(f"{{{prefix}}}:t:*") == []  # the parts sent were dropped
        client_redis.config_resetstat()
        ids = client.submit_many([Task("echo", payload=str(i)) for i in range(2500)])
        calls = int(client_redis.info("commandstats")["cmdstat_evalsha"]["calls"])
        assert calls >= 4, "not staged: sent as one script call"
        assert len(set(ids)) == 2500
        assert [t.id for t in client.list_tasks(limit=3000).tasks] == ids[::-1]
        assert client.get(ids[-1]).payload == b"2499"
        staged = client_redis.keys(f"{{{prefix}}}:s:*")
        assert sorted(client_redis.get(k) for k in staged) == [b"committed", b"dropped"]  # only end marks left


async def test_the_client_sees_the_running_instances(redis_url: str, prefix: str) -> None:
    sched = Scheduler(RedisStorage(redis_url, prefix=prefix), pools={"mail": 3}, lease_ttl=2.0)
    with Client(redis_url, prefix=prefix) as client:
        assert client.instances() == []
        async with sched:
            (seen,) = client.instances()
            assert (seen.id, seen.pid, seen.pools) == (sched.instance_id, os.getpid(), {"default": 10, "mail": 3})
        assert client.instances() == [], "an instance that stopped is still listed"


@pytest.mark.parametrize("how", ["submit", "submit_many"])
async def test_a_delayed_task_from_the_client_starts_on_time(redis_url: str, prefix: str, how: str) -> None:
    """A worker idles until the earliest due time it knows (or its poll interval, 30 s here): a task the
    client schedules earlier than that must wake it, or it starts up to a poll interval late."""
    sched = Scheduler(RedisStorage(redis_url, prefix=prefix, poll_interval=30.0), max_workers=2)
    started: list[float] = []

    @sched.job("echo")
    async def echo(ctx):  # type: ignore[no-untyped-def]
        started.append(time.monotonic())

    with Client(redis_url, prefix=prefix) as client:
        async with sched:
            client.submit(Task("echo", delay=20.0))  # what the worker sleeps until
            await trio.sleep(0.3)  # the worker has read it and sleeps
            sent = time.monotonic()
            if how == "submit":
                client.submit(Task("echo", delay=0.5))
            else:  # a staged bulk submit (over 1,000 tasks)
                client.submit_many([Task("echo", delay=0.5)] + [Task("echo", delay=60.0) for _ in range(1500)])
            with trio.fail_after(5):
                while not started:
                    await trio.sleep(0.01)
    assert 0.5 <= started[0] - sent < 1.0, started[0] - sent
