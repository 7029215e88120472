"""Shared fixtures: a storage for each test, a scheduler factory over it, and a polling helper.

Storage-specific fixtures (e.g. Redis) can parametrize or override `storage`; everything else here is
storage-agnostic.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from redis_fixtures import redis_server, redis_url  # noqa: F401
from skedulr import MemoryStorage, Scheduler, Storage
from skedulr.storage._redis_io import outstanding_calls
from skedulr.storage.redis import RedisStorage

# Under autojump, Trio jumps the clock whenever every task has been blocked this long (real seconds).
AUTOJUMP_THRESHOLD = 0.001


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """A fresh storage for one test: every test that takes it runs against both storages (the contract)."""
    if request.param == "memory":
        return MemoryStorage()
    server = request.getfixturevalue("redis_server")
    return RedisStorage(server.url, prefix=f"test-{os.urandom(4).hex()}", use_client_clock=True, poll_interval=30.0)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """pytest-trio's autojump clock, jumping only after a little real idle time (a sync job's thread
    leaves every Trio task blocked without the program being idle) and never while a Redis call waits for
    its reply (the program is waiting on Redis then, not idle). MockClock cannot be subclassed, so the
    hook Trio's run loop calls, `_autojump`, is wrapped on the instance."""
    clock = trio.testing.MockClock(autojump_threshold=AUTOJUMP_THRESHOLD)
    jump = clock._autojump

    def jump_unless_waiting_on_redis() -> None:
        if outstanding_calls() == 0:
            jump()

    clock._autojump = jump_unless_waiting_on_redis  # type: ignore[method-assign]
    return clock


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
