"""Startup checks of the Redis storage: an eviction policy that could drop tasks is warned about loudly,
and the password never shows in what is logged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import redis

from redis_fixtures import RedisServer, lease_deadline
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


async def test_a_prefix_of_layout_2_is_migrated_and_its_dead_tasks_leave_by_dead_retention(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its dead tasks are indexed by time of death (layout 3), and its running task's lease (one per task
    in layout 2) becomes a batch of one (layout 4), keeping its deadline."""
    prefix = f"startup-{os.urandom(3).hex()}"
    tag = "{" + prefix + "}"
    spec = (None, "job", "default", b"", 0, 0, 0, None, None, [], None)
    old = RedisStorage(redis_url, prefix=prefix, use_client_clock=True)
    async with old.session():
        ids = [task_id for task_id, _ in await old.submit_many([spec, spec, spec], 1000)]
        rows = await old.claim("default", 2, 1, 5000, 1000)
        assert await old.fail_many([(r[0], r[1], "E: x", "tb", None) for r in rows], 2000) == []
        await old.claim("default", 1, 1, 9000, 2000)
    client = redis.Redis.from_url(redis_url)
    client.delete(f"{tag}:died", f"{tag}:leases", f"{tag}:lbn", *client.keys(f"{tag}:lb:*"))  # as layout 2 left it:
    client.zadd(f"{tag}:leases", {ids[2]: 11_000})
    client.hset(f"{tag}:t:{ids[2]}", "tok", 3)
    client.set(f"{tag}:token", 3)
    client.set(f"{tag}:layout", 2)
    new = RedisStorage(redis_url, prefix=prefix, use_client_clock=True, dead_retention=10.0)
    with caplog.at_level(logging.WARNING, logger="skedulr"):
        async with new.session():
            assert int(client.get(f"{tag}:layout")) == LAYOUT
            assert sorted(x.decode() for x in client.zrange(f"{tag}:died", 0, -1)) == sorted(ids[:2])
            assert lease_deadline(client, tag, ids[2]) == 11_000
            assert await new.sweep(11_000) == 0  # died at 2000: kept until 12000
            assert await new.sweep(12_001) == 2
            assert [row[0] for row in await new.reap(12_001)] == [ids[2]]
    assert client.zcard(f"{tag}:dead") == 0
    client.close()
    assert "migrated from key layout 2 to 4 (1 running tasks, 2 dead tasks indexed)" in caplog.text


async def test_a_dead_task_with_a_damaged_death_time_does_not_stop_a_migration(redis_url: str) -> None:
    prefix = f"startup-{os.urandom(3).hex()}"
    tag = "{" + prefix + "}"
    spec = (None, "job", "default", b"", 0, 0, 0, None, None, [], None)
    old = RedisStorage(redis_url, prefix=prefix, use_client_clock=True)
    async with old.session():
        ids = [task_id for task_id, _ in await old.submit_many([spec] * 3, 1000)]
        rows = await old.claim("default", 3, 1, 5000, 1000)
        assert await old.fail_many([(r[0], r[1], "E: x", "tb", None) for r in rows], 2000) == []
    client = redis.Redis.from_url(redis_url)
    client.delete(f"{tag}:died")
    client.hset(f"{tag}:t:{ids[0]}", "fms", "")
    client.hset(f"{tag}:t:{ids[1]}", "fms", "x")
    client.set(f"{tag}:layout", 2)
    async with RedisStorage(redis_url, prefix=prefix, use_client_clock=True).session():
        assert int(client.get(f"{tag}:layout")) == LAYOUT
        assert client.zrange(f"{tag}:died", 0, -1) == [ids[2].encode()]
    client.close()
