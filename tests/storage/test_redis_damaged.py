"""Damaged task records met by the Redis scripts after the claim: a task that loses its pool field while
running cannot go back to a queue, so handing it back or reaping it sends it dead with the reason. (Its
pool is unknown by then: the counts move it from "<pool>/running" to "unknown/dead", so the running
total stays right.)"""

from __future__ import annotations

import redis

from skedulr import RedisStorage


async def _running_task_without_pool(storage: RedisStorage, redis_url: str) -> tuple[str, int]:
    ((task_id, _),) = await storage.submit_many([(None, "job", "default", b"", 0, 0, 0, None, None, [], None)], 1000)
    ((handle, token, *_),) = await storage.claim("default", 1, 1, 5000, 1000)
    client = redis.Redis.from_url(redis_url)
    assert client.hdel(storage._key("t", task_id), "pool") == 1
    client.close()
    return handle, token


async def test_a_handed_back_task_without_its_pool_goes_dead(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix="damaged-hand-back", use_client_clock=True)
    async with storage.session():
        handle, token = await _running_task_without_pool(storage, redis_url)
        assert await storage.hand_back_many([(handle, token)], 2000) == 1
        info = await storage.get(handle, 2000)
        assert info.status.value == "dead" and "pool" in (info.error or ""), info
        assert await storage.claim("default", 10, 1, 5000, 2000) == []


async def test_a_reaped_task_without_its_pool_goes_dead(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix="damaged-reap", use_client_clock=True)
    async with storage.session():
        handle, _token = await _running_task_without_pool(storage, redis_url)
        ((reaped, _, _, dead),) = await storage.reap(10_000)
        assert reaped == handle and not dead  # a lost lease, not yet the crash-loop limit
        info = await storage.get(handle, 10_000)
        assert info.status.value == "dead" and "pool" in (info.error or ""), info
        counts = await storage.counts(10_000)
        assert sum(per_pool["running"] for per_pool in counts.values()) == 0, counts
        assert counts["unknown"]["dead"] == 1, counts
