"""End-to-end throughput and latency of the embedded engine against a bare Trio dispatch, in one run.

The measuring code lives in `skedulr._bench` (shared with `skedulr bench`); this script only picks the
benchmark's defaults (100,000 jobs, 100 workers, 3 alternating runs per side, since the machine is
noisy) and can fail the process when the target ratio is missed.

    python benches/embedded_throughput.py [--jobs N] [--workers W] [--runs R] [--check]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from skedulr import _bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=_bench.DEFAULT_JOBS)
    parser.add_argument("--workers", type=int, default=_bench.DEFAULT_WORKERS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=_bench.DEFAULT_LATENCY_SAMPLES)
    parser.add_argument("--latency-interval", type=float, default=_bench.DEFAULT_LATENCY_INTERVAL)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--check", action="store_true", help="exit 1 if the median drain ratio misses its target")
    args = parser.parse_args(argv)

    progress = _bench.ProgressLine(sys.stderr) if args.progress else None
    result = _bench.compare(args.jobs, args.workers, runs=args.runs, latency_samples=args.latency_samples,
                            latency_interval=args.latency_interval, progress=progress)  # fmt: skip
    print(_bench.describe(result))
    print(_bench.format_table(result))
    print(_bench.verdict(result))
    assert result.bare is not None
    if args.runs > 1:  # every run, so a reader can see the spread behind best and median
        for side in (result.skedulr, result.bare):
            rates = ", ".join(f"{r.drain_rate:,.0f}" for r in side.throughput)
            print(f"{side.name} drain jobs/s per run: {rates}")
    median_ratio = statistics.median(r.drain_rate for r in result.skedulr.throughput) / statistics.median(
        r.drain_rate for r in result.bare.throughput
    )
    return 1 if args.check and median_ratio < _bench.TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
