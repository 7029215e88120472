"""What a Redis woken from idling charges a script on the path from submit to start, in one run.

Between jobs 10 ms apart (the latency part of `redis_throughput.py`) Redis idles, and on this shared
machine its next command then runs several times slower than a warm one: code and data are cold. This
measures round trips from a plain socket, each after `--idle-ms` of silence, interleaved so that every
kind sees the same moments of the machine:

- `PING`: the floor of a round trip;
- `EVALSHA` of `return 1`, of the same plus the `_lib` prelude every script includes, of five calls of
  one command, and of five different commands: what a script pays per distinct command;
- `submit_one` and `submit` (lua/submit_one.lua, lua/submit.lua) storing one plain task and handing it
  to an instance standing idle (a subscribed socket stands in for it), as `Scheduler.submit` does when
  nothing else is in flight (`submit_one`) or did before it had its own script (`submit`).

Each row is the median round trip and its excess over PING's. Starts a throwaway `redis-server` as
`redis_throughput.py` does (`SKEDULR_REDIS_SERVER` picks the binary).

    python benches/redis_cold_scripts.py [--calls 300] [--idle-ms 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hiredis

from skedulr import _core
from skedulr.storage import _scripts

ROOT = Path(__file__).resolve().parent.parent
TAG = "{cold}"
HAND_ID = "00000000c01dc01d"
LEASE_MS = 30_000

BARE = "return 1"
SAME_FIVE = "local r = redis.call; for i = 1, 5 do r('INCRBY', KEYS[1], 1) end; return 1"
FIVE_KINDS = """local r = redis.call
r('INCRBY', KEYS[1], 1); r('HSET', KEYS[1] .. ':h', 'f', 1); r('ZADD', KEYS[1] .. ':z', 1, 'm')
r('RPUSH', KEYS[1] .. ':l', 'x'); r('LTRIM', KEYS[1] .. ':l', 0, 10); return 1"""


class Client:
    """One plain socket to Redis: a call is one write and the reads its reply takes, nothing else."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()

    def call(self, *args: Any) -> Any:
        self.sock.sendall(hiredis.pack_command(args))
        while (reply := self.reader.gets()) is False:
            self.reader.feed(self.sock.recv(65536))
        if isinstance(reply, hiredis.ReplyError):
            raise RuntimeError(f"{args[0]}: {reply}")
        return reply


def _stand_idle(port: int, client: Client) -> None:
    """An instance standing idle with room for every task of the run, its channel read and discarded."""
    listener = socket.create_connection(("127.0.0.1", port))
    listener.sendall(hiredis.pack_command(("SUBSCRIBE", f"{TAG}:hand:{HAND_ID}")))
    listener.recv(1000)
    threading.Thread(target=lambda: [listener.recv(65536) for _ in iter(int, 1)], daemon=True).start()
    client.call("ZADD", f"{TAG}:idle:default", 2**50, HAND_ID)
    client.call("HSET", f"{TAG}:room:default", HAND_ID, f"{10**9} {LEASE_MS}")


def _kinds(client: Client) -> dict[str, Callable[[int], Any]]:
    def script(source: str) -> Callable[[int], Any]:
        sha = client.call("SCRIPT", "LOAD", source).decode()
        return lambda i: client.call("EVALSHA", sha, 1, f"{TAG}:n")

    def submit(name: str, args: Callable[[str, bytes], Sequence[Any]]) -> Callable[[int], Any]:
        sha = client.call("SCRIPT", "LOAD", _scripts.load(name).source).decode()
        keys = (f"{TAG}:seq", f"{TAG}:all")
        return lambda i: client.call("EVALSHA", sha, 2, *keys, *args(os.urandom(8).hex(), b"probe 0 0\n%d" % i))

    return {
        "PING": lambda i: client.call("PING"),
        "script: return 1": script(BARE),
        "  + the _lib prelude": script(_core.LUA_SCRIPTS["_lib"] + "\n" + BARE),
        "  + 5 calls of one command": script(SAME_FIVE),
        "  + 5 different commands": script(FIVE_KINDS),
        "submit_one, handed off": submit("submit_one", lambda tid, spec: (TAG, "", tid, spec, "default", 0, 0)),
        "submit, handed off": submit(
            "submit", lambda tid, spec: (TAG, "", 86_400_000, "", "", 1, "p", 1, "default", 0, 0, "", tid, spec)
        ),
    }


def measure(port: int, calls: int, idle: float) -> dict[str, list[float]]:
    """Round trips in µs per kind, each after `idle` seconds of silence, the kinds interleaved."""
    client = Client(port)
    _stand_idle(port, client)
    kinds = _kinds(client)
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for i in range(calls):
        for name, call in kinds.items():
            time.sleep(idle)
            start = time.perf_counter()
            call(i)
            times[name].append((time.perf_counter() - start) * 1e6)
    handed = client.call("HGET", f"{TAG}:counts", "default/running")
    if int(handed or 0) != 2 * calls:
        raise RuntimeError(f"{handed!r} tasks handed off, not {2 * calls}: the idle instance was not used")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="round trips per kind (default 300)")
    parser.add_argument("--idle-ms", type=float, default=10.0, help="silence before each (default 10 ms)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from redis_fixtures import RedisServer  # a test helper: it imports pytest, so only here

    with tempfile.TemporaryDirectory(prefix="skedulr-bench-") as tmp, RedisServer(Path(tmp) / "redis") as server:
        times = measure(server.port, args.calls, args.idle_ms / 1000)
    floor = statistics.median(times["PING"])
    print(f"Redis ({server.binary}), {args.calls} round trips per kind, each after {args.idle_ms:g} ms idle")
    print(f"{'kind':30s} {'median µs':>10s} {'over PING':>10s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:30s} {median:10.0f} {median - floor:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
