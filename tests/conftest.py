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
from skedulr.storage.redis import RedisStorage

# Under autojump, Trio jumps the clock whenever every task is blocked, also while a Redis reply is on
# its way from the I/O thread: with Redis, jump only after this much real idle time (a round trip is
# well under a millisecond on loopback).
REDIS_AUTOJUMP_THRESHOLD = 0.005
THREAD_AUTOJUMP_THRESHOLD = 0.001


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """A fresh storage for one test: every test that takes it runs against both storages (the contract)."""
    if request.param == "memory":
        return MemoryStorage()
    server = request.getfixturevalue("redis_server")
    return RedisStorage(server.url, prefix=f"test-{os.urandom(4).hex()}", use_client_clock=True, poll_interval=30.0)


@pytest.fixture
def autojump_clock(request: pytest.FixtureRequest) -> trio.testing.MockClock:
    """pytest-trio's autojump clock, jumping only after a little real idle time: a sync job's thread or a
    Redis reply on its way leaves every Trio task blocked without the program being idle. Redis tests
    wait longer (a round trip on a loaded machine)."""
    params = getattr(request.node, "callspec", None)
    on_redis = params is not None and params.params.get("storage") == "redis"
    return trio.testing.MockClock(
        autojump_threshold=REDIS_AUTOJUMP_THRESHOLD if on_redis else THREAD_AUTOJUMP_THRESHOLD
    )


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
