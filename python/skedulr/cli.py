"""The `skedulr` command. `skedulr bench` measures this machine's embedded throughput and latency
against a bare Trio dispatch, so a number can be checked without writing a program first;
`skedulr worker module:attribute` runs a worker process for a scheduler defined in user code.

    skedulr bench [--jobs N] [--workers W] [--no-baseline] [--runs R] [--latency-samples S]
    skedulr worker myapp.tasks:scheduler
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, _bench


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    if text.strip() == "0":
        return 0
    return _positive_int(text)


def _workers(text: str) -> int:
    value = _positive_int(text)
    if value > 10_000:  # the scheduler's own pool size limit
        raise argparse.ArgumentTypeError(f"at most 10000 workers, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skedulr", description="A Rust-accelerated task scheduler for Trio.")
    parser.add_argument("--version", action="version", version=f"skedulr {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench",
        help="measure embedded throughput and latency against bare Trio",
        description="Runs N no-op async jobs through a Scheduler on the embedded engine (MemoryStorage), "
        "then the same jobs through bare Trio runner tasks fed by a memory channel, and prints both.",
    )
    bench.add_argument("--jobs", type=_positive_int, default=_bench.DEFAULT_JOBS, metavar="N",
                       help=f"jobs per throughput run (default {_bench.DEFAULT_JOBS:,})")  # fmt: skip
    bench.add_argument("--workers", type=_workers, default=_bench.DEFAULT_WORKERS, metavar="W",
                       help=f"concurrent workers on each side (default {_bench.DEFAULT_WORKERS})")  # fmt: skip
    bench.add_argument("--no-baseline", dest="baseline", action="store_false",
                       help="skip the bare Trio baseline and the ratio")  # fmt: skip
    bench.add_argument("--runs", type=_positive_int, default=1, metavar="R",
                       help="runs per side, alternating; best and median are shown when R > 1 (default 1)")  # fmt: skip
    bench.add_argument("--latency-samples", type=_non_negative_int, default=_bench.DEFAULT_LATENCY_SAMPLES,
                       metavar="S", help="jobs submitted one by one, 2 ms apart, to measure submit-to-start "
                       f"latency; 0 skips it (default {_bench.DEFAULT_LATENCY_SAMPLES})")  # fmt: skip
    bench.add_argument("--no-progress", dest="progress", action="store_false",
                       help="do not show the progress line on stderr")  # fmt: skip
    worker = commands.add_parser(
        "worker",
        help="run the Scheduler a module defines until SIGINT/SIGTERM",
        description="Imports MODULE:ATTRIBUTE (a skedulr.Scheduler, or a function returning one) and runs it. "
        "The first SIGINT/SIGTERM shuts down gracefully; a second one cancels running jobs at once "
        "(their tasks are handed back to the queue).",
    )
    worker.add_argument("target", metavar="MODULE:ATTRIBUTE", help="e.g. myapp.tasks:scheduler")
    return parser


def bench(args: argparse.Namespace) -> int:
    progress = _bench.ProgressLine(sys.stderr) if args.progress else None
    result = _bench.compare(args.jobs, args.workers, runs=args.runs, baseline=args.baseline,
                            latency_samples=args.latency_samples, progress=progress)  # fmt: skip
    print(_bench.describe(result))
    print(_bench.format_table(result))
    verdict = _bench.verdict(result)
    if verdict is not None:
        print(verdict)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `skedulr` console script and `python -m skedulr`. Returns the exit status
    instead of exiting, so tests and other programs can call it."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help, --version and usage errors
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "worker":
            from ._worker import run_worker

            return run_worker(args.target)
        return bench(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
