"""Calls per second through skedulr's Redis I/O thread against a thread hop per call, in one run.

N concurrent Trio tasks each run EVALSHA of a trivial script (INCR of one key) in a loop for a fixed time:

- `skedulr`: `RedisConnection.eval_script` (one I/O thread, one connection, everything waiting goes out as
  one pipeline, one hand-back to Trio per pipeline);
- `to_thread`: the naive way, `trio.to_thread.run_sync(client.execute_command, "EVALSHA", ...)` per call
  (a shared redis-py client, so a connection per worker thread; Trio's default limit of 40 threads).

Each side runs `--runs` times per concurrency, alternating, and the table shows the median. Without
`--url` it starts a throwaway `redis-server` from PATH on a free loopback port.

    python benches/redis_io.py [--url redis://127.0.0.1:6379/0] [--seconds 2] [--runs 3] [--check]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import redis
import trio

from skedulr.storage._redis_io import Script, open_connection

SCRIPT = Script("return redis.call('INCR', KEYS[1])", name="bench_incr")
KEY = "skedulr-bench:{redis_io}:counter"
TARGET = 50_000.0  # calls/s that `--check` requires from skedulr at the highest concurrency


@dataclass
class Run:
    calls: int
    seconds: float
    pipelines: int = 0

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


async def _drive(call: Callable[[], Awaitable[object]], tasks: int, seconds: float) -> Run:
    done = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1

    stop_at = time.perf_counter() + seconds
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
    return Run(done, time.perf_counter() - start)


async def run_skedulr(url: str, tasks: int, seconds: float) -> Run:
    async with open_connection(url, name="bench") as conn:
        await conn.load_script(SCRIPT)

        async def call() -> object:
            return await conn.eval_script(SCRIPT, (KEY,))

        await _drive(call, tasks, min(0.2, seconds))  # warm-up
        before = conn.pipelines_sent
        run = await _drive(call, tasks, seconds)
        run.pipelines = conn.pipelines_sent - before
        return run


async def run_to_thread(url: str, tasks: int, seconds: float) -> Run:
    client = redis.Redis.from_url(url)
    try:
        client.script_load(SCRIPT.source)

        async def call() -> object:
            return await trio.to_thread.run_sync(client.execute_command, "EVALSHA", SCRIPT.sha, 1, KEY)

        await _drive(call, tasks, min(0.2, seconds))
        return await _drive(call, tasks, seconds)
    finally:
        client.close()


@contextmanager
def throwaway_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not on PATH; install it or pass --url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="skedulr-bench-") as directory:
        # fmt: off
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        # fmt: on
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        sys.exit("the throwaway redis-server did not start")
                    time.sleep(0.02)
            client.close()
            yield url
        finally:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an existing Redis (default: start a throwaway redis-server)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measurement")
    parser.add_argument("--runs", type=int, default=3, help="measurements per side and concurrency (median shown)")
    parser.add_argument("--tasks", default="1,10,100", help="concurrencies, comma-separated")
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if skedulr at the top concurrency < {TARGET:,.0f}/s"
    )
    args = parser.parse_args(argv)
    concurrencies = [int(x) for x in args.tasks.split(",")]

    with nullcontext(args.url) if args.url else throwaway_redis() as url:
        results: dict[tuple[str, int], list[Run]] = {}
        for tasks in concurrencies:
            for _ in range(args.runs):
                for side, fn in (("skedulr", run_skedulr), ("to_thread", run_to_thread)):
                    run = trio.run(fn, url, tasks, args.seconds)
                    results.setdefault((side, tasks), []).append(run)
                    print(f"  {side:9} tasks={tasks:<4} {run.rate:>10,.0f} calls/s", file=sys.stderr)

    def median(side: str, tasks: int) -> float:
        return statistics.median(r.rate for r in results[side, tasks])

    print(f"EVALSHA (INCR) calls/s, median of {args.runs} x {args.seconds:g} s, python {sys.version.split()[0]}")
    header = ("tasks", "skedulr I/O thread", "to_thread per call", "ratio", "calls/pipeline")
    print(f"{header[0]:>5} | {header[1]:>18} | {header[2]:>18} | {header[3]:>6} | {header[4]:>14}")
    print(f"{'-' * 5}-+-{'-' * 18}-+-{'-' * 18}-+-{'-' * 6}-+-{'-' * 14}")
    for tasks in concurrencies:
        ours, base = median("skedulr", tasks), median("to_thread", tasks)
        runs = results["skedulr", tasks]
        per_pipeline = sum(r.calls for r in runs) / max(1, sum(r.pipelines for r in runs))
        print(f"{tasks:>5} | {ours:>18,.0f} | {base:>18,.0f} | {ours / base:>5.1f}x | {per_pipeline:>14.1f}")
    top = median("skedulr", concurrencies[-1])
    ok = top >= TARGET
    print(
        f"skedulr at {concurrencies[-1]} tasks: {top:,.0f} calls/s (target {TARGET:,.0f}): {'ok' if ok else 'MISSED'}"
    )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
