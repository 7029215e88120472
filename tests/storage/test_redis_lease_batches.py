"""Leases by batch (lua/_lib.lua, open_batch): the tasks one claim takes share one lease, which goes once
none of them runs under it any more, however each one left (succeeded, failed, handed back, cancelled);
the reaper returns only those still running under a lease that ran out; a heartbeat through any of them
renews it; a reap goes on until every lease that ran out is reaped; and a prefix of layout 3 (one
lease per task) is migrated on start."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from redis_fixtures import LEASE_BATCH, lease_deadline
from skedulr import RedisStorage
from skedulr.storage import redis as redis_storage
from skedulr.storage.redis import LAYOUT

SPEC = (None, "job", "default", b"", 0, 0, 0, None, None, [], None)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client of the test's server, to look at (and damage) what the scripts stored."""
    plain = redis.Redis.from_url(redis_url)
    yield plain
    plain.close()


def _batch_keys(client: redis.Redis, tag: str) -> tuple[list[bytes], list[bytes], dict[bytes, bytes]]:
    """The lease zset's members, the batch id lists' keys, and the running count per batch."""
    return (client.zrange(f"{tag}:leases", 0, -1), sorted(client.keys(f"{tag}:lb:*")), client.hgetall(f"{tag}:lbn"))


async def test_a_claims_tasks_share_one_lease_released_when_the_last_of_them_stops_running(
    redis_url: str, client: redis.Redis
) -> None:
    storage = RedisStorage(redis_url, prefix="batches-release", use_client_clock=True)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([SPEC] * 5, 1000)]
        rows = await storage.claim("default", 5, 1, 5000, 1000)
        tokens = [row[1] for row in rows]
        batch = tokens[0] // LEASE_BATCH
        assert tokens == [batch * LEASE_BATCH + k for k in range(1, 6)], tokens
        assert [row[0] for row in rows] == ids
        members, lists, running = _batch_keys(client, storage.tag)
        assert members == [str(batch).encode()] and len(lists) == 1 and running == {str(batch).encode(): b"5"}
        assert [x.decode() for x in client.lrange(lists[0], 0, -1)] == ids
        assert all(lease_deadline(client, storage.tag, task_id) == 6000 for task_id in ids)

        held = [(row[0], row[1]) for row in rows]
        assert await storage.succeed_many([(*held[0], None)], 1100) == []
        assert await storage.fail_many([(*held[1], "E: x", "tb", 0)], 1100) == []  # no retries left: dead
        assert await storage.hand_back_many([held[2]], 1100) == 1
        assert (await storage.cancel(ids[3], 1100))[:2] == (True, held[3])
        assert client.hget(f"{storage.tag}:lbn", batch) == b"1"
        assert lease_deadline(client, storage.tag, ids[4]) == 6000  # the last one still runs under it
        assert await storage.succeed_many([(*held[4], None)], 1200) == []
        assert _batch_keys(client, storage.tag) == ([], [], {}), "the batch's lease outlived its tasks"

        # a refused write (the task had left the batch already) releases nothing twice
        assert await storage.succeed_many([(*held[0], None)], 1300) == [held[0]]
        assert _batch_keys(client, storage.tag) == ([], [], {})
        assert (await storage.get(ids[1], 1300)).status.value == "dead"
        ((handle, token, *_),) = await storage.claim("default", 5, 1, 5000, 1300)  # the one handed back
        assert handle == ids[2] and token // LEASE_BATCH > batch


async def test_outcomes_recorded_together_release_their_batch_by_their_number(
    redis_url: str, client: redis.Redis
) -> None:
    storage = RedisStorage(redis_url, prefix="batches-together", use_client_clock=True)
    async with storage.session():
        await storage.submit_many([SPEC] * 6, 1000)
        first = await storage.claim("default", 4, 1, 5000, 1000)
        second = await storage.claim("default", 2, 1, 5000, 1000)
        b1, b2 = (str(rows[0][1] // LEASE_BATCH).encode() for rows in (first, second))
        mixed = [*first[:2], second[0]]  # two batches in one call
        assert await storage.succeed_many([(r[0], r[1], None) for r in mixed], 1100) == []
        assert client.hgetall(f"{storage.tag}:lbn") == {b1: b"2", b2: b"1"}
        assert await storage.fail_many([(r[0], r[1], "E: x", "tb", None) for r in [*first[2:], second[1]]], 1200) == []
        assert _batch_keys(client, storage.tag) == ([], [], {})


async def test_the_reaper_returns_only_the_tasks_still_running_under_a_lease_that_ran_out(
    redis_url: str, client: redis.Redis
) -> None:
    storage = RedisStorage(redis_url, prefix="batches-reap", use_client_clock=True)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([SPEC] * 3, 1000)]
        rows = await storage.claim("default", 3, 1, 1000, 1000)
        assert await storage.succeed_many([(rows[0][0], rows[0][1], None)], 1100) == []
        await storage.cancel(ids[1], 1100)
        assert await storage.reap(1999) == []  # not yet
        assert await storage.reap(2001) == [(ids[2], rows[2][1], ids[2], False)]
        assert _batch_keys(client, storage.tag) == ([], [], {})
        statuses = [(await storage.get(task_id, 2001)).status.value for task_id in ids]
        assert statuses == ["succeeded", "cancelled", "queued"]
        assert await storage.renew([(rows[2][0], rows[2][1])], 1000, 2002) == [(rows[2][0], rows[2][1])]


async def test_a_batch_of_one_keeps_no_running_count_and_is_released_reaped_and_renewed_all_the_same(
    redis_url: str, client: redis.Redis
) -> None:
    storage = RedisStorage(redis_url, prefix="batches-one", use_client_clock=True)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([SPEC] * 3, 1000)]
        rows = [(await storage.claim("default", 1, 1, 1000, 1000))[0] for _ in ids]
        members, lists, running = _batch_keys(client, storage.tag)
        assert len(members) == 3 and len(lists) == 3 and running == {}, "a batch of one needs no count entry"
        assert await storage.succeed_many([(rows[0][0], rows[0][1], None)], 1100) == []
        assert await storage.renew([(rows[1][0], rows[1][1])], 5000, 1500) == []
        assert lease_deadline(client, storage.tag, ids[1]) == 6500
        assert await storage.reap(3000) == [(ids[2], rows[2][1], ids[2], False)]
        assert await storage.hand_back_many([(rows[1][0], rows[1][1])], 3100) == 1
        assert _batch_keys(client, storage.tag) == ([], [], {}), "a lease outlived its task"
        assert await storage.succeed_many([(rows[0][0], rows[0][1], None)], 3200) == [(rows[0][0], rows[0][1])]
        assert _batch_keys(client, storage.tag) == ([], [], {}), "a refused write left a count behind"


async def test_a_heartbeat_through_one_task_renews_its_batchs_lease(redis_url: str, client: redis.Redis) -> None:
    storage = RedisStorage(redis_url, prefix="batches-renew", use_client_clock=True)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([SPEC] * 4, 1000)]
        first = await storage.claim("default", 2, 1, 1000, 1000)
        second = await storage.claim("default", 2, 1, 1000, 1000)
        assert first[0][1] // LEASE_BATCH != second[0][1] // LEASE_BATCH  # two claims, two batches
        assert await storage.renew([(first[1][0], first[1][1])], 5000, 1500) == []
        assert [lease_deadline(client, storage.tag, task_id) for task_id in ids] == [6500, 6500, 2000, 2000]
        reaped = await storage.reap(3000)
        assert sorted(row[0] for row in reaped) == sorted(ids[2:])
        assert await storage.succeed_many([(row[0], row[1], None) for row in first], 3100) == []


async def test_a_prefix_of_layout_3_is_migrated_to_leases_by_batch(redis_url: str, client: redis.Redis) -> None:
    """Layout 3 leased each task alone (member = task id) under tokens from a plain counter. Its running
    task gets a batch of its own, keeping its deadline, under a token past every old one."""
    prefix = f"batches-{os.urandom(3).hex()}"
    tag = "{" + prefix + "}"
    old = RedisStorage(redis_url, prefix=prefix, use_client_clock=True)
    async with old.session():
        ((running, _), (queued, _)) = await old.submit_many([SPEC, SPEC], 1000)
        await old.claim("default", 1, 1, 4000, 1000)
    client.delete(f"{tag}:leases", f"{tag}:lbn", *client.keys(f"{tag}:lb:*"))  # as layout 3 left it:
    client.zadd(f"{tag}:leases", {running: 5000})
    client.hset(f"{tag}:t:{running}", "tok", 7)
    client.set(f"{tag}:token", 7)
    client.set(f"{tag}:layout", 3)

    new = RedisStorage(redis_url, prefix=prefix, use_client_clock=True)
    async with new.session():
        assert int(client.get(f"{tag}:layout")) == LAYOUT
        token = int(client.hget(f"{tag}:t:{running}", "tok"))
        assert token > 7 and lease_deadline(client, tag, running) == 5000
        assert await new.renew([(running, 7)], 4000, 2000) == [(running, 7)]  # the old token holds nothing
        ((handle, fresh, *_),) = await new.claim("default", 1, 1, 4000, 2000)
        assert handle == queued and fresh // LEASE_BATCH > token // LEASE_BATCH
        assert await new.reap(5001) == [(running, token, running, False)]
        assert (await new.get(running, 5001)).status.value == "queued"
    async with RedisStorage(redis_url, prefix=prefix, use_client_clock=True).session():
        assert int(client.hget(f"{tag}:t:{queued}", "tok")) == fresh  # a second start migrates nothing again


async def test_a_migration_moves_only_the_layout_its_instance_found(redis_url: str, client: redis.Redis) -> None:
    """Two instances starting on an old prefix at once: the one that comes second finds the prefix moved
    on already, and its migration (of the layout it found) changes nothing, live leases included."""
    storage = RedisStorage(redis_url, prefix="batches-race", use_client_clock=True)
    async with storage.session():
        await storage.submit_many([SPEC, SPEC], 1000)
        rows = await storage.claim("default", 2, 1, 5000, 1000)
        before = (_batch_keys(client, storage.tag), client.get(f"{storage.tag}:token"))
        for found in (2, 3):
            assert await storage._eval("migrate", [], [storage.tag, found]) == -1
        assert (_batch_keys(client, storage.tag), client.get(f"{storage.tag}:token")) == before
        assert int(client.get(f"{storage.tag}:layout")) == LAYOUT
        assert await storage.renew([(row[0], row[1]) for row in rows], 5000, 2000) == []


async def test_a_reap_call_stops_at_its_limit_after_whole_leases(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix="batches-limit", use_client_clock=True)
    async with storage.session():
        await storage.submit_many([SPEC] * 6, 1000)
        for _ in range(3):
            assert len(await storage.claim("default", 2, 1, 1000, 1000)) == 2
        args = [storage.tag, 5000, storage.max_lease_losses, storage.key_ttl_ms, 3]
        first = await storage._eval("reap", [storage._key("leases")], args)
        assert len(first) == 3 * 4 + 1 and first[-1] == b"more", "whole leases until it looked at 3 tasks"
        second = await storage._eval("reap", [storage._key("leases")], args)
        assert len(second) == 3 * 2 and await storage._eval("reap", [storage._key("leases")], args) == []


async def test_the_reaper_calls_again_until_every_lease_that_ran_out_is_reaped(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call stops at its limit (counting a lease's every task, finished ones too) and says so; `reap`
    calls again rather than leave the rest for its next round, lease_ttl / 2 later."""
    monkeypatch.setattr(redis_storage, "_REAP_BATCH", 3)
    storage = RedisStorage(redis_url, prefix="batches-more", use_client_clock=True)
    async with storage.session():
        await storage.submit_many([SPEC] * 12, 1000)
        stuck = []
        for _ in range(4):  # each lease: two tasks done, one still running when the worker died
            rows = await storage.claim("default", 3, 1, 1000, 1000)
            assert await storage.succeed_many([(r[0], r[1], None) for r in rows[:2]], 1100) == []
            stuck.append(rows[2][0])
        reaped = await storage.reap(5000)
        assert sorted(row[0] for row in reaped) == sorted(stuck)


async def test_a_damaged_lease_loss_count_or_attempt_does_not_stop_the_reaper(
    redis_url: str, client: redis.Redis
) -> None:
    storage = RedisStorage(redis_url, prefix="batches-junk", use_client_clock=True)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([SPEC, SPEC], 1000)]
        for _ in ids:  # two leases: the damaged task's comes first
            await storage.claim("default", 1, 1, 1000, 1000)
        client.hset(f"{storage.tag}:t:{ids[0]}", mapping={"tok": "x", "ll": "junk", "att": "junk"})
        assert sorted(row[0] for row in await storage.reap(5000)) == sorted(ids)
        infos = [await storage.get(task_id, 5000) for task_id in ids]
        assert [(i.status.value, i.lease_losses, i.attempts) for i in infos] == [("queued", 1, 0)] * 2, infos
        assert _batch_keys(client, storage.tag) == ([], [], {})


async def test_a_running_task_whose_token_was_lost_is_reaped_with_its_lease(
    redis_url: str, client: redis.Redis
) -> None:
    storage = RedisStorage(redis_url, prefix="batches-garbled", use_client_clock=True)
    async with storage.session():
        ids = [task_id for task_id, _ in await storage.submit_many([SPEC, SPEC], 1000)]
        rows = await storage.claim("default", 2, 1, 1000, 1000)
        client.hdel(f"{storage.tag}:t:{ids[0]}", "tok")
        client.hset(f"{storage.tag}:t:{ids[1]}", "tok", "garbled")
        reaped = await storage.reap(5000)
        assert [(row[0], row[1]) for row in reaped] == [(row[0], row[1]) for row in rows]
        assert [(await storage.get(task_id, 5000)).status.value for task_id in ids] == ["queued", "queued"]
        assert (await storage.cancel(ids[0], 5000))[:2] == (True, None)
        client.hset(f"{storage.tag}:t:{ids[1]}", mapping={"status": "running", "tok": "garbled"})  # damaged
        assert (await storage.cancel(ids[1], 5000))[:2] == (True, None), "a damaged token is no lease"


async def test_a_damaged_handed_task_goes_dead_at_the_next_claim_and_leaves_its_batch(
    redis_url: str, client: redis.Redis
) -> None:
    """Not left to the reaper: the batch's lease, renewed through its other tasks, would keep it running."""
    storage = RedisStorage(redis_url, prefix="batches-damaged", use_client_clock=False)  # (hand-offs: server clock)
    hand_id = "00000000feedf00d"
    listener = client.pubsub()
    listener.subscribe(f"{storage.tag}:hand:{hand_id}")  # the instance, as Redis sees it
    assert listener.get_message(timeout=1.0) is not None
    try:
        async with storage.session():
            assert await storage.claim("default", 2, 1, 30_000, 0, idle=(hand_id, 2)) == []  # stands idle
            ((task_id, _),) = await storage.submit_many([SPEC], 0)
            assert (await storage.get(task_id, 0)).status.value == "running", "it was not handed off"
            assert client.hdel(f"{storage.tag}:t:{task_id}", "spec") == 1
            assert await storage.claim("default", 2, 1, 30_000, 0, idle=(hand_id, 2)) == []
            info = await storage.get(task_id, 0)
            assert info.status.value == "dead" and "spec" in (info.error or ""), info
            assert _batch_keys(client, storage.tag) == ([], [], {})
            counts = await storage.counts(0)
            assert (counts["default"]["running"], counts["default"]["dead"]) == (0, 1), counts
    finally:
        listener.close()
