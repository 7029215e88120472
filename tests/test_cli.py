"""`skedulr bench` end to end, small enough for the test suite: it must run, print its table, and
report usage errors through the exit status rather than by exiting the test process."""

from __future__ import annotations

import re

import pytest

from skedulr import cli


def test_bench_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bench", "--jobs", "2000", "--workers", "20"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert re.fullmatch(r"jobs +2,000 +2,000", rows["jobs"])
    assert re.fullmatch(r"workers +20 +20", rows["workers"])
    # skedulr rate, bare Trio rate, ratio
    assert re.fullmatch(r"drain jobs/s +[\d,]+ +[\d,]+ +\d+\.\d\d", rows["drain jobs/s"]), rows["drain jobs/s"]
    assert re.fullmatch(r"latency p99 ms +\d+\.\d{3} +\d+\.\d{3} +-", rows["latency p99 ms"])
    assert "drain ratio skedulr/bare" in out
    assert "/2,000 jobs" in err  # the progress line went to stderr, not stdout
    assert "/2,000 jobs" not in out


def test_bench_without_baseline_latency_or_progress(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bench", "--jobs", "2000", "--workers", "20", "--no-baseline", "--latency-samples", "0",
                     "--no-progress"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    drain = next(line for line in out.splitlines() if line.startswith("drain jobs/s"))
    assert re.fullmatch(r"drain jobs/s +[\d,]+", drain)
    assert "bare" not in out
    assert "latency" not in out


@pytest.mark.parametrize(
    "argv",
    [["bench", "--jobs", "many"], ["bench", "--jobs", "0"], ["bench", "--workers", "20000"], ["bench", "--nope"], []],
)
def test_usage_errors_return_non_zero(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "usage: skedulr" in capsys.readouterr().err


def test_help_returns_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--help"]) == 0
    assert "--no-baseline" in capsys.readouterr().out
