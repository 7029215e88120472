"""Fencing: a worker frozen (SIGSTOP) past its lease loses the task to another worker, and when it wakes
up (SIGCONT) nothing it writes for the old attempt is accepted: the task keeps the second run's outcome.
(tests/storage/test_redis_scripts.py also refuses each kind of stale write directly.)"""

from __future__ import annotations

import json
import signal
import time

from redis_workers import Cluster, Monitor, cluster_fixture, wait_for  # noqa: F401

from skedulr import Task, TaskStatus

JOB_SECONDS = 2.5  # longer than the lease (1 s): the frozen worker's attempt outlives its lease


def test_a_frozen_worker_cannot_overwrite_the_outcome_of_the_run_that_replaced_it(cluster: Cluster) -> None:
    frozen = cluster.spawn()
    client = cluster.client()
    r = cluster.redis()
    task_id = client.submit(Task("slow", payload=str(JOB_SECONDS), max_retries=0))
    wait_for(lambda: cluster.runs().get(task_id), 10, "the first worker to start the task")
    first_token = int(r.hget(cluster.key("t", task_id), "tok"))
    frozen.signal(signal.SIGSTOP)
    frozen_at = time.monotonic()

    rescuer = cluster.spawn()  # its reaper returns the task once the frozen worker's lease runs out

    def finished_by_rescuer() -> bool:
        info = client.get(task_id)
        return info.status is TaskStatus.SUCCEEDED

    wait_for(finished_by_rescuer, 15, lambda: f"the second worker to finish the task: {client.get(task_id)}")
    assert cluster.runs()[task_id] == [frozen.pid, rescuer.pid]
    before = client.get(task_id)
    assert before.result == rescuer.pid
    assert before.lease_losses == 1

    # Wake the frozen worker after its own attempt's time is up: its job returns at once, and its success
    # (or, if its heartbeat runs first, a renewal; or, if its lease guard stops the job first, unconfirmed
    # for most of a lease, a hand-back) goes out with the old token. It must be refused.
    time.sleep(max(0.0, frozen_at + JOB_SECONDS + 0.2 - time.monotonic()))
    with Monitor(cluster.url) as monitor:
        frozen.signal(signal.SIGCONT)
        time.sleep(1.5)  # a heartbeat (lease/3), a reap (lease/2) and a flush of the woken worker
    # Only the frozen attempt has the first token: these are the woken worker's writes for it.
    old = [task_id, str(first_token)]
    stale = sorted({name for name, args in monitor.calls if any(args[i : i + 2] == old for i in range(len(args)))})
    assert stale, f"the woken worker sent nothing for its old attempt; scripts seen: {monitor.calls[:20]}"
    print(f"stale writes sent after SIGCONT: {stale}")
    frozen.assert_alive()
    rescuer.assert_alive()

    after = client.get(task_id)
    assert after.status is TaskStatus.SUCCEEDED, f"the stale attempt changed the task: {after}"
    assert after.result == rescuer.pid, f"the frozen worker's result {frozen.pid} was accepted over the rescuer's"
    assert (after.attempts, after.lease_losses, after.finished_at) == (1, 1, before.finished_at)
    assert cluster.runs()[task_id] == [frozen.pid, rescuer.pid], "the task ran again after SIGCONT"
    raw = r.hgetall(cluster.key("t", task_id))
    assert raw[b"tok"] != str(first_token).encode(), "the frozen attempt's token was written back"
    assert after.progress == 1.0
    assert r.zcard(cluster.key("leases")) == 0, "the stale heartbeat re-created a lease"
    assert json.loads(raw[b"res"][1:]) == rescuer.pid
