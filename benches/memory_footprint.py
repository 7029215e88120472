"""Resident memory of the embedded engine holding 1,000,000 queued tasks with 100-byte payloads.

By default the tasks go through a running but paused `Scheduler` (`submit_many` in batches of 10,000),
as an application would queue them; `--via storage` hands spec tuples straight to `MemoryStorage`
instead, leaving out the `Task` objects. Run it as its own process (a plain script): RSS is the
whole process's, read from /proc/self/status, so anything else loaded in the process would count.

    python benches/memory_footprint.py [--tasks N] [--payload BYTES] [--via scheduler|storage] [--check]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import trio

import skedulr
from skedulr import JobContext, MemoryStorage, Scheduler, Task
from skedulr.storage.base import Spec

TARGET_MB = 450.0  # total RSS with 1,000,000 queued tasks
BATCH = 10_000


def status_kb(field: str) -> int:
    """A memory figure (kB) from /proc/self/status: VmRSS now, VmHWM the peak so far."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def payload_of(i: int, size: int) -> bytes:
    """Distinct payloads, so no two tasks could share one buffer."""
    return i.to_bytes(8, "little").ljust(size, b".")[:size]


async def noop(ctx: JobContext) -> None:
    """Registered so the tasks are valid; the scheduler is paused, so it never runs."""


async def fill_through_scheduler(tasks: int, size: int, report: dict[str, float]) -> None:
    sched = Scheduler(max_workers=100)
    sched.register_job("bench.noop", noop)
    sched.pause()
    async with sched:
        gc.collect()
        report["before_kb"] = status_kb("VmRSS")
        start = time.perf_counter()
        for first in range(0, tasks, BATCH):
            batch = [Task("bench.noop", payload_of(i, size)) for i in range(first, min(first + BATCH, tasks))]
            await sched.submit_many(batch)
        report["fill_s"] = time.perf_counter() - start
        del batch
        gc.collect()
        report["after_kb"] = status_kb("VmRSS")
        stats = await sched.stats()
        report["queued"] = stats.counts["queued"]
        report["running"] = stats.counts["running"]


async def fill_through_storage(tasks: int, size: int, report: dict[str, float]) -> None:
    storage = MemoryStorage()
    gc.collect()
    report["before_kb"] = status_kb("VmRSS")
    now_ms = int(time.time() * 1000)
    start = time.perf_counter()
    for first in range(0, tasks, BATCH):
        # (id, name, pool, payload, priority, max_retries, timeout_ms, key, run_at_ms, parents, delay_ms)
        specs: list[Spec] = [(None, "bench.noop", "default", payload_of(i, size), 0, 3, 0, None, None, [], None)
                 for i in range(first, min(first + BATCH, tasks))]  # fmt: skip
        await storage.submit_many(specs, now_ms)
    report["fill_s"] = time.perf_counter() - start
    del specs
    gc.collect()
    report["after_kb"] = status_kb("VmRSS")
    counts = await storage.counts(now_ms)
    report["queued"] = sum(c["queued"] for c in counts.values())
    report["running"] = sum(c["running"] for c in counts.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--payload", type=int, default=100, help="payload bytes per task (default 100)")
    parser.add_argument("--via", choices=("scheduler", "storage"), default="scheduler")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if total RSS exceeds {TARGET_MB:g} MB")
    args = parser.parse_args(argv)

    start_kb = status_kb("VmRSS")  # the interpreter with skedulr and Trio imported
    report: dict[str, float] = {}
    fill = fill_through_scheduler if args.via == "scheduler" else fill_through_storage
    trio.run(fill, args.tasks, args.payload, report)
    if report["queued"] != args.tasks or report["running"]:
        raise SystemExit(f"expected {args.tasks} queued tasks, got {report}")

    before, after, peak = report["before_kb"] / 1024, report["after_kb"] / 1024, status_kb("VmHWM") / 1024
    per_task = (report["after_kb"] - report["before_kb"]) * 1024 / args.tasks
    met = after <= TARGET_MB
    rate = args.tasks / report["fill_s"]
    print(f"skedulr {skedulr.__version__}, {args.tasks:,} queued tasks, {args.payload}-byte payloads, "
          f"via {args.via}, filled in {report['fill_s']:.2f} s ({rate:,.0f} tasks/s)")  # fmt: skip
    rows = [
        ("RSS at start (imports)", f"{start_kb / 1024:,.1f} MB"),
        ("RSS before filling", f"{before:,.1f} MB"),
        ("RSS after filling", f"{after:,.1f} MB"),
        ("RSS peak (VmHWM)", f"{peak:,.1f} MB"),
        ("growth", f"{after - before:,.1f} MB"),
        ("per task", f"{per_task:,.0f} bytes ({per_task - args.payload:,.0f} beyond the payload)"),
        ("target", f"total RSS <= {TARGET_MB:g} MB: {'met' if met else 'MISSED'}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
