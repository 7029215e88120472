"""A worker process killed mid-run (SIGKILL: no shutdown code runs) loses nothing: its leases run out, the
surviving worker's reaper returns the tasks, and only the tasks that were in the killed process run twice."""

from __future__ import annotations

import json
import signal
from collections import Counter

from redis_workers import Cluster, cluster_fixture, wait_for  # noqa: F401

from skedulr import Task

N = 2000


def test_sigkill_mid_run_loses_nothing_and_reruns_only_what_the_dead_process_held(cluster: Cluster) -> None:
    victim = cluster.spawn(ready=False)
    survivor = cluster.spawn(ready=False)
    victim.wait_ready()
    survivor.wait_ready()
    client = cluster.client()
    r = cluster.redis()
    runs_key = f"{cluster.prefix}:runs"

    ids = client.submit_many(Task("quick", max_retries=0) for _ in range(N))
    assert len(set(ids)) == N

    # Kill the victim once both processes are well into the batch.
    def victim_busy() -> bool:
        pids = Counter(int(e.rpartition(b":")[2]) for e in r.lrange(runs_key, 0, -1))
        return pids[victim.pid] >= 50 and pids[survivor.pid] >= 50 and sum(pids.values()) >= N // 5

    wait_for(victim_busy, 10, lambda: f"both workers to run tasks; runs so far: {r.llen(runs_key)}", poll=0.001)
    victim.signal(signal.SIGKILL)
    killed_at_runs = r.llen(runs_key)
    victim.wait_exit(5)
    assert killed_at_runs < N, "the batch finished before the kill: nothing was mid-run"

    counts_key = cluster.key("counts")

    def all_succeeded() -> bool:
        return int(r.hget(counts_key, "default/succeeded") or 0) == N

    wait_for(all_succeeded, 15, lambda: f"all {N} tasks to succeed; counts: {r.hgetall(counts_key)}\n{cluster.logs()}")
    survivor.assert_alive()

    # The task hashes, not only the counters: every task succeeded, none is left leased.
    pipe = r.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(cluster.key("t", task_id), "status", "ll", "res", "att")
    rows = dict(zip(ids, pipe.execute(), strict=True))
    not_done = {i: row[0] for i, row in rows.items() if row[0] != b"succeeded"}
    assert not not_done, f"{len(not_done)} tasks did not end succeeded: {dict(list(not_done.items())[:5])}"
    assert r.zcard(cluster.key("leases")) == 0, "leases left behind"
    counts = {k.decode(): int(v) for k, v in r.hgetall(counts_key).items() if int(v)}
    assert counts == {"default/succeeded": N}, f"status counters disagree with the tasks: {counts}"

    runs = cluster.runs()
    never_ran = [i for i in ids if not runs.get(i)]
    assert not never_ran, f"{len(never_ran)} succeeded tasks never ran, e.g. {never_ran[:3]}"
    reaped = {i for i, row in rows.items() if int(row[1] or 0) > 0}  # lost a lease: was held by the victim
    assert reaped, "no lease of the killed worker was reaped: it held no task when it was killed?"

    for task_id, pids in runs.items():
        if len(pids) == 1:
            continue
        assert len(pids) == 2, f"task {task_id} ran {len(pids)} times: pids {pids}"
        assert pids[0] == victim.pid and pids[1] == survivor.pid, (
            f"task {task_id} ran twice, but not first in the killed process {victim.pid} and then in the "
            f"survivor {survivor.pid}: {pids}"
        )
        assert task_id in reaped, f"task {task_id} ran twice without losing a lease"
    for task_id in reaped:
        assert runs[task_id][-1] == survivor.pid, f"reaped task {task_id} was not finished by the survivor"
    for task_id, row in rows.items():  # the stored result is the last run's: its pid
        assert json.loads(row[2][1:]) == runs[task_id][-1], f"task {task_id}: result from the wrong run"
        assert int(row[3]) == 1, f"task {task_id}: {int(row[3])} attempts counted, a reaped lease counts none"
    twice = sum(1 for pids in runs.values() if len(pids) == 2)
    print(f"killed after {killed_at_runs} runs; {len(reaped)} tasks reaped, {twice} ran twice")
