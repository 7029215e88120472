"""Catches async jobs that never yield. Such a job freezes the event loop, so every other job, the
heartbeats and the scheduler itself stop with it; only another thread can notice.

A watchdog thread asks the event loop, a few times a second, to run a tiny callback that stamps the
time (`run_sync_soon`; nothing sleeps on Trio's clock, so a test's autojump clock is left alone). When
no callback has run for `limit` seconds, the loop is stuck: the thread looks at the loop thread's
stack, and if the frame of `Scheduler._run_attempt` is on it (a job is what is running), it raises
`JobBlockedError` inside that job with `PyThreadState_SetAsyncExc`. The job's attempt then fails like
any job that raised, and retries apply.
If something else holds the loop, it only logs.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

import trio

from .errors import JobBlockedError

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger("skedulr")


class Watchdog:
    def __init__(self, scheduler: Scheduler, limit: float) -> None:
        self._attempt_code = type(scheduler)._run_attempt.__code__
        self._limit = limit
        self._tick_every = min(0.25, limit / 4)
        self._last_tick = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._loop_thread = threading.get_ident()
        self._last_tick = time.monotonic()
        token = trio.lowlevel.current_trio_token()
        thread = threading.Thread(target=self._watch, args=(token,), name="skedulr-watchdog", daemon=True)
        thread.start()
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self._stop.set()

    def _tick(self) -> None:
        self._last_tick = time.monotonic()

    def _watch(self, token: trio.lowlevel.TrioToken) -> None:
        reported = 0.0
        while not self._stop.wait(self._tick_every):
            try:
                token.run_sync_soon(self._tick)
            except trio.RunFinishedError:
                return
            stalled_since = self._last_tick
            if time.monotonic() - stalled_since < self._limit or stalled_since == reported:
                continue
            reported = stalled_since
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None or not self._inside_attempt(frame):
                log.warning("the event loop has not yielded for %.1fs (not inside a job)", self._limit)
                continue
            if self._last_tick != stalled_since:  # it moved on while we looked
                continue
            log.error("an async job has held the event loop for %.1fs; raising JobBlockedError in it", self._limit)
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._loop_thread),
                                                       ctypes.py_object(JobBlockedError))  # fmt: skip

    def _inside_attempt(self, frame: FrameType | None) -> bool:
        while frame is not None:
            if frame.f_code is self._attempt_code:
                return True
            frame = frame.f_back
        return False
