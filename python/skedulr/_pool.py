"""A named worker pool: one fetcher that claims for free runner slots, and fixed runner tasks fed from a
deque (DESIGN.md §4: faster than a memory channel or a task per job).

While the pool's jobs are short (their average under `PREFETCH_BELOW` seconds) the fetcher also claims
up to `size` tasks ahead: a runner that finishes starts the next task at once instead of waiting for a
claim round trip, which would otherwise idle every runner between two short jobs. A prefetched task
waits at most about one short job: once a running job has taken `PREFETCH_BELOW` seconds the pool counts
as one of long jobs and hands its prefetched tasks back, so none waits behind a long job while another
instance has room. Prefetched tasks are leased and renewed like running ones; one whose lease was last
confirmed more than half a lease ago is handed back rather than started (it may be running elsewhere).

The pool never runs more jobs than its size: runners start a job only while `running < size`, and a
timed-out sync job keeps its runner until its thread returns.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import trio

from .storage.base import ClaimRow, Held

if TYPE_CHECKING:
    from .scheduler import Scheduler

PREFETCH_BELOW = 1.0  # seconds: a pool whose jobs take less than this on average claims ahead
_SMOOTHING = 0.1  # weight of the newest job in the running average of job durations


class Pool:
    def __init__(self, scheduler: Scheduler, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.paused = False
        self.running = 0
        self.backlog: deque[ClaimRow] = deque()  # claimed, not started yet
        self.thread_limiter = trio.CapacityLimiter(max(1, size))
        self._scheduler = scheduler
        self._runners = 0
        self._runner_lot = trio.lowlevel.ParkingLot()
        self._fetcher_lot = trio.lowlevel.ParkingLot()
        self._woken = False
        # The last claim found the queue empty (the storage returned nothing; one that returned less than
        # it was asked for may have stopped at its reply's size cap), and nothing woke the fetcher since:
        # a runner that frees up then need not wake it, as new work does (a submit, a hint, a hand-off,
        # the flush after an outcome). Set by `Scheduler._claim`.
        self.queue_was_empty = False
        self._nursery: trio.Nursery | None = None
        self.average_job_seconds = math.inf  # unknown until a job has run: no prefetch
        self._started_at: dict[int, float] = {}  # token -> trio time, of the jobs running now
        self._fetcher_wakes_at = math.inf  # when the parked fetcher looks again by itself
        self._leased_at: dict[int, float] = {}  # token -> trio time its lease was last confirmed, of the backlog

    def __repr__(self) -> str:
        paused = " paused" if self.paused else ""
        return f"<Pool {self.name} running={self.running}/{self.size} backlog={len(self.backlog)}{paused}>"

    @property
    def is_paused(self) -> bool:
        return self.paused or self._scheduler._paused

    @property
    def free_slots(self) -> int:
        """How many more tasks the fetcher may claim: free runners, plus `size` ahead while jobs are short."""
        ahead = self.size if self.average_job_seconds < PREFETCH_BELOW else 0
        return self.size + ahead - self.running - len(self.backlog)

    def _job_took(self, seconds: float) -> None:
        if self.average_job_seconds == math.inf:
            self.average_job_seconds = seconds
        else:
            self.average_job_seconds += _SMOOTHING * (seconds - self.average_job_seconds)

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        what = f"claiming for pool {self.name}"
        nursery.start_soon(
            self._scheduler._outlast_outages, self._fetch_loop, what, name=f"skedulr.fetcher[{self.name}]"
        )
        self._spawn_runners()

    def _spawn_runners(self) -> None:
        assert self._nursery is not None
        while self._runners < self.size:
            self._runners += 1
            self._nursery.start_soon(self._runner_loop, name=f"skedulr.runner[{self.name}]")

    def resize(self, size: int) -> list[ClaimRow]:
        """Sets the size; returns claimed-but-unstarted tasks that no longer fit (to hand back)."""
        self.size = size
        self.thread_limiter.total_tokens = max(1, size)
        surplus = self._surplus()
        if self._nursery is not None:
            self._spawn_runners()
        self._runner_lot.unpark_all()  # surplus runners notice and retire
        self.wake()
        return surplus

    def _surplus(self) -> list[ClaimRow]:
        """Takes claimed, unstarted tasks beyond what the pool may hold now (the last claimed first)."""
        surplus: list[ClaimRow] = []
        while self.backlog and self.free_slots < 0:
            surplus.append(self.backlog.pop())
        self._forget(surplus)
        return surplus

    def accept(self, rows: list[ClaimRow], leased_at: float | None = None) -> None:
        """Tasks leased to this pool (claimed, or handed to it by a submit) at `leased_at` (default now)
        join the backlog; runners start them. Those beyond what the pool may hold (it shrank meanwhile)
        go back to the queue."""
        self.backlog.extend(rows)
        at = trio.current_time() if leased_at is None else leased_at
        for row in rows:
            self._leased_at[row[1]] = at
        if self.free_slots < 0:
            self._scheduler._hand_back_rows(self._surplus())
        if rows:
            self._runner_lot.unpark(count=len(rows))

    def wake(self) -> None:
        """Tells the fetcher to look again: work may be there, or a slot came free."""
        self._woken = True
        self.queue_was_empty = False
        self._fetcher_lot.unpark_all()

    def leases_confirmed(self, held: set[Held], at: float) -> None:
        """The heartbeat renewed these leases at `at`."""
        for row in self.backlog:
            if (row[0], row[1]) in held:
                self._leased_at[row[1]] = at

    def _check_long_jobs(self) -> None:
        """A job running for PREFETCH_BELOW seconds already makes this a pool of long jobs: the tasks
        claimed ahead go back to the queue rather than wait behind it."""
        if self.backlog and self._started_at and self.average_job_seconds < PREFETCH_BELOW:
            oldest, now = min(self._started_at.values()), trio.current_time()
            if oldest + PREFETCH_BELOW <= now:  # (the very sum the fetcher's deadline is, to the last bit)
                self.average_job_seconds = max(PREFETCH_BELOW, now - oldest)
                self._scheduler._hand_back_rows(self._surplus())

    def drop_from_backlog(self, held: set[Held]) -> None:
        """Forgets claimed, unstarted tasks whose (handle, token) is in `held`: cancelled, or their lease lost."""
        if any((row[0], row[1]) in held for row in self.backlog):
            kept = [row for row in self.backlog if (row[0], row[1]) not in held]
            self._forget([row for row in self.backlog if (row[0], row[1]) in held])
            self.backlog.clear()
            self.backlog.extend(kept)

    def take_backlog(self) -> list[ClaimRow]:
        rows = list(self.backlog)
        self.backlog.clear()
        self._forget(rows)
        return rows

    def _forget(self, rows: list[ClaimRow]) -> None:
        for row in rows:
            self._leased_at.pop(row[1], None)

    async def _fetch_loop(self) -> None:
        s = self._scheduler
        while not s._stopping:
            free = self.free_slots
            if free <= 0 or self.is_paused:
                await self._sleep_until_woken(None)
                continue
            self._woken = False
            # A claim cancelled in flight may still have run on the server, leasing tasks nobody would
            # run: so it is never cancelled, and what it returns goes into the backlog at once, where
            # every way of stopping (shutdown, cancellation) finds it and hands it back.
            sent = trio.current_time()  # the leases began after this (the storage's clock may differ)
            with trio.CancelScope(shield=True):
                rows, full = await s._claim(self, free)
            if self.is_paused:  # paused while the claim was in flight: nothing starts now
                s._hand_back_rows(rows)
                continue
            self.accept(rows, sent)
            if s._stopping:
                return
            if rows or full:  # (full: more may wait, even if every row was seen here before)
                await trio.lowlevel.checkpoint()
                continue
            await self._sleep_until_woken(await s._storage.next_due(self.name))

    async def _sleep_until_woken(self, due_ms: int | None) -> None:
        self._check_long_jobs()
        if self._woken:  # woken while busy: look again, after letting others run
            self._woken = False
            await trio.lowlevel.checkpoint()
            return
        s = self._scheduler
        deadline = s._clock.trio_time(due_ms) if due_ms is not None else math.inf
        if s._storage.poll_interval is not None:
            deadline = min(deadline, trio.current_time() + s._storage.poll_interval)
        if self.backlog and self._started_at and self.average_job_seconds < PREFETCH_BELOW:
            # claimed ahead: look again when the oldest running job would count as long (in the future:
            # _check_long_jobs just ran)
            deadline = min(deadline, min(self._started_at.values()) + PREFETCH_BELOW)
        self._fetcher_wakes_at = deadline
        try:
            with trio.move_on_at(deadline):
                await self._fetcher_lot.park()
        finally:
            self._fetcher_wakes_at = -math.inf  # awake

    async def _runner_loop(self) -> None:
        """Runs claimed tasks one at a time under one cancel scope per runner (a scope per job costs
        more than a no-op job). A stop or timeout cancels the scope; the runner then takes a fresh one."""
        s = self._scheduler
        try:
            while self._runners <= self.size:
                with trio.CancelScope() as scope:
                    while not scope.cancel_called:
                        if self._runners > self.size:
                            return
                        if self.backlog and self.running < self.size and not (s._stopping or self.is_paused):
                            row = self.backlog.popleft()
                            began = trio.current_time()
                            leased_at = self._leased_at.pop(row[1], began)
                            if began - leased_at > s.lease_ttl / 2:
                                s._hand_back_rows([row])  # its lease may have run out: maybe running elsewhere
                                continue
                            self.running += 1
                            self._started_at[row[1]] = began
                            if (began + PREFETCH_BELOW < self._fetcher_wakes_at and self.backlog
                                    and self.average_job_seconds < PREFETCH_BELOW):  # fmt: skip
                                self.wake()  # the parked fetcher must look when this job turns long
                            recorded = False
                            try:
                                recorded = await s._run_attempt(self, row, scope, leased_at)
                            finally:
                                self.running -= 1
                                del self._started_at[row[1]]
                                self._job_took(trio.current_time() - began)
                                # After an empty queue, the flush's wake (once this outcome is recorded)
                                # claims: one claim per job at low load, not two.
                                if not (recorded and self.queue_was_empty):
                                    self.wake()
                        else:
                            await self._runner_lot.park()
        finally:
            self._runners -= 1
