"""Staged bulk submits on Redis: a large `submit_many` of plain tasks goes out in parts that Redis stores
while the next part is encoded, and one commit makes the whole batch visible. All or nothing still holds:
a batch refused, failed or abandoned half-way leaves nothing behind."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis
import trio
from hypothesis import given
from hypothesis import strategies as st

from skedulr import JobContext, RedisStorage, Scheduler, Task, TaskStatus
from skedulr.errors import DuplicateTaskError, InvalidOptionError, StorageError
from skedulr.storage import _scripts
from skedulr.storage import redis as redis_storage
from skedulr.storage._redis_direct import DirectConnection

PARTS = 3
BATCH = redis_storage._STAGE_PART * (PARTS - 1) + 7  # three parts, the last one short


def _scheduler(url: str, **options: object) -> tuple[Scheduler, RedisStorage]:
    storage = RedisStorage(url, prefix=f"bulk-{os.urandom(3).hex()}", **options)  # type: ignore[arg-type]
    sched = Scheduler(storage)
    sched.register_job("job", lambda ctx: None)
    return sched, storage


def _keys(url: str, storage: RedisStorage, pattern: str) -> list[bytes]:
    return list(redis.Redis.from_url(url).scan_iter(match=f"{storage.tag}:{pattern}", count=10_000))


def _script_calls(url: str) -> int:
    return int(redis.Redis.from_url(url).info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def _end_marks(url: str, storage: RedisStorage) -> list[bytes]:
    """How the staged batches ended ("committed", "dropped"); asserts that no batch is left staged."""
    client = redis.Redis.from_url(url)
    staged = _keys(url, storage, "s:*")
    assert all(key.endswith(b":end") for key in staged), f"a staged batch was left behind: {staged}"
    return sorted(client.get(key) for key in staged)


def _assert_nothing_stored(url: str, storage: RedisStorage) -> None:
    assert _keys(url, storage, "t:*") == [], "a task of the refused batch was stored"
    assert _end_marks(url, storage) in ([], [b"dropped"])
    client = redis.Redis.from_url(url)
    assert client.zcard(f"{storage.tag}:staging") == 0
    assert client.zcard(f"{storage.tag}:all") == 0
    assert client.zcard(f"{storage.tag}:r:default") == 0
    assert _keys(url, storage, "q:*") == [], "a list of the refused batch was left behind"


async def test_a_large_batch_goes_out_in_parts_and_shows_up_whole(redis_url: str) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        redis.Redis.from_url(redis_url).config_resetstat()
        ids = await sched.submit_many([Task("job", payload={"i": i}) for i in range(BATCH)])
        assert _script_calls(redis_url) >= PARTS + 1, "not staged: sent as one script call"
        assert len(set(ids)) == BATCH
        assert (await sched.stats()).counts["queued"] == BATCH
        assert _end_marks(redis_url, storage) == [b"committed"]
        listed = await sched.list_tasks(limit=BATCH + 10)
        assert [t.id for t in listed.tasks] == ids[::-1]  # newest first: batch order kept across parts
        first, last = await sched.get(ids[0]), await sched.get(ids[-1])
        assert first.status is TaskStatus.QUEUED and first.json() == {"i": 0}
        assert last.json() == {"i": BATCH - 1} and last.run_at == last.created_at
        sched.resume()
        with trio.fail_after(30):
            await sched.join()
        assert (await sched.stats()).counts["succeeded"] == BATCH


async def test_a_batch_of_large_payloads_goes_out_in_parts_of_bounded_size(redis_url: str) -> None:
    sched, _ = _scheduler(redis_url)
    sched.pause()
    payload = b"p" * (1 << 20)  # 20 MiB in all: sent as one command it would near Redis's limits
    async with sched:
        redis.Redis.from_url(redis_url).config_resetstat()
        ids = await sched.submit_many([Task("job", payload=payload) for _ in range(20)])
        assert _script_calls(redis_url) >= 20 * (1 << 20) // redis_storage._GROUP_BYTES + 1
        assert (await sched.stats()).counts["queued"] == 20
        assert (await sched.get(ids[-1])).payload == payload


class _Payload:
    """Stands for a payload of `size` bytes: `_parts` only asks for its length."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


@given(st.lists(st.integers(0, 3 * redis_storage._GROUP_BYTES // 2), max_size=40), st.integers(1, 5))
def test_parts_keep_order_and_stay_within_their_limits(sizes: list[int], part_limit: int) -> None:
    specs = [(None, "job", "default", _Payload(size), 0, 0, 0, None, None, [], None) for size in sizes]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(redis_storage, "_STAGE_PART", part_limit)
        parts = list(redis_storage._parts(specs))
    assert [s for part in parts for s in part] == specs
    for part in parts:
        assert 1 <= len(part) <= part_limit
        assert len(part) == 1 or sum(len(s[3]) for s in part) <= redis_storage._GROUP_BYTES


async def test_a_delayed_large_batch_waits_in_the_delayed_queue(redis_url: str) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        ids = await sched.submit_many([Task("job", delay=3600, priority=5) for _ in range(BATCH)])
        assert (await sched.stats()).counts["scheduled"] == BATCH
        assert redis.Redis.from_url(redis_url).zcard(f"{storage.tag}:d:default") == BATCH
        info = await sched.get(ids[-1])
        assert info.status is TaskStatus.SCHEDULED and info.priority == 5
        assert info.run_at is not None and info.created_at is not None
        assert (info.run_at - info.created_at).total_seconds() == pytest.approx(3600, abs=1)


async def test_bad_input_late_in_a_large_batch_stores_nothing(redis_url: str) -> None:
    sched, storage = _scheduler(redis_url, max_payload_bytes=100)
    sched.pause()
    async with sched:
        tasks = [Task("job", payload=b"x" * (500 if i == BATCH - 3 else 10)) for i in range(BATCH)]
        with pytest.raises(InvalidOptionError, match="over the 100-byte cap"):
            await sched.submit_many(tasks)  # the parts before it were staged, then dropped
        _assert_nothing_stored(redis_url, storage)


async def test_a_random_id_already_taken_refuses_the_whole_batch(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        taken = await sched.submit(Task("job", payload="the holder"))
        fresh = redis_storage._new_id
        drawn = iter(range(BATCH + 2))

        def new_id() -> str:  # the 64-bit random id of one task in the last part collides
            return taken if next(drawn) == BATCH - 2 else fresh()

        monkeypatch.setattr(redis_storage, "_new_id", new_id)
        with pytest.raises(DuplicateTaskError, match=taken):
            await sched.submit_many([Task("job") for _ in range(BATCH)])
        assert (await sched.stats()).counts["queued"] == 1
        assert len(_keys(redis_url, storage, "t:*")) == 1 and _end_marks(redis_url, storage) == [b"dropped"]
        assert (await sched.get(taken)).payload == b"the holder"  # untouched


async def test_a_bulk_submit_cancelled_half_way_stores_nothing(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        runs = redis_storage._runs
        encoded: list[int] = []
        with trio.CancelScope() as scope:

            def runs_then_cancel(ordered: list[redis_storage._TaskArgs]) -> list[object]:
                encoded.append(len(ordered))
                if len(encoded) == 2:
                    scope.cancel()  # delivered at the next checkpoint: the first part is out, the second not
                return runs(ordered)

            monkeypatch.setattr(redis_storage, "_runs", runs_then_cancel)
            await sched.submit_many([Task("job") for _ in range(BATCH)])
        assert scope.cancelled_caught and len(encoded) == 2
        _assert_nothing_stored(redis_url, storage)


def _stage_part(storage: RedisStorage, batch: str, part: int, *, stage_ms: int) -> object:
    """Runs one part of a staged submit by hand (two plain tasks), as a client that then dies would."""
    spec = redis_storage._pack_spec("job", 0, 0, b"")
    keys = [f"{storage.tag}:seq", f"{storage.tag}:all", f"{storage.tag}:staging", batch]
    args = [storage.tag, "", storage.key_ttl_ms, part, stage_ms, 2, "p", 2, "default", 0, 3, "",
            f"{batch[-6:]}a{part}", spec, f"{batch[-6:]}b{part}", spec]  # fmt: skip
    client = redis.Redis.from_url(storage.url)
    try:
        return client.evalsha(client.script_load(_scripts.load("submit").source), len(keys), *keys, *args)
    except redis.ResponseError as e:
        return e


async def test_a_batch_abandoned_half_way_is_dropped_by_the_sweep(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix=f"bulk-{os.urandom(3).hex()}")  # deadlines: the server's clock
    batch = f"{storage.tag}:s:abandoned"
    assert _stage_part(storage, batch, 1, stage_ms=300) == []
    assert len(_keys(redis_url, storage, "t:*")) == 2  # written, but in no queue, listing or count
    assert (await storage.list_tasks(None, None, None, None, 10, None, 0)).tasks == []
    assert (await storage.counts(0)) == {}
    await storage.sweep(0)  # not yet past its deadline
    assert len(_keys(redis_url, storage, "t:*")) == 2
    await trio.sleep(0.5)  # real time: the deadline is on Redis's clock, which no test clock moves
    await storage.sweep(0)
    _assert_nothing_stored(redis_url, storage)
    for part in (2, 1):  # parts still on their way when it was dropped: neither brings it back
        late = _stage_part(storage, batch, part, stage_ms=60_000)
        assert isinstance(late, redis.ResponseError) and "STAGE_LOST" in str(late)
    with pytest.raises(StorageError, match="dropped before it was complete"):
        keys = [f"{storage.tag}:staging", f"{storage.tag}:all", f"{storage.tag}:seq"]
        await storage._eval("bulk", keys, [storage.tag, "commit", batch, 60_000])
    _assert_nothing_stored(redis_url, storage)


async def test_a_commit_whose_reply_is_lost_still_reports_the_batch_stored(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sched, _ = _scheduler(redis_url)
    sched.pause()
    eval_script = DirectConnection.eval_script

    async def commit_then_lose_the_reply(self: DirectConnection, script: Any, *args: Any, **kwargs: Any) -> Any:
        reply = await eval_script(self, script, *args, **kwargs)
        if script.name == "bulk":
            raise StorageError("Redis at ... stopped answering. The command may or may not have run.")
        return reply

    monkeypatch.setattr(DirectConnection, "eval_script", commit_then_lose_the_reply)
    async with sched:
        ids = await sched.submit_many([Task("job") for _ in range(BATCH)])  # not an error: it was stored
        assert len(set(ids)) == BATCH
        assert (await sched.stats()).counts["queued"] == BATCH
        assert (await sched.get(ids[-1])).status is TaskStatus.QUEUED


async def _drained_batch(redis_url: str, sched: Scheduler, storage: RedisStorage) -> None:
    """Resumes, waits until nothing is left to run, and checks the batch's lists are gone with it."""
    sched.resume()
    with trio.fail_after(30):
        await sched.join()
    assert _keys(redis_url, storage, "q:*") == []
    assert redis.Redis.from_url(redis_url).zcard(f"{storage.tag}:r:default") == 0


async def test_a_committed_batch_waits_as_one_list_member_and_is_claimed_in_order(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix=f"bulk-{os.urandom(3).hex()}")
    sched = Scheduler(storage, max_workers=1)  # one job at a time, each claim takes a task or two of the list
    ran: list[int] = []

    async def record(ctx: JobContext) -> None:
        ran.append(ctx.json())

    sched.register_job("record", record)
    sched.pause()
    async with sched:
        await sched.submit(Task("record", payload=-1))
        await sched.submit_many([Task("record", payload=i) for i in range(BATCH)])
        client = redis.Redis.from_url(redis_url)
        assert client.zcard(f"{storage.tag}:r:default") == 2  # the single task, and one member for the batch
        assert len(_keys(redis_url, storage, "q:*")) == 1
        await _drained_batch(redis_url, sched, storage)
    assert ran == [-1, *range(BATCH)]


async def test_a_task_cancelled_in_a_committed_batch_is_passed_over(redis_url: str) -> None:
    sched, storage = _scheduler(redis_url)
    ran: list[str] = []
    sched.register_job("record", lambda ctx: ran.append(ctx.task_id))
    sched.pause()
    async with sched:
        ids = await sched.submit_many([Task("record") for _ in range(BATCH)])
        cancelled = set(ids[:50] + ids[1000:1003] + ids[-1:])
        for task_id in cancelled:
            assert await sched.cancel(task_id)
        # purged and submitted again under the same id while the list still names it: it runs once
        reused = ids[0]
        await sched.purge(reused)
        await sched.submit(Task("record", id=reused))
        await _drained_batch(redis_url, sched, storage)
        counts = (await sched.stats()).counts
    assert sorted(ran) == sorted([reused, *(i for i in ids if i not in cancelled)])
    assert counts["cancelled"] == len(cancelled) - 1 and counts["succeeded"] == BATCH - len(cancelled) + 1


async def test_a_damaged_task_in_a_committed_batch_goes_dead_and_the_rest_run(redis_url: str) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        ids = await sched.submit_many([Task("job") for _ in range(BATCH)])
        redis.Redis.from_url(redis_url).hdel(f"{storage.tag}:t:{ids[5]}", "seq")
        await _drained_batch(redis_url, sched, storage)
        damaged = await sched.get(ids[5])
        assert damaged.status is TaskStatus.DEAD and "field seq" in (damaged.error or "")
        assert (await sched.stats()).counts["succeeded"] == BATCH - 1


async def test_a_task_of_a_batch_handed_back_keeps_its_place_ahead_of_the_rest(redis_url: str) -> None:
    storage = RedisStorage(redis_url, prefix=f"bulk-{os.urandom(3).hex()}")
    sched = Scheduler(storage, max_workers=1)  # short jobs: the pool claims one ahead of its runner
    ran: list[int] = []
    handed_back = 0
    hand_back_many = storage.hand_back_many

    async def counting_hand_back(items: list[tuple[Any, int]], now_ms: int) -> int:
        nonlocal handed_back
        handed_back += await hand_back_many(items, now_ms)
        return handed_back

    storage.hand_back_many = counting_hand_back  # type: ignore[method-assign]

    async def record(ctx: JobContext) -> None:
        ran.append(ctx.json())
        if len(ran) == 5:  # pausing hands back what was claimed ahead: it must run next all the same
            with trio.fail_after(5):
                while not sched._pools["default"].backlog:  # the pool claims ahead meanwhile
                    await trio.sleep(0.01)
            sched.pause()
            await trio.sleep(0.2)
            sched.resume()

    sched.register_job("record", record)
    sched.pause()
    async with sched:
        await sched.submit_many([Task("record", payload=i) for i in range(BATCH)])
        await _drained_batch(redis_url, sched, storage)
    assert handed_back >= 1, "nothing was claimed ahead: the test did not test anything"
    assert ran == list(range(BATCH))


async def test_a_script_flush_while_parts_are_on_their_way_sends_the_batch_again(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        runs = redis_storage._runs
        encoded: list[int] = []

        def runs_then_flush(ordered: list[redis_storage._TaskArgs]) -> list[object]:
            encoded.append(len(ordered))
            if len(encoded) == 2:  # the first part is out (and stored): Redis forgets its scripts now
                redis.Redis.from_url(redis_url).script_flush()
            return runs(ordered)

        monkeypatch.setattr(redis_storage, "_runs", runs_then_flush)
        ids = await sched.submit_many([Task("job", payload=str(i)) for i in range(BATCH)])
        assert len(encoded) == 2 * PARTS, "the batch was not sent again"
        assert _end_marks(redis_url, storage) == [b"committed", b"dropped"]
        assert len(_keys(redis_url, storage, "t:*")) == BATCH and len(set(ids)) == BATCH
        assert [(await sched.get(i)).payload for i in (ids[0], ids[-1])] == [b"0", str(BATCH - 1).encode()]
        await _drained_batch(redis_url, sched, storage)
        assert (await sched.stats()).counts["succeeded"] == BATCH


def _cancel_by_pipeline(url: str, storage: RedisStorage, ids: list[str]) -> None:
    """Cancels many tasks quickly: lua/cancel.lua pipelined, as many clients cancelling at once would."""
    client = redis.Redis.from_url(url)
    sha = client.script_load(_scripts.load("cancel").source)
    for start in range(0, len(ids), 5000):
        pipe = client.pipeline(transaction=False)
        for task_id in ids[start : start + 5000]:
            keys = [f"{storage.tag}:t:{task_id}", f"{storage.tag}:leases"]
            pipe.evalsha(sha, 2, *keys, storage.tag, "", storage.key_ttl_ms, task_id)
        assert all(reply[0] == 1 for reply in pipe.execute())


async def test_a_claim_looks_past_batches_whose_tasks_were_all_cancelled(redis_url: str) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        for _ in range(3):
            _cancel_by_pipeline(redis_url, storage, await sched.submit_many([Task("job") for _ in range(BATCH)]))
        task_id = await sched.submit(Task("job"))
        rows = await storage.claim("default", 1, 0, 30_000, 0)
        assert [row[0] for row in rows] == [task_id]
        assert _keys(redis_url, storage, "q:*") == [] and (await sched.stats()).counts["running"] == 1


async def test_a_claim_passing_over_many_cancelled_tasks_ends_early_and_keeps_priority(redis_url: str) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        low = await sched.submit(Task("job", priority=-5))
        ids = await sched.submit_many([Task("job") for _ in range(25_003)])
        _cancel_by_pipeline(redis_url, storage, ids[:25_001])  # more than two calls' worth to pass over
        client = redis.Redis.from_url(redis_url)
        client.config_resetstat()
        rows = await storage.claim("default", 2, 0, 30_000, 0)
        assert [row[0] for row in rows] == ids[25_001:]  # not the lower priority task behind them
        assert _script_calls(redis_url) == 3, "each call passes over at most its limit, then says so"
        assert [row[0] for row in await storage.claim("default", 2, 0, 30_000, 0)] == [low]


async def test_the_listing_leaves_out_staged_parts_and_skips_them_in_one_step(redis_url: str) -> None:
    sched, storage = _scheduler(redis_url)
    sched.pause()
    async with sched:
        before = await sched.submit(Task("job"))
        batch = f"{storage.tag}:s:unfinished"
        spec = redis_storage._pack_spec("job", 0, 0, b"")
        keys = [f"{storage.tag}:seq", f"{storage.tag}:all", f"{storage.tag}:staging", batch]
        run = [arg for i in range(1200) for arg in (f"staged{i}", spec)]
        client = redis.Redis.from_url(redis_url)
        sha = client.script_load(_scripts.load("submit").source)
        client.evalsha(sha, 4, *keys, storage.tag, "", storage.key_ttl_ms, 1, 60_000, 1200, "p", 1200, "default", 0, 3,
                       "", *run)  # fmt: skip
        after = await sched.submit(Task("job"))
        client.config_resetstat()
        page = await sched.list_tasks(limit=10)
        assert [t.id for t in page.tasks] == [after, before]
        zrange_calls = int(client.info("commandstats")["cmdstat_zrevrangebyscore"]["calls"])
        assert zrange_calls <= 3, "the staged range was walked page by page"
