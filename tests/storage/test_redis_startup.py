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
