"""Where the scheduler's "now" comes from: Trio's clock, anchored to the wall clock once per run.

Everything timed (delays, retries, leases, cron) reads `now_ms()`, so a test's `autojump_clock` moves
all of it at once, and the storage is always handed an explicit time.
"""

from __future__ import annotations

import time

import trio


class Clock:
    def __init__(self) -> None:
        self._offset_ms: float | None = None

    def anchor(self) -> None:
        """Call at the start of each Trio run: wall time = Trio time + offset from here on."""
        self._offset_ms = time.time() * 1000 - trio.current_time() * 1000

    def now_ms(self) -> int:
        if self._offset_ms is None:
            return int(time.time() * 1000)
        try:
            return int(trio.current_time() * 1000 + self._offset_ms)
        except RuntimeError:  # outside Trio (e.g. a thread): fall back to the wall clock
            return int(time.time() * 1000)

    def trio_time(self, epoch_ms: int) -> float:
        """The Trio deadline for a wall-clock moment."""
        assert self._offset_ms is not None, "anchor() first"
        return (epoch_ms - self._offset_ms) / 1000
