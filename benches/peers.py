"""skedulr against its peers: one worker process each draining N no-op jobs from the same Redis.

Starts one throwaway `redis-server` on a free loopback port (`RedisServer` of `tests/redis_fixtures.py`,
as `redis_throughput.py` does; `SKEDULR_REDIS_SERVER` picks the binary) and, for each peer in turn, on
that same server after a FLUSHALL:

1. enqueues N (20,000) no-op jobs with the peer's own client, in a process of its own
   (`python -m peers._enqueue PEER`), timed as "submit" (including the client's connection set-up);
2. starts ONE worker process with the peer's own worker command, and waits until the worker has run
   all N jobs;
3. stops the worker (SIGTERM to its process group, SIGKILL after 5 s), whatever happened.

Counting and timing are the same for every peer, skedulr included (`benches/peers/_probe.py`): the job
body is one call, `PROBE.ran()`, an atomic in-process count. The drain is timed inside the process
that runs the jobs, from the FIRST job's end to the LAST (Nth) job's end, so the worker's start-up
(imports, connecting, consumer-group set-up) is excluded; rate = (N-1) / that time. Worker CPU per job
is that process's utime+stime (/proc/<pid>/stat) read at those same two moments, over N-1 (a supervisor
process some peers keep beside the one running the jobs is not counted; it does no per-job work).
Results, acks and per-job log lines are whatever each peer does by default: they are part of its cost.
The ratio columns are skedulr's figure over the peer's (drain) and the peer's over skedulr's (CPU), so
above 1 means skedulr is ahead in both. Rates on this small shared machine move by 10-20 % from run to
run: compare the ratios of one run.

One worker process each, concurrency chosen for no-op async jobs (the peer's default where it is
already high, raised where the default would measure a sleep rather than the queue):

- skedulr: `python -m skedulr worker`, RedisStorage on the server clock, max_workers=100 (as in
  `redis_throughput.py`); submit_many in batches of 5,000.
- taskiq (+ taskiq-redis): RedisStreamBroker (the one with acks), `taskiq worker --workers 1`
  (default 2 processes), default --max-async-tasks 100; no result backend.
- huey: RedisHuey, `huey_consumer -w 4 -k thread` (default: 1 thread; 4 drained ~1.5x faster).
- saq: RedisQueue, `saq` with concurrency=100 (default 10).
- arq: max_jobs=100 (default 10) and poll_delay=0.01 s (default 0.5 s: arq sleeps that long between
  reads of its queue even when it is full, so the default would time the sleep); default results
  kept. arq 0.25 (0.26+ pin redis-py < 6, and this project is on redis-py 8).
- dramatiq: RedisBroker, `dramatiq --processes 1 --threads 32` (defaults: 8 threads, one process per
  CPU; 32 threads drained ~2.5x faster than 8).
- rq: `rq worker --worker-class rq.SimpleWorker --burst` (runs jobs in the worker process itself; the
  default Worker forks a process per job); default logging (a line per job) and results.
- celery: redis broker, no result backend, `--pool threads --concurrency 8` (one process; the
  default prefork pool is one process per core; `--pool solo` drained about as fast), default
  prefetch multiplier (4).
- streaq: Worker(concurrency=100) (default 16), `streaq run`.
- bullmq (Python port, optional): Worker with concurrency=100, in a small script.

A peer that cannot be imported or fails is reported as "unavailable: <reason>"; one that has not
finished in --timeout (120) seconds as "timed out", and the run goes on.

    SKEDULR_REDIS_SERVER=/usr/bin/redis-server python benches/peers.py [--jobs N] [--only skedulr,arq,...]
        [--timeout S] [--logs DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DEFAULT_JOBS = 20_000
DEFAULT_TIMEOUT = 120.0
POLL = 0.02  # how often the benchmark looks at the worker's result key
PEERS = ("skedulr", "taskiq", "huey", "saq", "arq", "dramatiq", "rq", "celery", "streaq", "bullmq")

# the worker processes' environment and Redis keys (see peers/_probe.py; not imported: it imports redis_throughput)
ENV_URL, ENV_JOBS = "PEERS_BENCH_REDIS", "PEERS_BENCH_JOBS"
PROGRESS_KEY, RESULT_KEY = "peers-bench:progress", "peers-bench:result"


@dataclass(slots=True)
class Outcome:
    peer: str
    version: str = ""
    settings: str = ""
    submit_s: float | None = None
    drain_s: float | None = None
    cpu_s: float | None = None
    runs: int = 0  # jobs timed (N-1)
    problem: str | None = None  # "unavailable: ..." or "timed out ..."

    @property
    def rate(self) -> float | None:
        return self.runs / self.drain_s if self.drain_s else None

    @property
    def cpu_us(self) -> float | None:
        return self.cpu_s / self.runs * 1e6 if self.cpu_s is not None and self.runs else None


def _tail(text: str, lines: int = 1) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[:300] or "no output"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the worker's process group (it was started in a session of its own), SIGKILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            if sig == signal.SIGTERM:  # the leader is gone; make sure no child of it lingers
                os.killpg(process.pid, signal.SIGKILL)
            break
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break


def run_peer(peer: str, url: str, client: redis.Redis, jobs: int, timeout: float, directory: Path) -> Outcome:
    out = Outcome(peer)
    client.flushall()
    env = dict(os.environ)
    env.update({ENV_URL: url, ENV_JOBS: str(jobs)})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    deadline = time.monotonic() + timeout

    # 1. enqueue, in a process of its own
    try:
        done = subprocess.run([sys.executable, "-m", "peers._enqueue", peer], env=env, cwd=directory,
                              capture_output=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        out.problem = f"timed out: enqueueing took over {timeout:g} s"
        return out
    if done.returncode != 0:
        out.problem = f"unavailable: {_tail(done.stderr.decode(errors='replace'))}"
        return out
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    out.version, out.settings, out.submit_s = report["version"], report["settings"], report["submit_s"]

    # 2. one worker process, until the probe reports the Nth job
    log_path = directory / f"{peer}-worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(report["command"], env=env, cwd=directory, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        try:
            while True:
                result = client.hgetall(RESULT_KEY)
                if result:
                    break
                if process.poll() is not None:
                    log_text = log_path.read_text(errors="replace")
                    out.problem = f"unavailable: worker exited with {process.returncode}: {_tail(log_text)}"
                    return out
                if time.monotonic() > deadline:
                    progress = int(client.get(PROGRESS_KEY) or 0)
                    out.problem = f"timed out after {timeout:g} s ({progress:,} of {jobs:,} jobs run)"
                    return out
                time.sleep(POLL)
            time.sleep(0.3)  # anything run twice would show in the count by now
            progress = int(client.get(PROGRESS_KEY) or 0)
        finally:
            _stop(process)
    out.runs, out.drain_s, out.cpu_s = int(result[b"jobs"]), float(result[b"seconds"]), float(result[b"cpu"])
    if progress != jobs:
        out.problem = f"note: {progress:,} runs for {jobs:,} jobs enqueued (some ran more than once)"
    return out


# ----- the table ---------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def format_table(outcomes: list[Outcome], jobs: int) -> str:
    base = next((o for o in outcomes if o.peer == "skedulr" and o.problem is None), None)
    header = ["peer", "version", "submit jobs/s", "drain jobs/s", "worker CPU µs/job", "skedulr/peer drain",
              "peer/skedulr CPU"]  # fmt: skip
    lines = [header]
    notes = []
    for o in outcomes:
        if o.drain_s is None:
            lines.append([o.peer, o.version, f"{o.problem}"])  # spans the figures' columns
            continue
        rate, cpu = o.rate, o.cpu_us
        speed = base.rate / rate if base and base.rate and rate else None
        cost = cpu / base.cpu_us if base and base.cpu_us and cpu else None
        submit = jobs / o.submit_s if o.submit_s else None
        lines.append([o.peer, o.version, _num(submit), _num(rate), _num(cpu, 1), _num(speed, 2), _num(cost, 2)])
        if o.problem:
            notes.append(f"{o.peer}: {o.problem}")
    widths = [max(len(line[c]) for line in lines if len(line) == len(header)) for c in range(len(header))]
    text = []
    for line in lines:
        if len(line) < len(header):  # a peer without figures: its problem, after its name and version
            text.append(f"{line[0].ljust(widths[0])}  {line[1].ljust(widths[1])}  {line[2]}".rstrip())
        else:
            text.append("  ".join(cell.ljust(widths[c]) if c < 2 else cell.rjust(widths[c])
                                  for c, cell in enumerate(line)).rstrip())  # fmt: skip
    text += [""] + [f"{o.peer}: {o.settings}" for o in outcomes if o.settings]
    if notes:
        text += ["", *notes]
    return "\n".join(text)


# ----- main ----------------------------------------------------------------------------------------------


def _jobs(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 100:
        raise argparse.ArgumentTypeError(f"at least 100, not {value}")
    return value


def _peers(text: str) -> list[str]:
    chosen = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PEERS]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"choose among {','.join(PEERS)}, not {text!r}")
    return [p for p in PEERS if p in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=_jobs, default=DEFAULT_JOBS, metavar="N",
                        help=f"no-op jobs per peer (default {DEFAULT_JOBS:,})")  # fmt: skip
    parser.add_argument("--only", type=_peers, default=list(PEERS), metavar="PEERS",
                        help=f"comma-separated peers to run, among {','.join(PEERS)} (default all)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds each peer gets, enqueue and drain (default {DEFAULT_TIMEOUT:g})")  # fmt: skip
    parser.add_argument("--logs", type=Path, metavar="DIR",
                        help="keep the workers' logs in DIR (default: a temporary directory, removed)")  # fmt: skip
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from redis_fixtures import RedisServer  # a test helper: it imports pytest, so only here

    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="skedulr-peers-") as tmp, RedisServer(Path(tmp) / "redis") as server:
        directory = Path(tmp) if args.logs is None else args.logs.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        client = redis.Redis.from_url(server.url, socket_timeout=10)
        version = client.info("server")["redis_version"]
        for peer in args.only:
            print(f"running {peer} ...", file=sys.stderr, flush=True)
            try:
                outcome = run_peer(peer, server.url, client, args.jobs, args.timeout, directory)
            except Exception as e:  # the benchmark's own trouble with a peer: report it and go on
                outcome = Outcome(peer, problem=f"unavailable: {type(e).__name__}: {e}")
            if outcome.problem:
                print(f"  {outcome.problem}", file=sys.stderr, flush=True)
            outcomes.append(outcome)
        client.close()
    print(f"{args.jobs:,} no-op jobs, one worker process each, Redis {version} ({server.binary}), "
          f"drain timed from the first job's end to the last's")  # fmt: skip
    print(format_table(outcomes, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
