"""The job body every peer runs, and how a worker process reports its drain.

Each job calls `PROBE.ran()`: one atomic count (`next()` on an `itertools.count`, safe for thread
pools) and one comparison. The first call records the time and this process's CPU (utime+stime of
/proc/<pid>/stat), the Nth call (N from the environment) records them again, so the drain is timed
from the first job's end to the last job's end, inside the process that runs the jobs (start-up is
left out, and so is a supervisor process some peers keep). A daemon thread writes the progress to
Redis every 0.2 s and, once the Nth job has run, the result; the benchmark polls those keys.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import redis

from redis_throughput import process_cpu  # the same /proc/<pid>/stat reader as the skedulr benchmark

ENV_URL, ENV_JOBS = "PEERS_BENCH_REDIS", "PEERS_BENCH_JOBS"
PROGRESS_KEY, RESULT_KEY = "peers-bench:progress", "peers-bench:result"


def redis_url() -> str:
    return os.environ[ENV_URL]


def jobs() -> int:
    return int(os.environ[ENV_JOBS])


class Probe:
    """Counts the jobs this process runs; times and CPU at the first and at the Nth."""

    def __init__(self) -> None:
        self._count = itertools.count(1)
        self.n = 0
        self.target = 0
        self.first: tuple[float, float] | None = None  # (perf_counter, CPU s)
        self.last: tuple[float, float] | None = None
        self._done = threading.Event()

    def ran(self) -> None:
        n = next(self._count)
        self.n = n
        if n == self.target:
            self.last = (time.perf_counter(), process_cpu(os.getpid()))
            self._done.set()
        elif n == 1:
            self.first = (time.perf_counter(), process_cpu(os.getpid()))
            self.target = jobs()
            threading.Thread(target=self._publish, name="peers-bench-probe", daemon=True).start()

    def _publish(self) -> None:
        client = redis.Redis.from_url(redis_url(), socket_timeout=5)
        while not self._done.wait(0.2):
            client.set(PROGRESS_KEY, self.n)
        assert self.first is not None and self.last is not None
        client.hset(RESULT_KEY, mapping={
            "jobs": self.target - 1,  # the runs between the first's end and the last's end
            "seconds": self.last[0] - self.first[0],
            "cpu": self.last[1] - self.first[1],
            "pid": os.getpid(),
        })  # fmt: skip
        client.set(PROGRESS_KEY, self.n)


PROBE = Probe()
