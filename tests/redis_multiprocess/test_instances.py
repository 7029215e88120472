"""Several worker processes on one Redis: a graceful shutdown of one hands its work to the others without
touching theirs; a schedule fires once per tick across instances; stored delayed and retrying tasks
outlive every worker."""

from __future__ import annotations

import signal
import time

import redis
import trio
from redis_workers import Cluster, cluster_fixture, wait_for  # noqa: F401

import redis_app
from skedulr import Task, TaskStatus

SLOW = "2.5"  # seconds a slow task runs: longer than the shutdown grace (0.5 s) and the lease (1 s)


def _field(r: redis.Redis, cluster: Cluster, task_id: str, name: str) -> str:
    value = r.hget(cluster.key("t", task_id), name)
    return value.decode() if value is not None else ""


def test_graceful_shutdown_hands_back_its_tasks_and_leaves_the_others_alone(cluster: Cluster) -> None:
    leaving = cluster.spawn(workers=2, grace=0.5)
    client = cluster.client()
    r = cluster.redis()
    mine = client.submit_many(Task("slow", payload=SLOW, max_retries=0) for _ in range(2))
    wait_for(lambda: all(cluster.runs().get(i) for i in mine), 10, "the first worker to start its two tasks")
    staying = cluster.spawn(workers=4)  # the first worker is full: the next two tasks can only go here
    theirs = client.submit_many(Task("slow", payload=SLOW, max_retries=0) for _ in range(2))
    wait_for(lambda: all(cluster.runs().get(i) for i in theirs), 10, "the second worker to start its two tasks")
    runs = cluster.runs()
    assert [runs[i] for i in mine] == [[leaving.pid]] * 2 and [runs[i] for i in theirs] == [[staying.pid]] * 2
    old_tokens = {i: _field(r, cluster, i, "tok") for i in mine + theirs}

    leaving.signal(signal.SIGTERM)
    started = time.monotonic()
    assert leaving.wait_exit(5) == 0, leaving.log()
    assert time.monotonic() - started < 2.5, "the shutdown did not cut the running jobs off after the grace"

    for task_id in theirs:  # untouched: still running under the same lease
        assert _field(r, cluster, task_id, "status") == "running"
        assert _field(r, cluster, task_id, "tok") == old_tokens[task_id], "the other worker's lease changed"
    for task_id in mine:  # handed back: queued (or already claimed again), not under the old lease
        assert _field(r, cluster, task_id, "status") in ("queued", "running")
        assert _field(r, cluster, task_id, "tok") != old_tokens[task_id]

    wait_for(
        lambda: all(client.get(i).status is TaskStatus.SUCCEEDED for i in mine + theirs),
        15,
        lambda: f"all four tasks to succeed: {[client.get(i).status for i in mine + theirs]}\n{cluster.logs()}",
    )
    staying.assert_alive()
    runs = cluster.runs()
    for task_id in theirs:
        info = client.get(task_id)
        assert runs[task_id] == [staying.pid], f"the other worker's task was restarted: {runs[task_id]}"
        assert (info.result, info.attempts, info.lease_losses) == (staying.pid, 1, 0), info
    for task_id in mine:
        info = client.get(task_id)
        assert runs[task_id] == [leaving.pid, staying.pid]
        # handed back without counting an attempt, and not by losing the lease
        assert (info.result, info.attempts, info.lease_losses) == (staying.pid, 1, 0), info


def test_an_interval_schedule_fires_once_per_tick_across_three_instances(cluster: Cluster) -> None:
    workers = cluster.spawn_many(3)
    sched = redis_app.build(cluster.url, cluster.prefix)

    async def add() -> str:
        return await sched.schedule_every(1, Task("tick", max_retries=0), skip_if_running=False)

    schedule_id = trio.run(add)
    r = cluster.redis()
    first = int(r.zscore(cluster.key("schedules"), schedule_id))
    now_s, now_us = r.time()
    # Watch four ticks (first, +1 s, +2 s, +3 s), stopping half a second before the fifth.
    time.sleep(max(0.0, (first + 3500 - (now_s * 1000 + now_us // 1000)) / 1000))
    for worker in workers:
        worker.signal(signal.SIGKILL)
        worker.wait_exit(5)

    tasks = cluster.client().list_tasks(name="tick", limit=1000).tasks
    fired = int(r.hget(cluster.key("sch", schedule_id), "fired") or 0)
    assert len(tasks) == fired, f"{len(tasks)} tick tasks, but the schedule counts {fired} fires"
    assert all(t.schedule == schedule_id for t in tasks)
    created = sorted(round(t.created_at.timestamp() * 1000) for t in tasks)
    ticks = [(ms - first) // 1000 for ms in created]
    assert ticks == [0, 1, 2, 3], f"tick tasks per 1 s tick (ms after the first tick: {[c - first for c in created]})"
    runs = cluster.runs()
    done = [t for t in tasks if t.status is TaskStatus.SUCCEEDED]
    assert len(done) >= 3, f"tick tasks did not run: {[t.status for t in tasks]}"
    assert all(len(runs[t.id]) == 1 for t in done), "a tick task ran twice"
    assert {runs[t.id][0] for t in done} <= {w.pid for w in workers}


def test_delayed_and_retrying_tasks_survive_a_restart_of_every_worker(cluster: Cluster) -> None:
    old = cluster.spawn_many(2)
    client = cluster.client()
    r = cluster.redis()
    delayed = client.submit_many(Task("quick", max_retries=0, delay=3.0) for _ in range(5))
    flaky = client.submit_many(Task("flaky") for _ in range(3))  # fails once, retries 3 s later
    wait_for(
        lambda: all(_field(r, cluster, i, "status") == "retrying" for i in flaky),
        10,
        lambda: f"the flaky tasks to fail once: {[_field(r, cluster, i, 'status') for i in flaky]}",
    )

    for worker in old:
        worker.signal(signal.SIGTERM)
    for worker in old:
        assert worker.wait_exit(5) == 0, worker.log()
    # No worker left: the waiting work is in Redis only.
    assert [_field(r, cluster, i, "status") for i in delayed] == ["scheduled"] * 5
    assert [_field(r, cluster, i, "status") for i in flaky] == ["retrying"] * 3
    assert not any(cluster.runs().get(i) for i in delayed), "a delayed task ran before its time"

    new = cluster.spawn_many(2)
    wait_for(
        lambda: all(client.get(i).status is TaskStatus.SUCCEEDED for i in delayed + flaky),
        15,
        lambda: f"every task to succeed: {[client.get(i).status for i in delayed + flaky]}\n{cluster.logs()}",
    )
    runs = cluster.runs()
    new_pids = {w.pid for w in new}
    old_pids = {w.pid for w in old}
    for task_id in delayed:
        info = client.get(task_id)
        assert len(runs[task_id]) == 1 and runs[task_id][0] in new_pids, runs[task_id]
        assert info.started_at is not None and info.run_at is not None and info.started_at >= info.run_at, info
    for task_id in flaky:
        info = client.get(task_id)
        assert len(runs[task_id]) == 2 and runs[task_id][0] in old_pids and runs[task_id][1] in new_pids
        assert info.attempts == 2 and info.result in new_pids and info.error is None, info
