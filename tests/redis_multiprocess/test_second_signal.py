"""`skedulr worker module:attribute` and its two signals (python/skedulr/_worker.py): the first SIGTERM
starts a graceful shutdown that lets a running job go on (and claims nothing new); a second one cancels
the job at once, the process exits with status 0, and the task is handed back: queued, its attempt not
counted, no lease left, so another worker runs it.

The worker runs with a 30 s lease and a 60 s grace: nothing but the hand-back on the second signal can
have returned the task (no reaper would have, and no grace ran out) by the time it is checked.
"""

from __future__ import annotations

import signal
import time

import redis
from redis_workers import Cluster, Worker, cluster_fixture, wait_for  # noqa: F401

from skedulr import Task, TaskStatus

LEASE = 30
GRACE = 60
FIRST_LOG = "SIGTERM: shutting down gracefully"
SECOND_LOG = "SIGTERM again: cancelling running jobs"


def _field(r: redis.Redis, cluster: Cluster, task_id: str, name: str) -> str:
    value = r.hget(cluster.key("t", task_id), name)
    return value.decode() if value is not None else ""


def _signalled(worker: Worker, line: str) -> None:
    wait_for(lambda: line in worker.log(), 5, lambda: f"{worker.name} to log {line!r}:\n{worker.log()}")


def test_a_second_sigterm_cancels_the_running_job_and_hands_its_task_back(cluster: Cluster) -> None:
    worker = cluster.spawn(lease=LEASE, grace=GRACE)
    client = cluster.client()
    r = cluster.redis()
    task_id = client.submit(Task("slow", payload="60", max_retries=3))
    wait_for(lambda: cluster.runs().get(task_id), 10, lambda: f"the worker to start the job\n{cluster.logs()}")
    token = _field(r, cluster, task_id, "tok")
    assert (_field(r, cluster, task_id, "status"), _field(r, cluster, task_id, "att")) == ("running", "1")

    worker.signal(signal.SIGTERM)
    _signalled(worker, FIRST_LOG)
    later = client.submit(Task("quick", max_retries=0))  # a stopping worker claims nothing new
    time.sleep(0.5)  # (what must NOT happen gets a moment to happen)
    worker.assert_alive()
    assert (_field(r, cluster, task_id, "status"), _field(r, cluster, task_id, "tok")) == ("running", token)
    assert _field(r, cluster, later, "status") == "queued", "a worker shutting down claimed a new task"

    worker.signal(signal.SIGTERM)
    started = time.monotonic()
    code = worker.wait_exit(5)
    took = time.monotonic() - started
    assert code == 0, worker.log()
    assert took < 3, f"the second SIGTERM took {took:.1f}s to end the process"
    assert SECOND_LOG in worker.log()

    info = client.get(task_id)
    assert (info.status, info.attempts, info.lease_losses, info.error) == (TaskStatus.QUEUED, 0, 0, None), info
    assert info.started_at is None and info.finished_at is None, info
    assert _field(r, cluster, task_id, "tok") == ""
    assert r.zcard(cluster.key("leases")) == 0, "the task is still leased to the dead worker"
    assert r.zcard(cluster.key("r", "default")) == 2, "the handed-back task is not in the ready queue"
    assert cluster.runs()[task_id] == [worker.pid]

    second = cluster.spawn(lease=LEASE)
    wait_for(
        lambda: len(cluster.runs().get(task_id, [])) == 2 and client.get(later).status is TaskStatus.SUCCEEDED,
        10,
        lambda: f"the second worker to run both tasks\n{cluster.logs()}",
    )
    assert cluster.runs()[task_id] == [worker.pid, second.pid]
    info = client.get(task_id)
    assert (info.status, info.attempts, info.lease_losses) == (TaskStatus.RUNNING, 1, 0), info
    assert client.get(later).result == second.pid
