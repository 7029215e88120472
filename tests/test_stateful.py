"""`MemoryStorage` against a small reference model, driven by Hypothesis through the calls the scheduler makes.

The machine submits (single and batch), claims from two pools with varying batch sizes (a pool resized at
runtime claims with a different `max`), succeeds, fails with and without a retry delay, hands back, renews,
cancels, resubmits, purges, moves the clock, reaps and sweeps (ended tasks past a short retention, dead
ones past a longer one), so slots are reused. It also replays ended leases' (slot, token) pairs, which
the storage must refuse. After every step it compares the storage with the model: every task in exactly
one state, none lost, counts per pool and status, attempts, lease losses, run times, the leases each owner
holds, and when the next delayed task of each pool is due. Each claim is checked against the model's
prediction: best priority first, then earliest ready time, then submission order, never a task that is
delayed, running or ended.

Hypothesis runs the machine in a worker thread (`trio.to_thread`); every storage call goes back to the Trio
thread with `trio.from_thread.run`, so the storage's real async methods run (checkpoints included) on the
thread of the scheduler that would own the storage.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from skedulr import MemoryStorage, errors
from skedulr._result import encode_result

T0 = 1_700_000_000_000  # epoch ms the machine starts at
POOLS = ("a", "b")
OWNERS = (1, 2)
MAX_LEASE_LOSSES = 2
RETENTION_MS = 300  # ended tasks other than dead ones, then swept
DEAD_RETENTION_MS = 700  # dead ones
PRIORITIES = st.sampled_from([-1000, -3, -1, 0, 0, 0, 1, 2, 1000])
DELAYS = st.sampled_from([None, None, 0, 40, 250])
RETRY_DELAYS = st.sampled_from([None, 0, 60, 300])
LEASES = st.sampled_from([100, 400])

WAITING_LIKE = ("scheduled", "retrying")
TERMINAL = ("succeeded", "dead", "cancelled", "skipped")
STATUSES = ("waiting", "scheduled", "queued", "running", "retrying", "succeeded", "dead", "cancelled", "skipped")


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass
class Lease:
    slot: int
    token: int
    owner: int
    deadline: int


@dataclass
class ModelTask:
    id: str
    pool: str
    priority: int
    max_retries: int
    seq: int  # submission order
    ready_ms: int
    status: str  # "scheduled"/"retrying" may be due: see `effective`
    attempts: int = 0
    lease_losses: int = 0
    lease: Lease | None = None
    slot: int | None = None
    finished_ms: int = 0  # when it entered its terminal state

    def end(self, status: str, now: int) -> None:
        self.status = status
        self.finished_ms = now

    def effective(self, now: int) -> str:
        """The status the storage reports at `now` (it promotes due scheduled and retrying tasks)."""
        if self.status in WAITING_LIKE and self.ready_ms <= now:
            return "queued"
        return self.status

    def claim_key(self) -> tuple[int, int, int]:
        return (-self.priority, self.ready_ms, self.seq)


class StorageMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.storage: MemoryStorage | None = trio.from_thread.run_sync(
            functools.partial(
                MemoryStorage,
                max_lease_losses=MAX_LEASE_LOSSES,
                retention=RETENTION_MS / 1000,
                dead_retention=DEAD_RETENTION_MS / 1000,
            )
        )
        self.now = T0
        self.tasks: dict[str, ModelTask] = {}
        self.next_seq = 0
        self.next_id = 0
        self.stale: list[tuple[int, int]] = []  # (slot, token) of leases that ended
        self.tokens_seen: set[int] = set()

    # ----- helpers --------------------------------------------------------------------------------

    def call(self, method: str, *args: Any) -> Any:
        """`await storage.<method>(*args)`, run in the Trio thread."""
        return trio.from_thread.run(getattr(self.storage, method), *args)

    def engine(self, method: str, *args: Any) -> Any:
        """A read of the Rust engine behind the storage (lease bookkeeping no storage method shows)."""
        return trio.from_thread.run_sync(lambda: getattr(self.storage._engine, method)(*args))  # type: ignore[union-attr]

    def teardown(self) -> None:
        # The last reference to the engine must go in the Trio thread that used it.
        trio.from_thread.run_sync(setattr, self, "storage", None)

    def _spec(self, pool: str, priority: int, delay: int | None, max_retries: int, explicit_id: bool) -> tuple:
        task_id = None
        if explicit_id:
            task_id = f"t{self.next_id}"
            self.next_id += 1
        run_at = None if delay is None else self.now + delay
        return (task_id, "job", pool, b"payload", priority, max_retries, 0, None, run_at, [], None)

    def _add(self, task_id: str, spec: tuple) -> None:
        assert task_id not in self.tasks, f"storage reused id {task_id}"
        if spec[0] is not None:
            assert task_id == spec[0]
        run_at = spec[8]
        ready = self.now if run_at is None else max(run_at, self.now)
        self.tasks[task_id] = ModelTask(
            id=task_id,
            pool=spec[2],
            priority=spec[4],
            max_retries=spec[5],
            seq=self.next_seq,
            ready_ms=ready,
            status="scheduled" if ready > self.now else "queued",
        )
        self.next_seq += 1

    def _running(self) -> list[ModelTask]:
        return sorted((t for t in self.tasks.values() if t.status == "running"), key=lambda t: t.seq)

    def _end_lease(self, task: ModelTask) -> None:
        assert task.lease is not None
        self.stale.append((task.lease.slot, task.lease.token))
        task.lease = None

    def _requeue(self, task: ModelTask) -> None:
        """A hand-back or a reaped lease: back in line at its old place, the attempt not counted."""
        task.attempts -= 1
        task.status = "queued"

    # ----- submitting -----------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        assert self.call("counts", self.now) == {}

    @rule(
        pool=st.sampled_from(POOLS),
        priority=PRIORITIES,
        delay=DELAYS,
        max_retries=st.integers(0, 2),
        explicit_id=st.booleans(),
    )
    def submit(self, pool: str, priority: int, delay: int | None, max_retries: int, explicit_id: bool) -> None:
        spec = self._spec(pool, priority, delay, max_retries, explicit_id)
        task_id, created = self.call("submit", spec, self.now)
        assert created
        self._add(task_id, spec)

    @rule(
        items=st.lists(
            st.tuples(st.sampled_from(POOLS), PRIORITIES, DELAYS, st.integers(0, 2), st.booleans()),
            min_size=1,
            max_size=4,
        )
    )
    def submit_many(self, items: list[tuple[str, int, int | None, int, bool]]) -> None:
        specs = [self._spec(*item) for item in items]
        out = self.call("submit_many", specs, self.now)
        assert len(out) == len(specs)
        for (task_id, created), spec in zip(out, specs, strict=True):
            assert created
            self._add(task_id, spec)

    @precondition(lambda self: any(t.id.startswith("t") for t in self.tasks.values()))
    @rule(data=st.data(), in_batch=st.booleans())
    def submit_duplicate_id(self, data: st.DataObject, in_batch: bool) -> None:
        taken = data.draw(st.sampled_from(sorted(i for i in self.tasks if i.startswith("t"))))
        dup = (taken, "job", "a", b"", 0, 0, 0, None, None, [], None)
        with pytest.raises(errors.DuplicateTaskError):
            if in_batch:
                fresh = (f"fresh{self.next_id}", "job", "a", b"", 0, 0, 0, None, None, [], None)
                self.call("submit_many", [fresh, dup], self.now)
            else:
                self.call("submit", dup, self.now)

    # ----- workers --------------------------------------------------------------------------------

    @rule(pool=st.sampled_from(POOLS), max_tasks=st.integers(0, 5), owner=st.sampled_from(OWNERS), lease_ms=LEASES)
    def claim(self, pool: str, max_tasks: int, owner: int, lease_ms: int) -> None:
        eligible = [t for t in self.tasks.values() if t.pool == pool and t.effective(self.now) == "queued"]
        expected = sorted(eligible, key=ModelTask.claim_key)[:max_tasks]
        rows = self.call("claim", pool, max_tasks, owner, lease_ms, self.now)
        assert [r[2] for r in rows] == [t.id for t in expected]
        for (slot, token, task_id, name, payload, attempt, priority, timeout_ms), task in zip(
            rows, expected, strict=True
        ):
            assert task_id == task.id
            assert task.lease is None, "claimed while an attempt holds its lease"
            assert task.ready_ms <= self.now, "claimed before its time"
            assert token not in self.tokens_seen, "fencing token reused"
            if task.slot is not None:
                assert slot == task.slot
            assert (name, payload, priority, timeout_ms) == ("job", b"payload", task.priority, 0)
            assert attempt == task.attempts + 1
            self.tokens_seen.add(token)
            task.slot = slot
            task.attempts += 1
            task.status = "running"
            task.lease = Lease(slot, token, owner, self.now + lease_ms)

    def _held(self, data: st.DataObject) -> list[ModelTask]:
        running = self._running()
        if not running:
            return []
        return data.draw(st.lists(st.sampled_from(running), unique_by=lambda t: t.id, max_size=len(running)))

    def _stale(self, data: st.DataObject) -> list[tuple[int, int]]:
        if not self.stale:
            return []
        return data.draw(st.lists(st.sampled_from(self.stale), unique=True, max_size=2))

    @rule(data=st.data())
    def succeed_many(self, data: st.DataObject) -> None:
        tasks, stale = self._held(data), self._stale(data)
        result = encode_result("done")  # as the scheduler stores it
        items = [(t.lease.slot, t.lease.token, result) for t in tasks if t.lease] + [(s, k, None) for s, k in stale]
        refused = self.call("succeed_many", items, self.now)
        assert sorted(map(tuple, refused)) == sorted(stale)
        for task in tasks:
            self._end_lease(task)
            task.end("succeeded", self.now)

    @precondition(lambda self: bool(self._running()))
    @rule(data=st.data(), retry_delay=RETRY_DELAYS)
    def fail(self, data: st.DataObject, retry_delay: int | None) -> None:
        task = data.draw(st.sampled_from(self._running()))
        assert task.lease is not None
        stale = self._stale(data)
        items = [(task.lease.slot, task.lease.token, "E: x", "tb", retry_delay)] + [
            (s, k, "E: y", "tb", None) for s, k in stale
        ]
        refused = self.call("fail_many", items, self.now)
        assert sorted(map(tuple, refused)) == sorted(stale)
        self._end_lease(task)
        if retry_delay is not None and task.attempts <= task.max_retries:
            task.ready_ms = self.now + retry_delay
            task.status = "retrying" if retry_delay > 0 else "queued"
        else:
            task.end("dead", self.now)

    @rule(data=st.data())
    def hand_back_many(self, data: st.DataObject) -> None:
        tasks, stale = self._held(data), self._stale(data)
        items = [(t.lease.slot, t.lease.token) for t in tasks if t.lease] + stale
        accepted = self.call("hand_back_many", items, self.now)
        assert accepted == len(tasks)
        for task in tasks:
            self._end_lease(task)
            self._requeue(task)

    @rule(data=st.data(), owner=st.sampled_from(OWNERS), lease_ms=LEASES)
    def renew(self, data: st.DataObject, owner: int, lease_ms: int) -> None:
        mine = [t for t in self._running() if t.lease and t.lease.owner == owner]
        tasks = data.draw(st.lists(st.sampled_from(mine), unique_by=lambda t: t.id)) if mine else []
        stale = self._stale(data)
        held = [(t.lease.slot, t.lease.token) for t in tasks if t.lease] + stale
        lost = self.call("renew", held, lease_ms, self.now)
        # A lease past its deadline that no reaper has taken yet is still held: the reaper decides.
        assert sorted(map(tuple, lost)) == sorted(stale)
        for task in tasks:
            assert task.lease is not None
            task.lease.deadline = self.now + lease_ms

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data(), retry_delay=RETRY_DELAYS)
    def stale_token_is_refused_everywhere(self, data: st.DataObject, retry_delay: int | None) -> None:
        slot, token = data.draw(st.sampled_from(self.stale))
        assert self.call("fail_many", [(slot, token, "late", "tb", retry_delay)], self.now) == [(slot, token)]
        assert self.call("succeed_many", [(slot, token, b"late")], self.now) == [(slot, token)]
        assert self.call("hand_back_many", [(slot, token)], self.now) == 0
        assert self.call("renew", [(slot, token)], 1000, self.now) == [(slot, token)]

    # ----- time and the reaper --------------------------------------------------------------------

    @rule(ms=st.integers(1, 500))
    def advance(self, ms: int) -> None:
        self.now += ms

    @precondition(lambda self: any(t.status in WAITING_LIKE and t.ready_ms > self.now for t in self.tasks.values()))
    @rule(data=st.data(), offset=st.sampled_from([-1, 0]))
    def advance_to_a_due_time(self, data: st.DataObject, offset: int) -> None:
        """Lands on (or 1 ms before) the moment a delayed task becomes claimable: the boundary."""
        due = sorted({t.ready_ms for t in self.tasks.values() if t.status in WAITING_LIKE and t.ready_ms > self.now})
        self.now = max(self.now, data.draw(st.sampled_from(due)) + offset)

    @precondition(lambda self: any(t.lease and t.lease.deadline > self.now for t in self.tasks.values()))
    @rule(data=st.data(), offset=st.sampled_from([-1, 0]))
    def reap_at_a_lease_deadline(self, data: st.DataObject, offset: int) -> None:
        """Reaps at (or 1 ms before) a lease's deadline: a lease is expired from its deadline on."""
        deadlines = sorted({t.lease.deadline for t in self.tasks.values() if t.lease and t.lease.deadline > self.now})
        self.now = max(self.now, data.draw(st.sampled_from(deadlines)) + offset)
        self.reap(0)

    @rule(ms=st.integers(0, 500))
    def reap(self, ms: int) -> None:
        """The reaper wakes up `ms` after the last step (its loop runs every lease_ttl / 2)."""
        self.now += ms
        reaped = self.call("reap", self.now)
        expected = []
        for task in self._running():
            lease = task.lease
            assert lease is not None
            if lease.deadline > self.now:
                continue
            task.lease_losses += 1
            dead = task.lease_losses >= MAX_LEASE_LOSSES
            expected.append((lease.slot, lease.token, task.id, dead))
            self._end_lease(task)
            if dead:
                task.end("dead", self.now)
            else:
                self._requeue(task)
        assert sorted(map(tuple, reaped)) == sorted(expected)

    # ----- operators ------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        if data.draw(st.integers(0, 9)) == 0:
            with pytest.raises(errors.TaskNotFoundError):
                self.call("cancel", "no-such-task", self.now)
            return
        running = self._running()
        choices = running if running and data.draw(st.booleans()) else self.tasks.values()
        task = data.draw(st.sampled_from(sorted(choices, key=lambda t: t.seq)))
        cancelled, lease, before = self.call("cancel", task.id, self.now)
        status = task.effective(self.now)
        if status in TERMINAL:
            assert (cancelled, lease, before) == (False, None, status)
            return
        assert cancelled is True and before is None
        if task.lease is not None:
            assert tuple(lease) == (task.lease.slot, task.lease.token)
            self._end_lease(task)
        else:
            assert lease is None
        task.end("cancelled", self.now)

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def resubmit(self, data: st.DataObject) -> None:
        dead = [t for t in self.tasks.values() if t.status == "dead"]
        pool = dead if dead and data.draw(st.booleans()) else list(self.tasks.values())
        task = data.draw(st.sampled_from(sorted(pool, key=lambda t: t.seq)))
        if task.status != "dead":
            with pytest.raises(errors.InvalidStateError):
                self.call("resubmit", task.id, self.now)
            return
        self.call("resubmit", task.id, self.now)
        task.attempts = 0
        task.lease_losses = 0
        task.ready_ms = self.now
        task.status = "queued"
        task.finished_ms = 0

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def purge(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(sorted(self.tasks.values(), key=lambda t: t.seq)))
        if task.status not in TERMINAL:
            with pytest.raises(errors.InvalidStateError):
                self.call("purge", task.id)
            return
        self.call("purge", task.id)
        del self.tasks[task.id]

    @rule(ms=st.integers(0, 800))
    def sweep(self, ms: int) -> None:
        """Forgets ended tasks past the retention and dead ones past the dead letter queue's."""
        self.now += ms
        swept = self.call("sweep", self.now)
        gone = [
            t.id
            for t in self.tasks.values()
            if t.status in TERMINAL
            and t.finished_ms < self.now - (DEAD_RETENTION_MS if t.status == "dead" else RETENTION_MS)
        ]
        assert swept == len(gone)
        for task_id in gone:
            del self.tasks[task_id]

    # ----- checks after every step ----------------------------------------------------------------

    @invariant()
    def counts_match(self) -> None:
        counts = self.call("counts", self.now)
        for pool in set(counts) | {t.pool for t in self.tasks.values()}:
            expected = dict.fromkeys(STATUSES, 0)
            for task in self.tasks.values():
                if task.pool == pool:
                    expected[task.effective(self.now)] += 1
            assert counts.get(pool, dict.fromkeys(STATUSES, 0)) == expected, pool
        assert sum(n for c in counts.values() for n in c.values()) == len(self.tasks)

    @invariant()
    def every_task_once_in_its_state(self) -> None:
        page = self.call("list_tasks", None, None, None, None, 10_000, None, self.now)
        assert page.next_cursor is None
        ids = [info.id for info in page.tasks]
        assert len(ids) == len(set(ids)) == len(self.tasks) == self.engine("__len__")
        assert set(ids) == set(self.tasks)
        for info in page.tasks:
            task = self.tasks[info.id]
            assert info.status.value == task.effective(self.now), info.id
            assert (info.pool, info.priority, info.max_retries) == (task.pool, task.priority, task.max_retries)
            assert info.attempts == task.attempts, info.id
            assert info.lease_losses == task.lease_losses, info.id
            assert info.run_at == _when(task.ready_ms), info.id
            if task.status == "dead":
                assert info.error is not None
            if task.status == "succeeded":
                assert info.result == "done" and info.error is None

    @invariant()
    def leases_match(self) -> None:
        all_leases: list[tuple[int, int]] = []
        for owner in OWNERS:
            held = sorted(map(tuple, self.engine("leases_of", owner)))
            expected = sorted(
                (t.lease.slot, t.lease.token) for t in self.tasks.values() if t.lease and t.lease.owner == owner
            )
            assert held == expected, owner
            all_leases += held
        slots = [slot for slot, _ in all_leases]
        assert len(slots) == len(set(slots)), "two leases on one task"
        assert not set(all_leases) & set(self.stale), "an ended lease is still held"
        for task in self.tasks.values():
            assert (task.lease is not None) == (task.status == "running")

    @invariant()
    def next_due_matches(self) -> None:
        self.call("counts", self.now)  # promotes what is due, as every read does
        for pool in POOLS:
            later = [
                t.ready_ms
                for t in self.tasks.values()
                if t.pool == pool and t.status in WAITING_LIKE and t.ready_ms > self.now
            ]
            assert self.call("next_due", pool) == (min(later) if later else None), pool


MACHINE_SETTINGS = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


async def test_memory_storage_matches_the_model() -> None:
    run = functools.partial(run_state_machine_as_test, StorageMachine, settings=MACHINE_SETTINGS)
    await trio.to_thread.run_sync(run)


# ----- plain tests of what the machine relies on ----------------------------------------------------------


async def test_claim_order_priority_then_ready_time_then_submission() -> None:
    storage = MemoryStorage()

    def spec(task_id: str, priority: int, run_at: int | None = None) -> tuple:
        return (task_id, "job", "p", b"", priority, 0, 0, None, run_at, [], None)

    await storage.submit(spec("late-ready", 0, T0 + 100), T0)  # ready at T0+100, submitted first
    await storage.submit(spec("low", -1), T0 + 10)
    await storage.submit(spec("first", 0), T0 + 20)
    await storage.submit(spec("second", 0), T0 + 30)
    await storage.submit(spec("high", 5), T0 + 40)
    assert [r[2] for r in (await storage.claim("p", 10, 1, 1000, T0 + 50))] == ["high", "first", "second", "low"]
    assert (await storage.claim("p", 10, 1, 1000, T0 + 99)) == []
    assert [r[2] for r in (await storage.claim("p", 10, 1, 1000, T0 + 100))] == ["late-ready"]


async def test_a_handed_back_task_keeps_its_place_in_line() -> None:
    storage = MemoryStorage()
    for task_id in ("one", "two", "three"):
        await storage.submit((task_id, "job", "p", b"", 0, 0, 0, None, None, [], None), T0)
    rows = await storage.claim("p", 1, 1, 1000, T0)
    assert rows[0][2] == "one"
    assert (await storage.hand_back_many([(rows[0][0], rows[0][1])], T0 + 5)) == 1
    assert [r[2] for r in (await storage.claim("p", 3, 1, 1000, T0 + 5))] == ["one", "two", "three"]


async def test_crash_loop_goes_dead_after_max_lease_losses() -> None:
    storage = MemoryStorage(max_lease_losses=2)
    await storage.submit(("loop", "job", "p", b"", 0, 5, 0, None, None, [], None), T0)
    now = T0
    for loss in (1, 2):
        (row,) = await storage.claim("p", 1, 1, 100, now)
        now += 100
        ((slot, token, task_id, dead),) = await storage.reap(now)
        assert (slot, token, task_id) == (row[0], row[1], "loop")
        assert dead is (loss == 2)
    info = await storage.get("loop", now)
    assert info.status.value == "dead" and info.lease_losses == 2
    assert info.attempts == 1  # lease losses are counted apart: the first was handed back uncounted
    assert info.error is not None and "lost its lease 2 times" in info.error
