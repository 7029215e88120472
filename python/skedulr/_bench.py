"""Measuring code shared by `skedulr bench` and `benches/embedded_throughput.py`, so both report the
same thing, measured the same way.

Two sides run the same no-op async jobs with the same number of concurrent workers:

- skedulr: a `Scheduler` on the embedded engine (`MemoryStorage`). Submit is one `submit_many` call
  (building the `Task` objects is timed separately); drain runs from the end of that call until every
  job has run and the storage records it as succeeded (`Scheduler.join`).
- bare Trio: the dispatch ceiling the issue names: a dispatcher task sends every job through a
  `trio.open_memory_channel(workers)` to `workers` runner tasks, each calling an `async def noop()`;
  timed from the first send until every job has run (dispatch and drain overlap, so the bare side's
  submit and drain rates are the same figure).

Latency is measured apart, against an idle dispatcher: jobs are submitted one at a time a few ms
apart, and each records `time.perf_counter()` when it starts (the submit side records it just before
the submit call). Each measurement gets a fresh `trio.run`, so one cannot slow down the next.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO, TypeVar, TypeVarTuple

import trio
import trio.testing

from .context import JobContext
from .scheduler import Scheduler
from .task import Task

DEFAULT_JOBS = 100_000
DEFAULT_WORKERS = 100
DEFAULT_LATENCY_SAMPLES = 500
DEFAULT_LATENCY_INTERVAL = 0.002
TARGET_RATIO = 0.75  # skedulr drain rate / bare Trio drain rate (benches/README.md)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


# ----- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throughput:
    """One submit-then-drain run. Times are seconds."""

    jobs: int
    workers: int
    build_s: float  # building the Task objects (0 for bare Trio, which has none)
    submit_s: float
    drain_s: float

    @property
    def submit_rate(self) -> float:
        return _rate(self.jobs, self.submit_s)

    @property
    def submit_with_build_rate(self) -> float:
        """What a caller pays per job when it also has to build the `Task`."""
        return _rate(self.jobs, self.build_s + self.submit_s)

    @property
    def drain_rate(self) -> float:
        return _rate(self.jobs, self.drain_s)


@dataclass(frozen=True, slots=True)
class Latency:
    """Submit→start delays, in seconds, of jobs submitted one at a time to an idle dispatcher."""

    samples: tuple[float, ...]

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)


@dataclass(slots=True)
class Side:
    """Every run of one side (skedulr or bare Trio), in the order they ran."""

    name: str
    throughput: list[Throughput] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Comparison:
    jobs: int
    workers: int
    runs: int
    latency_samples: int
    skedulr: Side
    bare: Side | None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: always a value that was measured, never an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else math.inf


# ----- progress ------------------------------------------------------------------------------------


class ProgressLine:
    """One line on `stream` rewritten in place (carriage return): the only progress display, so the
    benchmark needs nothing beyond Trio."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._width = 0

    def show(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    async def watch(self, label: str, done: Callable[[], int], total: int) -> None:
        """Shows `done()/total` and the rate since the call, every `interval`, until cancelled."""
        start = time.perf_counter()
        self.show(f"{label}: {done():,}/{total:,} jobs")
        while True:
            await trio.sleep(self.interval)
            n = done()
            elapsed = time.perf_counter() - start
            self.show(f"{label}: {n:,}/{total:,} jobs, {n / elapsed:,.0f} jobs/s")


async def _watch(progress: ProgressLine | None, label: str, done: Callable[[], int], total: int) -> None:
    if progress is not None:
        await progress.watch(label, done, total)


# ----- skedulr ---------------------------------------------------------------------------------------


def skedulr_throughput(
    jobs: int, workers: int, *, progress: ProgressLine | None = None, label: str = "skedulr"
) -> Throughput:
    """Submits `jobs` no-op jobs with one `submit_many` to a running scheduler, then drains them."""
    return _fresh_run(_skedulr_throughput, jobs, workers, progress, label)


async def _skedulr_throughput(jobs: int, workers: int, progress: ProgressLine | None, label: str) -> Throughput:
    sched = Scheduler(max_workers=workers)
    done = 0
    all_ran = trio.Event()

    async def noop(ctx: JobContext) -> None:
        nonlocal done
        done += 1
        if done == jobs:
            all_ran.set()

    sched.register_job("bench.noop", noop)
    async with sched:
        async with trio.open_nursery() as nursery:
            await trio.testing.wait_all_tasks_blocked()  # fetcher and runners parked, as when idle
            t0 = time.perf_counter()
            tasks = [Task("bench.noop") for _ in range(jobs)]
            t1 = time.perf_counter()
            await sched.submit_many(tasks)
            t2 = time.perf_counter()
            del tasks
            nursery.start_soon(_watch, progress, label, lambda: done, jobs)
            await all_ran.wait()
            await sched.join(poll=0.0005)  # and recorded as succeeded by the storage
            t3 = time.perf_counter()
            nursery.cancel_scope.cancel()
        stats = await sched.stats()
    if stats.counts["succeeded"] != jobs:
        raise RuntimeError(f"expected {jobs} succeeded tasks, the storage reports {stats.counts}")
    return Throughput(jobs, workers, t1 - t0, t2 - t1, t3 - t2)


def skedulr_latency(
    samples: int,
    workers: int,
    *,
    interval: float = DEFAULT_LATENCY_INTERVAL,
    progress: ProgressLine | None = None,
    label: str = "skedulr latency",
) -> Latency:
    """Submits `samples` jobs one by one, `interval` seconds apart, to an idle scheduler."""
    return _fresh_run(_skedulr_latency, samples, workers, interval, progress, label)


async def _skedulr_latency(
    samples: int, workers: int, interval: float, progress: ProgressLine | None, label: str
) -> Latency:
    sched = Scheduler(max_workers=workers)
    submitted = [0.0] * samples
    started = [0.0] * samples
    done = 0
    all_ran = trio.Event()

    async def probe(ctx: JobContext) -> None:
        nonlocal done
        started[int.from_bytes(ctx.payload, "little")] = time.perf_counter()
        done += 1
        if done == samples:
            all_ran.set()

    sched.register_job("bench.probe", probe)
    async with sched, trio.open_nursery() as nursery:
        nursery.start_soon(_watch, progress, label, lambda: done, samples)
        for i in range(samples):
            task = Task("bench.probe", payload=i.to_bytes(4, "little"))
            await trio.testing.wait_all_tasks_blocked()  # idle: the previous job is over
            submitted[i] = time.perf_counter()
            await sched.submit(task)
            await trio.sleep(interval)
        await all_ran.wait()
        nursery.cancel_scope.cancel()
    return Latency(tuple(s - t for s, t in zip(started, submitted, strict=True)))


# ----- bare Trio -----------------------------------------------------------------------------------


async def noop() -> None:
    """The bare side's job: what a no-op skedulr job would be without a scheduler around it."""


def bare_throughput(
    jobs: int, workers: int, *, progress: ProgressLine | None = None, label: str = "bare trio"
) -> Throughput:
    """`jobs` no-op calls dispatched to `workers` runner tasks through a memory channel."""
    return _fresh_run(_bare_throughput, jobs, workers, progress, label)


async def _bare_throughput(jobs: int, workers: int, progress: ProgressLine | None, label: str) -> Throughput:
    send, receive = trio.open_memory_channel[int](workers)
    done = 0
    all_ran = trio.Event()

    async def runner() -> None:
        nonlocal done
        async for _ in receive:
            await noop()
            done += 1
            if done == jobs:
                all_ran.set()

    async def dispatch() -> None:
        async with send:
            for i in range(jobs):
                await send.send(i)

    async with trio.open_nursery() as nursery:
        for _ in range(workers):
            nursery.start_soon(runner)
        await trio.testing.wait_all_tasks_blocked()
        t1 = time.perf_counter()
        nursery.start_soon(dispatch)
        nursery.start_soon(_watch, progress, label, lambda: done, jobs)
        await all_ran.wait()
        t2 = time.perf_counter()
        nursery.cancel_scope.cancel()
    # Dispatch and drain overlap here, so both rates are the same number: jobs over the whole run.
    return Throughput(jobs, workers, 0.0, t2 - t1, t2 - t1)


def bare_latency(
    samples: int,
    workers: int,
    *,
    interval: float = DEFAULT_LATENCY_INTERVAL,
    progress: ProgressLine | None = None,
    label: str = "bare trio latency",
) -> Latency:
    return _fresh_run(_bare_latency, samples, workers, interval, progress, label)


async def _bare_latency(
    samples: int, workers: int, interval: float, progress: ProgressLine | None, label: str
) -> Latency:
    send, receive = trio.open_memory_channel[int](math.inf)
    submitted = [0.0] * samples
    started = [0.0] * samples
    done = 0
    all_ran = trio.Event()

    async def runner() -> None:
        nonlocal done
        async for i in receive:
            started[i] = time.perf_counter()
            await noop()
            done += 1
            if done == samples:
                all_ran.set()

    async with trio.open_nursery() as nursery:
        for _ in range(workers):
            nursery.start_soon(runner)
        nursery.start_soon(_watch, progress, label, lambda: done, samples)
        for i in range(samples):
            await trio.testing.wait_all_tasks_blocked()
            submitted[i] = time.perf_counter()
            send.send_nowait(i)
            await trio.sleep(interval)
        await all_ran.wait()
        nursery.cancel_scope.cancel()
    return Latency(tuple(s - t for s, t in zip(started, submitted, strict=True)))


def _fresh_run(fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """Runs one measurement in its own `trio.run`, after collecting garbage the last one left."""
    gc.collect()
    return trio.run(fn, *args)


# ----- the comparison --------------------------------------------------------------------------------


def compare(
    jobs: int = DEFAULT_JOBS,
    workers: int = DEFAULT_WORKERS,
    *,
    runs: int = 1,
    baseline: bool = True,
    latency_samples: int = DEFAULT_LATENCY_SAMPLES,
    latency_interval: float = DEFAULT_LATENCY_INTERVAL,
    progress: ProgressLine | None = None,
) -> Comparison:
    """Runs skedulr and (unless `baseline` is False) bare Trio `runs` times each, alternately, so
    drift in a noisy machine's speed hits both sides alike."""
    sk = Side("skedulr")
    bare = Side("bare trio") if baseline else None
    try:
        for run in range(1, runs + 1):
            of = f" (run {run}/{runs})" if runs > 1 else ""
            sk.throughput.append(skedulr_throughput(jobs, workers, progress=progress, label=f"skedulr{of}"))
            if bare is not None:
                bare.throughput.append(bare_throughput(jobs, workers, progress=progress, label=f"bare trio{of}"))
            if latency_samples:
                sk.latency.append(skedulr_latency(latency_samples, workers, interval=latency_interval,
                                                  progress=progress, label=f"skedulr latency{of}"))  # fmt: skip
                if bare is not None:
                    bare.latency.append(bare_latency(latency_samples, workers, interval=latency_interval,
                                                     progress=progress, label=f"bare trio latency{of}"))  # fmt: skip
    finally:
        if progress is not None:
            progress.clear()
    return Comparison(jobs, workers, runs, latency_samples, sk, bare)


# ----- the table ---------------------------------------------------------------------------------------


def _best_median(values: Sequence[float], higher_is_better: bool) -> tuple[float, float]:
    best = max(values) if higher_is_better else min(values)
    return best, statistics.median(values)


def _stats(side: Side) -> dict[str, tuple[float, float]]:
    """Row name -> (best, median) over the side's runs."""
    t, lat = side.throughput, side.latency
    out = {
        "submit jobs/s": _best_median([r.submit_rate for r in t], True),
        "drain jobs/s": _best_median([r.drain_rate for r in t], True),
    }
    if any(r.build_s for r in t):
        out["submit incl. Task() jobs/s"] = _best_median([r.submit_with_build_rate for r in t], True)
    if lat:
        out["latency p50 ms"] = _best_median([x.p50 * 1000 for x in lat], False)
        out["latency p99 ms"] = _best_median([x.p99 * 1000 for x in lat], False)
    return out


ROWS = ("submit jobs/s", "submit incl. Task() jobs/s", "drain jobs/s", "latency p50 ms", "latency p99 ms")


def _fmt(value: float | None, row: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if row.startswith("latency"):
        return f"{value:.3f}"
    if row == "ratio":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def format_table(result: Comparison) -> str:
    """The result as an aligned text table: best and median when there were several runs."""
    sides = [result.skedulr] + ([result.bare] if result.bare is not None else [])
    stats = [_stats(s) for s in sides]
    several = result.runs > 1
    kinds = ("best", "median") if several else ("",)
    header = ["", *(f"{s.name} {k}".strip() for s in sides for k in kinds)]
    if result.bare is not None:
        header += [f"skedulr/bare {k}".strip() for k in kinds]
    side_columns = len(sides) * len(kinds)
    ratio_columns = len(header) - 1 - side_columns
    lines: list[list[str]] = [header]
    lines.append(["jobs", *([f"{result.jobs:,}"] * side_columns), *([""] * ratio_columns)])
    lines.append(["workers", *([f"{result.workers}"] * side_columns), *([""] * ratio_columns)])
    for row in ROWS:
        if not any(row in st for st in stats):
            continue
        cells = [row]
        for st in stats:
            pair = st.get(row)
            cells += [_fmt(pair[i] if pair else None, row) for i in range(len(kinds))]
        if result.bare is not None:
            ours, theirs = stats[0].get(row), stats[1].get(row)
            for i in range(len(kinds)):
                ratio = ours[i] / theirs[i] if ours and theirs and row.endswith("jobs/s") else None
                cells.append(_fmt(ratio, "ratio"))
        lines.append(cells)
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    text = [
        "  ".join(cell.ljust(widths[0]) if c == 0 else cell.rjust(widths[c]) for c, cell in enumerate(line)).rstrip()
        for line in lines
    ]
    return "\n".join(text)


def verdict(result: Comparison) -> str | None:
    """The drain-ratio target line, or None without a baseline."""
    if result.bare is None:
        return None
    best = max(r.drain_rate for r in result.skedulr.throughput) / max(r.drain_rate for r in result.bare.throughput)
    median = statistics.median(r.drain_rate for r in result.skedulr.throughput) / statistics.median(
        r.drain_rate for r in result.bare.throughput
    )
    met = "met" if median >= TARGET_RATIO else "MISSED"
    return (f"drain ratio skedulr/bare: best {best:.2f}, median {median:.2f} "
            f"(target >= {TARGET_RATIO:.2f}: {met})")  # fmt: skip


def describe(result: Comparison) -> str:
    """The header printed above the table: what was measured."""
    lat = (f"; latency: {result.latency_samples} jobs submitted one by one to an idle dispatcher"
           if result.latency_samples else "")  # fmt: skip
    runs = f"{result.runs} runs per side, alternating" if result.runs > 1 else "1 run per side"
    return f"no-op async jobs, embedded engine (MemoryStorage); {runs}{lat}"
