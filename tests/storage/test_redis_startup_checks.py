"""The Redis version floor of `RedisStorage`'s startup check (README: "Startup checks: Redis 6.2 or newer").

tests/storage/test_redis_startup.py covers the maxmemory warning and the layout check; this covers the
version. The Redis here passes the floor, so the refusal is driven through the one seam the check has:
the storage's own INFO read, on a real connection to the real server, with only `redis_version` in the
reply changed. Everything after it (the layout key, CONFIG GET) runs against the real server.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from skedulr import RedisStorage, Scheduler
from skedulr.errors import StorageError
from skedulr.storage.redis import MIN_REDIS_VERSION


def _reporting(storage: RedisStorage, version: str | None, seen: list[str]) -> Callable[..., Awaitable[Any]]:
    """The storage's `_exec`, with the real `INFO server` reply's redis_version replaced by `version`
    (left out when None); every other command goes to the server as it is."""
    real = storage._exec

    async def exec_(*args: Any) -> Any:
        reply = await real(*args)
        if args[:1] == ("INFO",):
            seen.append(str(reply["redis_version"]))
            reply = {k: v for k, v in reply.items() if k != "redis_version"}
            if version is not None:
                reply["redis_version"] = version
        return reply

    return exec_


@pytest.fixture
def prefix() -> str:
    return f"version-{os.urandom(3).hex()}"


async def test_the_real_server_is_accepted(redis_url: str, prefix: str) -> None:
    """The floor lets the Redis these tests run on (6.2 or 7.x) through, and starts a session on it."""
    client = redis.Redis.from_url(redis_url)
    try:
        real = str(client.info("server")["redis_version"])
        assert tuple(int(p) for p in real.split(".")[:2]) >= MIN_REDIS_VERSION, real
        async with Scheduler(RedisStorage(redis_url, prefix=prefix)):
            pass
        assert client.get(f"{{{prefix}}}:layout") is not None, "the check did not get past the version"
    finally:
        client.close()


@pytest.mark.parametrize("version", ["6.0.16", "5.0.14", "6.1.9", "4.0.0", "2.8.24"])
async def test_a_redis_older_than_6_2_is_refused_before_anything_is_written(
    redis_url: str, prefix: str, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older servers lack what the scripts use; the refusal names the version found and the one needed,
    and comes before the instance writes to the prefix."""
    storage = RedisStorage(redis_url, prefix=prefix)
    seen: list[str] = []
    monkeypatch.setattr(storage, "_exec", _reporting(storage, version, seen))
    with pytest.raises(StorageError) as refused:
        async with Scheduler(storage):
            pytest.fail("a scheduler started on a Redis older than the floor")
    assert seen, "the startup check did not read INFO"
    assert str(refused.value) == f"Redis {version} is too old: skedulr needs 6.2+"
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys(f"{{{prefix}}}:*") == [], "the refused instance wrote to the prefix"
    finally:
        client.close()


async def test_a_reply_without_a_version_is_refused(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that does not say its version is not assumed to be new enough."""
    storage = RedisStorage(redis_url, prefix=prefix)
    monkeypatch.setattr(storage, "_exec", _reporting(storage, None, []))
    with pytest.raises(StorageError, match=r"Redis 0 is too old: skedulr needs 6\.2\+"):
        async with Scheduler(storage):
            pass


@pytest.mark.parametrize("version", ["6.2.0", "6.2.14", "6.10.0", "7.0.15", "10.0.0", "255.255.255"])
async def test_versions_from_6_2_on_are_compared_as_numbers_and_accepted(
    redis_url: str, prefix: str, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The floor itself, and versions a comparison of text would get wrong ("6.10" and "10.0" sort before
    "6.2" as strings; 255.255.255 is what unstable builds report)."""
    storage = RedisStorage(redis_url, prefix=prefix)
    seen: list[str] = []
    monkeypatch.setattr(storage, "_exec", _reporting(storage, version, seen))
    async with Scheduler(storage):
        pass
    assert seen
