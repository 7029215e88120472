"""A worker that cannot renew a lease (Redis stopped answering: frozen here with SIGSTOP, as a network
partition would look) stops the job before the lease can have run out, so no other instance can start the
task while it still runs here. Once Redis answers again, the task comes back through the reaper and runs
to the end."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import trio

from redis_fixtures import RedisServer, free_port
from skedulr import RedisStorage, Scheduler, Task, TaskStatus

LEASE = 1.5  # seconds


async def test_a_job_whose_lease_cannot_be_renewed_stops_before_the_lease_ends(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        assert server._process is not None
        pid = server._process.pid
        sched = Scheduler(storage=RedisStorage(server.url, prefix="guard"), lease_ttl=LEASE)
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

        async with sched:
            task_id = await sched.submit(Task("long"))
            with trio.fail_after(5):
                while not started:
                    await trio.sleep(0.01)
            frozen_at = time.monotonic()  # Redis last answered before this
            os.kill(pid, signal.SIGSTOP)
            try:
                with trio.fail_after(LEASE * 3):
                    while not stopped:
                        await trio.sleep(0.01)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert stopped[0] - frozen_at < LEASE, "stopped only after the lease could have run out"
            info = await sched.wait(task_id, timeout=LEASE * 10)
        assert info.status is TaskStatus.SUCCEEDED and info.result == "second run", info
        assert len(started) == 2 and info.lease_losses == 1
    finally:
        server.stop()
