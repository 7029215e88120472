"""A worker that cannot renew a lease (Redis stopped answering: frozen here with SIGSTOP, as a network
partition would look) stops the job before the lease can have run out, so no other instance can start the
task while it still runs here. Once Redis answers again, the task comes back through the reaper and runs
to the end (handed back, or reaped if its lease ran out meanwhile), whatever the stopped job returned."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import trio

import skedulr.scheduler as scheduler_module
from redis_fixtures import RedisServer, free_port, lease_deadline
from skedulr import RedisStorage, Scheduler, Task, TaskStatus

LEASE = 1.5  # seconds


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A redis-server of this test's own, to freeze: its URL and pid."""
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        assert server._process is not None
        yield server.url, server._process.pid
    finally:
        server.stop()


async def _wait_for_a_renewal(client: redis.Redis, tag: str, task_id: str) -> float:
    """Waits until the task's lease has just been renewed (its deadline moved), and returns that deadline
    as a `time.monotonic()` moment: Redis frozen now stays frozen for the most time the lease allows."""
    with trio.fail_after(10):
        while (first := lease_deadline(client, tag, task_id)) is None:
            await trio.sleep(0.005)
        while (deadline := lease_deadline(client, tag, task_id)) == first:
            await trio.sleep(0.005)
    seconds, micros = client.time()
    return time.monotonic() + (deadline - (seconds * 1000 + micros // 1000)) / 1000


async def test_a_job_whose_lease_cannot_be_renewed_stops_before_the_lease_ends(own_redis: tuple[str, int]) -> None:
    url, pid = own_redis
    lease = 3.0  # (the guard acts at 90 %: 0.3 s before the lease's end)
    sched = Scheduler(storage=RedisStorage(url, prefix="guard"), lease_ttl=lease)
    started: list[float] = []
    stopped: list[float] = []

    @sched.job("long")
    async def long(ctx):  # type: ignore[no-untyped-def]
        started.append(time.monotonic())
        if len(started) > 1:  # (a lease loss is not an attempt: ctx.attempt is 1 again)
            return "second run"
        try:
            await trio.sleep(60)
        finally:
            stopped.append(time.monotonic())

    client = redis.Redis.from_url(url)
    async with sched:
        task_id = await sched.submit(Task("long"))
        lease_ends = await _wait_for_a_renewal(client, sched.storage.tag, task_id)  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGSTOP)
        try:
            with trio.fail_after(lease * 2):
                while not stopped:
                    await trio.sleep(0.01)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert stopped[0] < lease_ends, f"stopped {stopped[0] - lease_ends:.3f}s after the lease could run out"
        info = await sched.wait(task_id, timeout=lease * 5)
    client.close()
    assert info.status is TaskStatus.SUCCEEDED and info.result == "second run", info
    # handed back once Redis answered, or reaped first if its lease had run out by then
    assert len(started) == 2 and info.lease_losses <= 1 and info.attempts == 1, info


async def test_a_sync_job_the_guard_stopped_is_handed_back_whatever_it_returns(
    own_redis: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread cannot be interrupted, only told (`ctx.cancelled`), and a job told to stop may return early:
    what it returns does not count. The task is handed back, with no lease loss (here Redis answered again
    before the lease ran out), and runs again."""
    monkeypatch.setattr(scheduler_module, "_LEASE_KEPT", 0.5)  # the guard acts at half a lease unconfirmed
    url, pid = own_redis
    sched = Scheduler(storage=RedisStorage(url, prefix="guard-sync"), lease_ttl=LEASE)
    runs: list[bool] = []  # whether each run saw ctx.cancelled

    @sched.job("slow")
    def slow(ctx):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + LEASE * 1.5
        while time.monotonic() < deadline:
            time.sleep(0.01)
        runs.append(ctx.cancelled)
        return f"run {len(runs)}"

    client = redis.Redis.from_url(url)
    async with sched:
        task_id = await sched.submit(Task("slow"))
        await _wait_for_a_renewal(client, sched.storage.tag, task_id)  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGSTOP)
        await trio.sleep(LEASE * 0.75)  # past the guard's half lease, before the lease's end
        os.kill(pid, signal.SIGCONT)
        info = await sched.wait(task_id, timeout=LEASE * 5)
    client.close()
    assert runs == [True, False], runs
    assert info.status is TaskStatus.SUCCEEDED and info.result == "run 2", info
    assert (info.attempts, info.lease_losses) == (1, 0), info
