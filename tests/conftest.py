"""Shared fixtures: a storage for each test, a scheduler factory over it, and a polling helper.

Storage-specific fixtures (e.g. Redis) can parametrize or override `storage`; everything else here is
storage-agnostic.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import trio

from skedulr import MemoryStorage, Scheduler, Storage


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread() -> None:
    """Collects the previous test's schedulers here, on the thread that made them.

    Workaround: `_core.Engine` is an `unsendable` PyO3 class, so a MemoryStorage that a garbage collection
    started by some other thread (a watchdog or job thread) frees raises an unraisable RuntimeError, which
    `filterwarnings = error` pins on whatever test runs then. The bug itself is tested in test_scheduler.py.
    What survives is frozen (never collected again), so each collection only scans the last test's objects.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture
def storage() -> Storage:
    """A fresh storage for one test."""
    return MemoryStorage()


@pytest.fixture
def sched(storage: Storage) -> Callable[..., Scheduler]:
    """Factory: `sched(**options)` makes a (not yet started) Scheduler over this test's storage."""

    def make(**options: Any) -> Scheduler:
        options.setdefault("storage", storage)
        return Scheduler(**options)

    return make


@pytest.fixture
def until() -> Callable[..., Any]:
    """`await until(predicate)`: polls a sync or async predicate until it is truthy; returns its value.

    Fails with `trio.TooSlowError` after `timeout` seconds (virtual ones under `autojump_clock`)."""

    async def until(predicate: Callable[[], Any], *, timeout: float = 10.0, poll: float = 0.01) -> Any:
        with trio.fail_after(timeout):
            while True:
                value = predicate()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                await trio.sleep(poll)

    return until
