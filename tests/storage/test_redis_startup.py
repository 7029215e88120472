"""Startup checks of the Redis storage: an eviction policy that could drop tasks is warned about loudly,
and the password never shows in what is logged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import redis

from redis_fixtures import RedisServer
from skedulr import RedisStorage, Scheduler
from skedulr.errors import StorageError
from skedulr.storage.redis import LAYOUT


async def test_an_evicting_maxmemory_policy_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with RedisServer(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory-policy", "allkeys-lru")
        client.config_set("requirepass", "s3cret-pass")
        client.close()
        url = f"redis://:s3cret-pass@127.0.0.1:{server.port}/0"
        sched = Scheduler(RedisStorage(url, prefix=f"startup-{os.urandom(3).hex()}"))
        with caplog.at_level(logging.WARNING, logger="skedulr"):
            async with sched:
                pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("maxmemory-policy=allkeys-lru" in w and "EVICT TASKS" in w for w in warnings), warnings
    assert all("s3cret-pass" not in w for w in warnings)
    assert "s3cret-pass" not in repr(sched.storage)


async def test_noeviction_is_not_warned_about(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    sched = Scheduler(RedisStorage(redis_url, prefix=f"startup-{os.urandom(3).hex()}"))
    with caplog.at_level(logging.WARNING, logger="skedulr"):
        async with sched:
            pass
    assert not [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]


async def test_an_instance_refuses_a_prefix_that_holds_another_key_layout(redis_url: str) -> None:
    prefix = f"startup-{os.urandom(3).hex()}"
    async with Scheduler(RedisStorage(redis_url, prefix=prefix)):
        pass  # the first instance notes the layout, and the next one of the same version starts too
    async with Scheduler(RedisStorage(redis_url, prefix=prefix)):
        pass
    redis.Redis.from_url(redis_url).set(f"{{{prefix}}}:layout", 1)  # as an older version would have it
    with pytest.raises(StorageError, match="layout 1") as refused:
        async with Scheduler(RedisStorage(redis_url, prefix=prefix)):
            pass
    assert f"layout {LAYOUT}" in str(refused.value)
