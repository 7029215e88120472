"""Where the scheduler's "now" comes from: Trio's clock, anchored to the wall clock once per run.

Everything timed (delays, retries, leases, cron) reads `now_ms()`, so a test's `autojump_clock` moves
all of it at once, and the storage is always handed an explicit time.
"""

from __future__ import annotations

import time

import trio

# One anchor per Trio run, shared by every scheduler in it: two schedulers started at different
# (virtual) times in one run must agree on "now", or a task handed from one to the other runs late.
_RUN_OFFSET_MS: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("skedulr_clock_offset_ms")


class Clock:
    def __init__(self) -> None:
        self._offset_ms: float | None = None

    def anchor(self) -> None:
        """Call at the start of a scheduler run: wall time = Trio time + this run's offset."""
        try:
            self._offset_ms = _RUN_OFFSET_MS.get()
        except LookupError:
            self._offset_ms = time.time() * 1000 - trio.current_time() * 1000
            _RUN_OFFSET_MS.set(self._offset_ms)

    def now_ms(self) -> int:
        if self._offset_ms is None:
            return int(time.time() * 1000)
        try:
            # round, not int: a sleep until `trio_time(ms)` must wake at `ms`, not at ms - 1 by float error
            return round(trio.current_time() * 1000 + self._offset_ms)
        except RuntimeError:  # outside Trio (e.g. a thread): fall back to the wall clock
            return int(time.time() * 1000)

    def trio_time(self, epoch_ms: int) -> float:
        """The Trio deadline for a wall-clock moment."""
        assert self._offset_ms is not None, "anchor() first"
        return (epoch_ms - self._offset_ms) / 1000
