"""Redis restarts (a crash: SIGKILL) with `appendonly yes` and `appendfsync always`: nothing it acknowledged
is lost, and workers ride out the restart, and an outage of a few seconds, on their own."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_workers import Cluster, wait_for

from redis_fixtures import RedisServer, free_port
from skedulr import Task, TaskStatus

OUTAGE = 2.5  # seconds Redis is down in the outage test


class DurableRedisServer(RedisServer):
    """`RedisServer` with an append-only file fsynced on every write, so a SIGKILL loses nothing it
    acknowledged; `start()` after `stop()` reloads the data on the same port."""

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is running already")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = (self.directory / "redis.log").open("ab")
        # fmt: off
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory),
        ]
        # fmt: on
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_for_ping()


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[tuple[DurableRedisServer, Cluster]]:
    """A Redis of this test's own (AOF, fsync always) and the worker processes using it."""
    server = DurableRedisServer(tmp_path / "redis", free_port())
    server.start()
    cluster = Cluster(server.url, tmp_path)
    try:
        yield server, cluster
    finally:
        cluster.close()
        server.stop()


def restart(server: RedisServer, down_for: float = 0.0) -> None:
    server.stop()  # SIGKILL: no shutdown save, only what the AOF already holds survives
    time.sleep(down_for)
    server.start()  # same port


def succeeded(cluster: Cluster) -> int:
    r = redis.Redis.from_url(cluster.url, socket_timeout=2)
    try:
        return int(r.hget(cluster.key("counts"), "default/succeeded") or 0)
    except redis.exceptions.ConnectionError:
        return -1
    finally:
        r.close()


OUTAGE_BUG = (
    "BUG: a StorageError (Redis unreachable) escapes the scheduler's service loops (Pool._fetch_loop's claim, "
    "_heartbeat_loop, _reap_loop, _schedule_loop, the flusher) and crashes the worker process (exit code 1)"
)


def test_acknowledged_submits_and_outcomes_survive_a_redis_crash(durable: tuple[DurableRedisServer, Cluster]) -> None:
    server, cluster = durable
    worker = cluster.spawn()
    with cluster.client() as client:
        done = client.submit_many(Task("quick", max_retries=0) for _ in range(50))
        wait_for(lambda: succeeded(cluster) == 50, 10, lambda: f"the first batch to succeed\n{cluster.logs()}")
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(10) == 0
        ids = client.submit_many(Task("quick", max_retries=0) for _ in range(200))
        ids += [client.submit(Task("quick", max_retries=0)) for _ in range(20)]
        delayed = client.submit(Task("quick", max_retries=0, delay=1.0))
    restart(server)

    r = cluster.redis()
    stored = {m.decode() for m in r.zrange(cluster.key("all"), 0, -1)}
    missing = set([*done, *ids, delayed]) - stored
    assert not missing, f"{len(missing)} acknowledged tasks lost in the restart, e.g. {sorted(missing)[:3]}"
    with cluster.client() as client:
        for task_id in done:  # acknowledged completions too
            info = client.get(task_id)
            assert (info.status, info.result) == (TaskStatus.SUCCEEDED, worker.pid), info

    second = cluster.spawn()  # scripts are gone from the restarted server: the worker loads them again
    wait_for(
        lambda: succeeded(cluster) == len(done) + len(ids) + 1,
        15,
        lambda: f"every task to succeed; counts {r.hgetall(cluster.key('counts'))}\n{cluster.logs()}",
    )
    runs = cluster.runs()
    assert all(runs[i] == [second.pid] for i in [*ids, delayed])
    assert all(runs[i] == [worker.pid] for i in done)


def test_a_running_worker_reconnects_after_a_redis_restart(durable: tuple[DurableRedisServer, Cluster]) -> None:
    server, cluster = durable
    worker = cluster.spawn()
    client = cluster.client()
    first = client.submit_many(Task("quick", max_retries=0) for _ in range(50))
    wait_for(lambda: succeeded(cluster) == 50, 10, lambda: f"the first batch to succeed\n{cluster.logs()}")

    restart(server, down_for=1.0)  # longer than the worker's poll interval: it surely finds Redis gone
    client.close()
    client = cluster.client()
    second = client.submit_many(Task("quick", max_retries=0) for _ in range(50))
    wait_for(
        lambda: succeeded(cluster) == 100 or not worker.alive,
        15,
        lambda: f"the worker to run the second batch after the restart\n{cluster.logs()}",
    )
    worker.assert_alive()
    assert succeeded(cluster) == 100
    runs = cluster.runs()
    assert all(runs[i] == [worker.pid] for i in first + second)


def test_an_outage_of_a_few_seconds_mid_run_neither_kills_the_worker_nor_loses_a_task(
    durable: tuple[DurableRedisServer, Cluster],
) -> None:
    server, cluster = durable
    n = 300
    worker = cluster.spawn(lease=2)
    client = cluster.client()
    ids = client.submit_many(Task("plain", payload="0.05", max_retries=5) for _ in range(n))
    client.close()
    wait_for(lambda: succeeded(cluster) >= n // 4, 10, lambda: f"a quarter of the tasks to succeed\n{cluster.logs()}")
    assert succeeded(cluster) < n, "the tasks finished before the outage: make them slower"

    restart(server, down_for=OUTAGE)
    worker.assert_alive()
    wait_for(
        lambda: succeeded(cluster) == n or not worker.alive,
        20,
        lambda: f"all {n} tasks to succeed after the outage (got {succeeded(cluster)})\n{cluster.logs()}",
    )
    worker.assert_alive()
    with cluster.client() as client:
        page = client.list_tasks(status=["queued", "running", "retrying", "dead"], limit=n)
        assert not page.tasks, f"tasks not succeeded: {[(t.id, t.status) for t in page.tasks][:5]}"
        infos = [client.get(i) for i in ids]
    assert all(info.result == worker.pid for info in infos)
