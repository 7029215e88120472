"""Bad data in Redis (a task hash with a field deleted by hand, a payload the job cannot parse) is that
task's failure, reported on the task, and the worker goes on with the rest."""

from __future__ import annotations

import redis
from redis_workers import Cluster, cluster_fixture, wait_for  # noqa: F401

from skedulr import Task, TaskStatus

# The fields lua/claim.lua checks before it runs a task (its `damaged` function).
CHECKED_AT_CLAIM = ("spec", "status", "pool")
# Fields the scripts read with a default: a task that lost one still runs to an end.
DEFAULTED = ("prio", "maxr", "seq", "rms", "cms")
# Written only when they differ from their defaults (priority 0, ready when created): these tasks have them.
WITH_EVERY_FIELD = {"priority": 1, "delay": 0}


def _fields(r: redis.Redis, cluster: Cluster, task_id: str, *names: str) -> list[str]:
    return [(v or b"").decode() for v in r.hmget(cluster.key("t", task_id), list(names))]


def _status(r: redis.Redis, cluster: Cluster, task_id: str) -> str:
    return _fields(r, cluster, task_id, "status")[0]


def _damaged_queued_task(cluster: Cluster, field: str) -> str:
    """A queued task (no worker runs yet) whose hash has lost `field`."""
    task_id = cluster.client().submit(Task("quick", max_retries=0, **WITH_EVERY_FIELD))
    assert cluster.redis().hdel(cluster.key("t", task_id), field) == 1
    return task_id


def _good_task_succeeds(cluster: Cluster, worker_pids: set[int]) -> None:
    client = cluster.client()
    good = client.submit(Task("quick", max_retries=0))
    wait_for(
        lambda: client.get(good).status is TaskStatus.SUCCEEDED or not all(w.alive for w in cluster.workers),
        10,
        lambda: f"a good task to succeed after the bad ones\n{cluster.logs()}",
    )
    for worker in cluster.workers:
        worker.assert_alive()
    assert client.get(good).result in worker_pids


def test_damaged_records_and_unparseable_payloads_fail_their_own_task_only(cluster: Cluster) -> None:
    client = cluster.client()
    r = cluster.redis()
    damaged = {field: _damaged_queued_task(cluster, field) for field in CHECKED_AT_CLAIM}
    unparseable = client.submit(Task("slow", payload="not-a-number", max_retries=0))
    retried = client.submit(Task("slow", payload="not-a-number", max_retries=3))
    worker = cluster.spawn()

    bad = [*damaged.values(), unparseable]
    wait_for(
        lambda: all(_status(r, cluster, i) == "dead" for i in bad) or not worker.alive,
        10,
        lambda: f"the bad tasks to go dead: {[_status(r, cluster, i) for i in bad]}\n{worker.log()}",
    )
    worker.assert_alive()
    for field, task_id in damaged.items():
        (error,) = _fields(r, cluster, task_id, "err")
        assert field in error and "damaged" in error, f"task without {field!r}: error {error!r}"
        assert r.zscore(cluster.key("dead"), task_id) is not None, f"task without {field!r} is not in the DLQ"
    status, error, attempts = _fields(r, cluster, unparseable, "status", "err", "att")
    assert (status, attempts) == ("dead", "1") and error.startswith("ValueError"), (status, error)
    wait_for(
        lambda: _fields(r, cluster, retried, "status", "att") == ["retrying", "1"],
        5,
        lambda: f"the retried task to wait for its retry: {_fields(r, cluster, retried, 'status', 'att')}",
    )
    assert _fields(r, cluster, retried, "err")[0].startswith("ValueError")
    assert cluster.runs() == {}, "a bad task reached the job's recording"
    assert client.get(unparseable).status is TaskStatus.DEAD  # a record the scheduler wrote reads back fine

    _good_task_succeeds(cluster, {worker.pid})
    counts = {k.decode(): int(v) for k, v in r.hgetall(cluster.key("counts")).items()}
    assert counts.get("default/dead") == len(bad) and counts.get("default/succeeded") == 1, counts
    assert counts.get("default/queued", 0) == 0 and counts.get("default/running", 0) == 0, counts


def test_a_damaged_record_reads_back_as_dead_with_its_reason(cluster: Cluster) -> None:
    client = cluster.client()
    r = cluster.redis()
    bad = _damaged_queued_task(cluster, "spec")
    worker = cluster.spawn()
    wait_for(lambda: _status(r, cluster, bad) == "dead" or not worker.alive, 10, "the damaged task to go dead")
    _good_task_succeeds(cluster, {worker.pid})
    info = client.get(bad)
    assert info.status is TaskStatus.DEAD and "spec" in (info.error or ""), info
    listed = {t.id for t in client.list_tasks(limit=10).tasks}
    assert bad in listed and len(listed) == 2


def test_tasks_that_lost_a_defaulted_field_still_run_and_fail_normally(cluster: Cluster) -> None:
    client = cluster.client()
    r = cluster.redis()
    quick = {field: _damaged_queued_task(cluster, field) for field in DEFAULTED}
    failing = {}
    for field in DEFAULTED:
        failing[field] = client.submit(Task("slow", payload="not-a-number", max_retries=1, **WITH_EVERY_FIELD))
        assert r.hdel(cluster.key("t", failing[field]), field) == 1
    worker = cluster.spawn()
    wait_for(
        lambda: (
            (
                all(_status(r, cluster, i) == "succeeded" for i in quick.values())
                and all(_status(r, cluster, i) in ("retrying", "dead") for i in failing.values())
            )
            or not worker.alive
        ),
        10,
        lambda: (
            f"the tasks to run: {[_status(r, cluster, i) for i in (*quick.values(), *failing.values())]}\n"
            f"{worker.log()}"
        ),
    )
    _good_task_succeeds(cluster, {worker.pid})


def test_a_delayed_task_that_lost_its_ready_time_does_not_block_the_pool(cluster: Cluster) -> None:
    client = cluster.client()
    r = cluster.redis()
    bad = client.submit(Task("quick", max_retries=0, delay=0.2))
    assert r.hdel(cluster.key("t", bad), "rms") == 1
    worker = cluster.spawn()
    wait_for(
        lambda: _status(r, cluster, bad) in ("dead", "succeeded") or not worker.alive,
        10,
        lambda: f"the delayed task without rms to end\n{worker.log()}",
    )
    _good_task_succeeds(cluster, {worker.pid})
