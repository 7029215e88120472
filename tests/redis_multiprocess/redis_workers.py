"""Worker processes for the multi-process Redis tests: `python -m skedulr worker redis_app:scheduler`.

Import the fixtures into a test module (this directory is on sys.path under pytest's default import mode):

    from redis_workers import Cluster, cluster_fixture  # noqa: F401

`cluster` (per test; defined as `cluster_fixture`, so a test's `cluster` argument shadows no import) gives
the test a fresh key prefix on the session's Redis and starts workers with `cluster.spawn(**env)`; every
worker it started is SIGKILLed at the end of the test, whatever happened. A test with a Redis of its own
makes a `Cluster(url, directory)` and closes it itself. All waits are bounded and fail with a message that
says what was awaited, and each worker's stderr is kept in a file that failures quote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import redis

from skedulr.client import Client
from skedulr.storage import _scripts

__all__ = ["Cluster", "Monitor", "Worker", "cluster_fixture", "wait_for"]

TESTS_DIR = Path(__file__).resolve().parent.parent
READY_LINE = "skedulr worker ready"
READY_TIMEOUT = 15.0

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], *, poll: float = 0.05) -> T:
    """Polls `predicate` (real time) until it returns something truthy, which it returns; fails the test
    with "timed out after Ns waiting for <what>" otherwise. `what` may be a callable giving the text."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:g}s waiting for {text}", pytrace=False)
        time.sleep(poll)


class Worker:
    """One worker process; its stderr goes to `log_path`."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "skedulr", "worker", "redis_app:scheduler"],
            cwd=TESTS_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def __repr__(self) -> str:
        return f"<Worker {self.name} pid={self.pid} returncode={self.process.poll()}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.log_path.read_text(errors="replace"):
            if not self.alive:
                pytest.fail(f"worker {self.name} exited with {self.process.returncode} before it was ready:\n"
                            f"{self.log()}", pytrace=False)  # fmt: skip
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.name} not ready after {timeout:g}s:\n{self.log()}", pytrace=False)
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        if self.alive:
            self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.name} still running {timeout:g}s later:\n{self.log()}", pytrace=False)

    def assert_alive(self) -> None:
        if not self.alive:
            pytest.fail(f"worker {self.name} died with exit code {self.process.returncode}:\n{self.log()}",
                        pytrace=False)  # fmt: skip

    def kill(self) -> None:
        """SIGKILL (also works on a stopped process) and reap it."""
        if self.alive:
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        finally:
            self._log.close()


class Monitor:
    """Records the scripts clients run (Redis MONITOR, in a thread) while the `with` block runs:
    `calls` is a list of (script name, arguments as text)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = redis.Redis.from_url(url, socket_timeout=10)
        self._names = {_scripts.load(n).sha: n for n in _SCRIPT_NAMES}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self.calls: list[tuple[str, list[str]]] = []

    def __enter__(self) -> Monitor:
        self._thread.start()
        if not self._started.wait(5):
            pytest.fail("MONITOR did not start", pytrace=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        poke = redis.Redis.from_url(self._url, socket_timeout=5)
        try:
            poke.echo("monitor-stop")  # the monitor thread reads one more command and sees the stop
        finally:
            poke.close()
        self._thread.join(10)
        self._client.close()

    def _run(self) -> None:
        with self._client.monitor() as monitor:
            self._started.set()
            while not self._stop.is_set():
                command = monitor.next_command()
                parts = command["command"].split(" ")
                if parts[0].upper() == "EVALSHA" and command.get("client_type") != "lua":
                    self.calls.append((self._names.get(parts[1], parts[1]), parts[2:]))


_SCRIPT_NAMES = ("cancel", "claim", "fail", "fire_schedule", "hand_back", "purge", "reap", "renew",
                 "resubmit", "schedule", "set_progress", "submit", "succeed")  # fmt: skip


class Cluster:
    """The worker processes of one test, sharing one key prefix."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.prefix = f"mp{os.urandom(4).hex()}"
        self.directory = directory
        self.workers: list[Worker] = []
        self._clients: list[Any] = []

    def env(self, **overrides: Any) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SKEDULR_TEST_REDIS=self.url,
            SKEDULR_TEST_PREFIX=self.prefix,
            SKEDULR_TEST_LEASE="1",
            PYTHONUNBUFFERED="1",
        )
        env.update({f"SKEDULR_TEST_{k.upper()}": str(v) for k, v in overrides.items()})
        return env

    def spawn(self, *, ready: bool = True, **overrides: Any) -> Worker:
        """Starts a worker (options as in redis_app: lease=, workers=, grace=, poll=) and, unless
        `ready=False`, waits for its ready line."""
        name = f"w{len(self.workers)}"
        worker = Worker(name, self.env(**overrides), self.directory / f"{name}.log")
        self.workers.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    def spawn_many(self, n: int, **overrides: Any) -> list[Worker]:
        """Starts `n` workers at once and waits until every one is ready."""
        workers = [self.spawn(ready=False, **overrides) for _ in range(n)]
        for worker in workers:
            worker.wait_ready()
        return workers

    def client(self) -> Client:
        client = Client(self.url, prefix=self.prefix)
        self._clients.append(client)
        return client

    def redis(self) -> redis.Redis:
        r = redis.Redis.from_url(self.url, socket_timeout=5)
        self._clients.append(r)
        return r

    def key(self, *parts: str) -> str:
        """A storage key, as lua/_lib.lua lays them out."""
        return ":".join(("{" + self.prefix + "}", *parts))

    def runs(self) -> dict[str, list[int]]:
        """Task id -> pids of the processes that started a run of it, in order (from redis_app's runs list)."""
        out: dict[str, list[int]] = defaultdict(list)
        r = redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            for entry in r.lrange(f"{self.prefix}:runs", 0, -1):
                task_id, _, pid = entry.decode().rpartition(":")
                out[task_id].append(int(pid))
        finally:
            r.close()
        return out

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} (pid {w.pid}):\n{w.log(2000)}" for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        for c in self._clients:
            c.close()


@pytest.fixture(name="cluster")
def cluster_fixture(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Worker processes for one test over the session's Redis (emptied), all killed at the end."""
    c = Cluster(redis_url, tmp_path)
    try:
        yield c
    finally:
        c.close()
