"""Edges of the Redis scripts met through the storage API: a resubmitted task that then succeeds drops
the error it went dead with, a task that lost its pool field is still swept, a stale token is refused by
every write, an empty claim claims nothing."""

from __future__ import annotations

import redis

from redis_fixtures import lease_deadline
from skedulr import RedisStorage

SPEC = (None, "job", "default", b"", 0, 0, 0, None, None, [], None)


async def test_a_resubmitted_task_that_succeeds_drops_its_old_error(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix="scripts-resubmit", use_client_clock=True, max_lease_losses=1)
    async with storage.session():
        ((task_id, _),) = await storage.submit_many([SPEC], 1000)
        await storage.claim("default", 1, 1, 100, 1000)
        ((_, _, _, dead),) = await storage.reap(2000)  # the lease ran out: one loss is the limit
        assert dead and "lost its lease" in ((await storage.get(task_id, 2000)).error or "")
        await storage.resubmit(task_id, 3000)
        ((handle, token, *_),) = await storage.claim("default", 1, 1, 5000, 3000)
        assert await storage.succeed_many([(handle, token, None)], 3500) == []
        info = await storage.get(task_id, 4000)
        assert info.status.value == "succeeded" and info.error is None, info


async def test_an_ended_task_without_its_pool_field_is_swept(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix="scripts-sweep", use_client_clock=True, retention=1.0)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([SPEC, SPEC], 1000)]
        rows = await storage.claim("default", 2, 1, 5000, 1000)
        client = redis.Redis.from_url(redis_url)
        assert client.hdel(storage._key("t", ids[0]), "pool") == 1
        assert await storage.succeed_many([(r[0], r[1], None) for r in rows], 1500) == []
        assert await storage.sweep(10_000) == 2
        assert not client.exists(storage._key("t", ids[0]), storage._key("t", ids[1]))
        client.close()
        counts = await storage.counts(10_000)  # (the pool-less one counts under "unknown" once it ends)
        totals = {status: sum(per_pool[status] for per_pool in counts.values()) for status in counts["default"]}
        assert all(n == 0 for n in totals.values()), counts


async def test_every_write_with_a_stale_token_is_refused_and_changes_nothing(redis_url: str) -> None:
    """Fencing at the scripts: once a lease ran out and the task was claimed again, the old token can
    neither renew, report progress, succeed, fail nor hand back; the new attempt's lease is untouched."""
    storage = RedisStorage(redis_url, prefix="scripts-fencing", use_client_clock=True)
    async with storage.session():
        ((task_id, _),) = await storage.submit_many([SPEC], 1000)
        ((handle, old, *_),) = await storage.claim("default", 1, 1, 100, 1000)
        assert [row[:2] for row in await storage.reap(2000)] == [(handle, old)]
        ((_, new, *_),) = await storage.claim("default", 1, 1, 5000, 2000)
        assert new != old
        before = await storage.get(task_id, 2000)
        stale = (handle, old)
        assert await storage.renew([stale], 5000, 2100) == [stale]
        await storage.set_progress_many([(handle, old, 0.5)])
        assert await storage.succeed_many([(handle, old, b"x")], 2100) == [stale]
        assert await storage.fail_many([(handle, old, "E: x", "tb", 0)], 2100) == [stale]
        assert await storage.hand_back_many([stale], 2100) == 0
        after = await storage.get(task_id, 2000)
        assert after == before and after.status.value == "running" and after.progress == 0.0, after
        client = redis.Redis.from_url(redis_url)
        assert lease_deadline(client, storage.tag, task_id) == 7000  # the new attempt's lease, as claimed
        client.close()


async def test_a_large_batch_of_outcomes_goes_in_calls_of_about_a_mib(redis_url: str) -> None:
    """Forty failures with 40 KB tracebacks (1.6 MB) go in two script calls, not one; all are recorded,
    and a stale token among them is still refused."""
    storage = RedisStorage(redis_url, prefix="scripts-chunks", use_client_clock=True)
    async with storage.session():
        await storage.submit_many([SPEC] * 40, 1000)
        rows = await storage.claim("default", 40, 1, 5000, 1000)
        stale = (rows[-1][0], rows[-1][1] + 1000)
        tb = "x" * 40_000
        client = redis.Redis.from_url(redis_url)
        before = client.info("commandstats")["cmdstat_evalsha"]["calls"]
        refused = await storage.fail_many(
            [(r[0], r[1], "E: x", tb, None) for r in rows] + [(*stale, "E", tb, None)], 1100
        )
        calls = client.info("commandstats")["cmdstat_evalsha"]["calls"] - before
        client.close()
        assert refused == [stale]
        assert calls == 2, calls
        infos = [await storage.get(r[2], 1200) for r in rows]
        assert all(i.status.value == "dead" and i.traceback == tb for i in infos)


async def test_purging_dead_tasks_passes_over_one_gone_or_resubmitted_since_it_was_listed(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix="scripts-purge-dead", use_client_clock=True)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([SPEC] * 3, 1000)]
        rows = await storage.claim("default", 3, 1, 5000, 1000)
        assert await storage.fail_many([(r[0], r[1], "E: x", "tb", None) for r in rows], 1100) == []
        listed = [info.id for info in (await storage.list_tasks(["dead"], None, None, None, 10, None, 1200)).tasks]
        assert sorted(listed) == sorted(ids)
        await storage.purge(ids[0])  # (as the sweep would)
        await storage.resubmit(ids[1], 1300)
        args = [storage.tag, "", "dead", *listed]
        assert [x.decode() for x in await storage._eval("purge", storage._purge_keys(), args)] == [ids[2]]
        assert (await storage.get(ids[1], 1400)).status.value == "queued"


async def test_a_claim_for_no_task_claims_nothing(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix="scripts-claim", use_client_clock=True)
    async with storage.session():
        await storage.submit_many([SPEC, SPEC], 1000)
        assert await storage.claim("default", 0, 1, 5000, 1000) == []
        assert len(await storage.claim("default", 5, 1, 5000, 1000)) == 2
