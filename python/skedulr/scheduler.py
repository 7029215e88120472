"""The `Scheduler`: runs named worker pools inside your Trio program, against a storage.

    sched = Scheduler(storage=MemoryStorage(), max_workers=10, pools={"critical": 5})

    @sched.job("email_sender")
    async def send_email(ctx: JobContext) -> None: ...

    async with sched:                      # or: await nursery.start(sched.run)
        tid = await sched.submit(Task("email_sender", payload=b"..."))
        info = await sched.wait(tid)

User code is called in exactly one place (`_run_attempt`): async jobs directly, sync jobs in a thread.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, suppress
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import trio

from . import _core, _validate
from ._clock import Clock
from ._jobs import Job, JobFunction, JobRegistry
from ._pool import Pool
from ._result import encode_result
from ._watchdog import Watchdog
from .context import JobContext
from .errors import (
    InvalidOptionError,
    JobBlockedError,
    JobTimeoutError,
    PermanentError,
    ResultNotSerializableError,
    StorageError,
    UnknownJobError,
    UnknownPoolError,
)
from .middleware import AttemptOutcome, Middleware
from .retry import ExponentialBackoff, RetryPolicy
from .stats import InstanceInfo, PoolStats, ScheduleInfo, SchedulerStats
from .storage.base import ClaimRow, Failure, Held, Spec, Storage
from .storage.memory import MemoryStorage
from .task import DEFAULT_POOL, Task, TaskInfo, TaskPage, TaskStatus

log = logging.getLogger("skedulr")

F = TypeVar("F", bound=JobFunction)

_MAX_ERROR_CHARS = 4_000
_MAX_TRACEBACK_CHARS = 32_000
_MAX_POOL_SIZE = 10_000
_SWEEP_BATCH = 1000  # the most ended (or dead) tasks one sweep call forgets (RedisStorage); then it is called again
CONTROL_HINT = "!control"  # a wake-up hint that is not a pool name: pool controls changed
_OUTAGE_PAUSE = 0.5  # seconds between attempts while the storage is unreachable
_OUTAGE_LOG_EVERY = 10.0  # seconds between warnings about the same outage
# An attempt whose lease was last confirmed this many leases ago is stopped here (see _lease_guard_loop):
# the rest of the lease is for the stop to take effect before another instance may take the task.
_LEASE_KEPT = 0.9


class _Attempt:
    """An attempt in progress here: what cancel, lease loss and shutdown need to stop it, and when its
    lease was last known to hold (Trio time: when it was claimed, or last renewed)."""

    __slots__ = ("confirmed_at", "ctx", "handle", "reason", "row", "scope", "timeout", "token")

    def __init__(
        self,
        scope: trio.CancelScope,
        ctx: JobContext,
        row: ClaimRow,
        timeout: float | None,
        confirmed_at: float,
    ) -> None:
        self.scope = scope
        self.ctx = ctx
        self.handle = row[0]
        self.token = row[1]
        self.row = row
        self.timeout = timeout
        self.confirmed_at = confirmed_at
        self.reason: str | None = None

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.ctx._cancelled = True
        self.scope.cancel()


class Scheduler:
    """Runs tasks from `storage` in named pools. See the module docstring for the shape of a program.

    - `max_workers` sizes the pool named "default" (where tasks without a pool go); `pools` adds more.
    - `retry`: the default retry policy (a task's `max_retries` overrides its retry count).
    - `default_timeout`: seconds, for tasks and jobs that set none.
    - `lease_ttl`: seconds a claimed task stays leased without a heartbeat; heartbeats run every third of it.
    - `shutdown_grace`: seconds running jobs get to finish when the scheduler stops.
    - `block_limit`: seconds an async job may hold the event loop without yielding before it is failed
      with `JobBlockedError`.
    - `permanent_errors`: exception types that skip retries, besides `PermanentError`.
    """

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        max_workers: int = 10,
        pools: dict[str, int] | None = None,
        retry: RetryPolicy | None = None,
        default_timeout: float | None = None,
        lease_ttl: float = 30.0,
        shutdown_grace: float = 10.0,
        block_limit: float = 10.0,
        permanent_errors: Iterable[type[BaseException]] = (),
    ) -> None:
        self._storage: Storage = storage if storage is not None else MemoryStorage()
        self.retry = retry if retry is not None else ExponentialBackoff()
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidOptionError(f"retry must be a skedulr retry policy (e.g. ExponentialBackoff()), not {retry!r}")
        self.default_timeout = _validate.optional_seconds("default_timeout", default_timeout, allow_zero=False)
        self.lease_ttl = _validate.seconds("lease_ttl", lease_ttl, allow_zero=False)
        self.shutdown_grace = _validate.seconds("shutdown_grace", shutdown_grace)
        self.block_limit = _validate.seconds("block_limit", block_limit, allow_zero=False)
        extra = tuple(permanent_errors) if isinstance(permanent_errors, (list, tuple, set, frozenset)) else None
        if extra is None or not all(isinstance(t, type) and issubclass(t, BaseException) for t in extra):
            raise InvalidOptionError(f"permanent_errors must be a list of exception types, not {permanent_errors!r}")
        self.permanent_errors: tuple[type[BaseException], ...] = (PermanentError, ResultNotSerializableError,
                                                                  UnknownJobError, *extra)  # fmt: skip
        self._jobs = JobRegistry()
        self._middleware: list[Middleware] = []
        self._clock = Clock()
        self._owner = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{self._owner:08x}"
        self._started_ms = 0
        self._pools: dict[str, Pool] = {}
        self._pools[DEFAULT_POOL] = Pool(self, DEFAULT_POOL, _pool_size(DEFAULT_POOL, max_workers))
        for name, size in (pools or {}).items():
            _core.validate_name("pool name", name)
            self._pools[name] = Pool(self, name, _pool_size(name, size))
        self._paused = False
        self._running: dict[str, _Attempt] = {}
        self._lease_guard_lot = trio.lowlevel.ParkingLot()
        self._lease_guard_wakes_at = -math.inf  # (Trio time) when the lease guard looks again
        self._successes: list[tuple[Any, int, bytes | None]] = []
        self._failures: list[Failure] = []
        self._hand_backs: list[Held] = []
        self._leaving_idle: set[str] = set()  # pools that must take no more hand-offs (paused, resized)
        # Hand-off (RedisStorage): this run's id (drawn in `run`, so a forked copy never shares it), and
        # the tokens of leased rows seen lately: a handed task may come by its message and by a claim.
        self._hand_id = ""
        self._seen: set[int] = set()
        self._seen_order: deque[tuple[float, int]] = deque()
        self._progress: dict[Held, float] = {}
        self._progress_lock = threading.Lock()
        self._flush_lot = trio.lowlevel.ParkingLot()
        self._schedule_lot = trio.lowlevel.ParkingLot()
        self._schedules_changed = False
        self._outage_logged: dict[str, float] = {}
        self._controls_seen: dict[str, tuple[int | None, bool | None]] = {}
        self._controls_changed = trio.Event()
        self._succeeded = 0
        self._failed = 0
        self._nursery: trio.Nursery | None = None
        self._stopping = False
        self._stop_requested: trio.Event | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._trio_thread: int | None = None
        self._watchdog: Watchdog | None = None
        self._exit_stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        pools = ",".join(f"{p.name}:{p.running}/{p.size}" for p in self._pools.values())
        state = "running" if self.is_running else "stopped"
        paused = " paused" if self._paused else ""
        return (f"<Scheduler storage={self._storage.kind} pools={pools} running={len(self._running)} "
                f"{state}{paused}>")  # fmt: skip

    @property
    def storage(self) -> Storage:
        """Where this scheduler's tasks live."""
        return self._storage

    @property
    def is_running(self) -> bool:
        """True between the start of `run` and the beginning of its shutdown."""
        return self._nursery is not None and not self._stopping

    # ----- registration -------------------------------------------------------------------------

    def job(self, name: str, *, retry: RetryPolicy | None = None, timeout: float | None = None) -> Callable[[F], F]:
        """Decorator: registers the function as job `name`. Sync functions run in threads."""

        def register(fn: F) -> F:
            self._jobs.register(name, fn, retry, timeout)
            return fn

        return register

    def register_job(
        self, name: str, fn: JobFunction, *, retry: RetryPolicy | None = None, timeout: float | None = None
    ) -> None:
        """Registers `fn` as job `name` (the decorator `job` does the same). Sync functions run in threads."""
        self._jobs.register(name, fn, retry, timeout)

    def use(self, middleware: Middleware) -> None:
        """Adds middleware around every attempt; the first added is the outermost."""
        if not isinstance(middleware, Middleware):
            raise InvalidOptionError("middleware must subclass skedulr.Middleware")
        self._middleware.append(middleware)

    # ----- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Scheduler:
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            await nursery.start(self.run)
        except BaseException:
            await stack.aclose()
            raise
        self._exit_stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self.stop()
        stack, self._exit_stack = self._exit_stack, None
        assert stack is not None, "__aexit__ without __aenter__"
        try:
            suppress = await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # Our nursery wrapped the body's own exception: hand it back to the caller as it was raised.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                raise exc from None
            raise
        return suppress

    def stop(self) -> None:
        """Asks a running scheduler to shut down gracefully (returns at once; `run` returns when done)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def run(self, *, task_status: trio.TaskStatus[Scheduler] = trio.TASK_STATUS_IGNORED) -> None:
        """Runs until `stop()` (graceful) or cancellation (running tasks are handed back at once)."""
        if self._nursery is not None:
            raise InvalidOptionError("this scheduler is already running")
        self._clock.anchor()
        self._started_ms = self._clock.now_ms()
        self._hand_id = os.urandom(8).hex()
        self._stopping = False
        self._stop_requested = trio.Event()
        self._trio_token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()
        try:
            async with self._storage.session():
                try:
                    await self._serve(task_status)
                finally:
                    with trio.CancelScope(shield=True):  # whatever happened, nothing stays claimed here
                        self._stopping = True
                        with suppress(StorageError):
                            await self._stand_idle_no_more(list(self._pools))
                        for pool in self._pools.values():
                            self._hand_back_rows(pool.take_backlog())
                        await self._flush_or_report()
                        with suppress(StorageError):  # leaving is a courtesy: the beat expires anyway
                            await self._storage.leave_instance(self.instance_id)
        finally:
            self._nursery = None
            self._watchdog = None

    async def _serve(self, task_status: trio.TaskStatus[Scheduler]) -> None:
        stop_requested = self._stop_requested
        assert stop_requested is not None, "run() sets it"
        async with trio.open_nursery() as services:
            async with trio.open_nursery() as workers:
                self._nursery = workers
                hints = partial(self._storage.serve_hints, hand_id=self._hand_id, on_hand=self._on_hand)
                await services.start(hints, self._on_wake_hint, self._on_cancel_hint)
                for pool in self._pools.values():
                    pool.start(workers)
                for loop, what in (
                    (self._flush_loop, "recording outcomes"),
                    (self._heartbeat_loop, "renewing leases"),
                    (self._reap_loop, "reaping expired leases"),
                    (self._schedule_loop, "firing schedules"),
                    (self._sweep_loop, "sweeping old tasks"),
                    (self._controls_loop, "reading pool controls"),
                ):
                    services.start_soon(self._outlast_outages, loop, what, name=f"skedulr.{loop.__name__}")
                services.start_soon(self._lease_guard_loop, name="skedulr._lease_guard_loop")
                self._watchdog = Watchdog(self, self.block_limit)
                await services.start(self._watchdog.run)
                task_status.started(self)
                await stop_requested.wait()
                await self._shutdown()
                workers.cancel_scope.cancel()
            services.cancel_scope.cancel()

    async def _outlast_outages(self, loop: Callable[[], Awaitable[None]], what: str) -> None:
        """Runs a background loop, restarting it after a storage error: while Redis is down every call
        fails fast, and the worker must wait for it to come back, not die."""
        while True:
            try:
                await loop()
                return
            except StorageError as e:
                now = time.monotonic()
                if now - self._outage_logged.get(what, -math.inf) >= _OUTAGE_LOG_EVERY:
                    self._outage_logged[what] = now
                    log.warning("storage unavailable while %s (retrying every %gs): %s", what, _OUTAGE_PAUSE, e)
                await trio.sleep(_OUTAGE_PAUSE)

    async def _flush_or_report(self) -> None:
        """A last flush on the way out; if the storage is down, the leases run out and any instance's
        reaper returns the tasks."""
        try:
            await self._flush()
        except StorageError as e:
            unsent = len(self._successes) + len(self._failures) + len(self._hand_backs)
            log.error("could not record %d outcomes before stopping (%s); their leases will expire", unsent, e)

    async def _shutdown(self) -> None:
        """Stop claiming, hand back what was claimed but not started, give running jobs the grace
        period, then cancel them (their tasks go back to the queue without counting an attempt)."""
        self._stopping = True
        with suppress(StorageError):  # else its standing expires in moments; meanwhile hand-offs come back
            await self._stand_idle_no_more(list(self._pools))
        for pool in self._pools.values():
            pool.wake()
            self._hand_back_rows(pool.take_backlog())
        await self._flush_or_report()
        with trio.move_on_after(self.shutdown_grace):
            while self._running:
                await trio.sleep(0.01)
        for attempt in list(self._running.values()):
            attempt.stop("shutdown")
        while self._running:  # a sync job's thread cannot be interrupted: wait for it to return
            await trio.sleep(0.01)
        await self._flush_or_report()

    def _on_wake_hint(self, pool: str) -> None:
        if pool == CONTROL_HINT:
            self._controls_changed.set()
        elif pool == "*":  # hints lost: a cancel too, maybe, of a task claimed ahead; hand them all back
            for p in self._pools.values():
                self._hand_back_rows(p.take_backlog())
            self._controls_changed.set()
            self._wake_all()
        elif pool in self._pools:
            self._pools[pool].wake()

    async def set_pool(self, name: str, *, size: int | None = None, paused: bool | None = None) -> None:
        """Sets a pool's size and/or pause flag for every instance on this storage (this one at once,
        the others within moments). `name="*"` with `paused` pauses or resumes everything."""
        if name != "*":
            _core.validate_name("pool name", name)
        if size is not None:
            _pool_size(name, size)
        if paused is not None and not isinstance(paused, bool):
            raise InvalidOptionError(f"paused must be True, False or None, not {paused!r}")
        await self._storage.set_control(name, size, paused)
        await self._apply_controls()

    async def _apply_controls(self) -> None:
        """Applies pool controls set through the storage that changed since this instance last looked
        (so a local `pause()` or `scale_pool()` stands until an operator changes that control)."""
        for pool, control in (await self._storage.controls()).items():
            if self._controls_seen.get(pool) == control:
                continue
            self._controls_seen[pool] = control
            size, paused = control
            target = None if pool == "*" else pool
            if size is not None and target is not None:
                self.scale_pool(target, size)
            if paused is True:
                self.pause(target)
            elif paused is False:
                self.resume(target)

    async def _controls_loop(self) -> None:
        while True:
            await self._apply_controls()
            with trio.move_on_after(self._storage.poll_interval or self.lease_ttl / 3):
                await self._controls_changed.wait()
            self._controls_changed = trio.Event()

    def _on_hand(self, pool_name: str, rows: list[ClaimRow], lease_until_ms: int | None) -> None:
        """Tasks a submit leased to this instance at once (the storage's hand-off), as a claim returns
        them. One that arrives when its pool cannot take it (paused, stopping) goes back to the queue.
        Their lease began at the submit, not now: a message read late (the process stalled) counts so."""
        now = trio.current_time()
        rows = self._unseen(rows, now)
        pool = self._pools.get(pool_name)
        if pool is None or pool.is_paused or self._stopping:
            self._hand_back_rows(rows)
            return
        if lease_until_ms is not None:
            now = min(now, self._clock.trio_time(lease_until_ms) - self.lease_ttl)
        pool.accept(rows, now)

    def _unseen(self, rows: list[ClaimRow], now: float) -> list[ClaimRow]:
        """The rows whose lease this instance has not seen yet (see `_first_sight`)."""
        fresh = self._first_sight([row[1] for row in rows], now)
        return rows if len(fresh) == len(rows) else [row for row in rows if row[1] in fresh]

    def _first_sight(self, tokens: list[int], now: float) -> set[int]:
        """The lease tokens of `tokens` not seen yet (at Trio time `now`), noting them: a handed task comes
        by its message and, in case that was lost, by the next claim (or leaving) too."""
        horizon = now - 2 * self.lease_ttl  # a lease that old ran out: it cannot come again
        while self._seen_order and self._seen_order[0][0] < horizon:
            self._seen.discard(self._seen_order.popleft()[1])
        fresh = set(tokens) - self._seen
        self._seen |= fresh
        self._seen_order.extend((now, token) for token in fresh)
        return fresh

    async def _stand_idle_no_more(self, pools: list[str]) -> None:
        """Takes no more hand-offs in `pools` (until they claim again), and hands back what was handed
        to them and never seen here: its message is on its way, or was lost."""
        handed = await self._storage.leave_idle(self._hand_id, pools)
        fresh = self._first_sight([token for _handle, token in handed], trio.current_time())
        if fresh:
            await self._storage.hand_back_many([h for h in handed if h[1] in fresh], self._clock.now_ms())

    def _on_cancel_hint(self, task_id: str) -> None:
        attempt = self._running.get(task_id)
        if attempt is not None:
            attempt.stop("cancel")
        self._drop_unstarted({(r[0], r[1]) for p in self._pools.values() for r in p.backlog if r[2] == task_id})

    def _drop_unstarted(self, held: set[Held]) -> None:
        """Forgets claimed tasks not started yet (a pool's prefetched backlog) that must not start: cancelled
        ones, and those whose lease was lost. `held`: their (handle, token)."""
        for pool in self._pools.values():
            pool.drop_from_backlog(held)

    # ----- pools ----------------------------------------------------------------------------------

    def scale_pool(self, name: str, size: int) -> None:
        """Sets a pool's size (creating the pool if new). 0 pauses it; running jobs are never cut short."""
        _core.validate_name("pool name", name)
        size = _pool_size(name, size)
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = Pool(self, name, size)
            if self._nursery is not None:
                pool.start(self._nursery)
            return
        self._hand_back_rows(pool.resize(size))
        self._leave_idle([name])  # its next claim stands idle again, with the room it has now

    def pause(self, pool: str | None = None) -> None:
        """Stops starting tasks (everywhere, or in one pool) from the moment it returns: tasks claimed but
        not started go back to the queue. Running jobs go on."""
        pools = list(self._pools.values()) if pool is None else [self._pool(pool)]
        if pool is None:
            self._paused = True
        else:
            pools[0].paused = True
        for p in pools:
            self._hand_back_rows(p.take_backlog())
        self._leave_idle([p.name for p in pools])

    def resume(self, pool: str | None = None) -> None:
        """Starts claiming and starting tasks again (everywhere, or in one pool)."""
        if pool is None:
            self._paused = False
            for p in self._pools.values():
                p.wake()
        else:
            p = self._pool(pool)
            p.paused = False
            p.wake()

    def _pool(self, name: str) -> Pool:
        pool = self._pools.get(name)
        if pool is None:
            known = ", ".join(self._pools)
            raise UnknownPoolError(f"no pool named {name!r} (pools: {known}); create it with scale_pool({name!r}, n)")
        return pool

    @property
    def pools(self) -> dict[str, int]:
        """Pool name -> size."""
        return {name: p.size for name, p in self._pools.items()}

    # ----- submitting -----------------------------------------------------------------------------

    def _spec(self, task: Task) -> Spec:
        if not isinstance(task, Task):
            raise InvalidOptionError(f"submit takes a skedulr.Task, not {type(task).__name__}")
        job = self._jobs.get(task.name)  # a registered job's name and a pool's name were checked then
        if job is None or task.pool not in self._pools:
            _core.validate_name("job name", task.name)  # before the lookups, whose advice quotes the name
            _core.validate_name("pool name", task.pool)
            job = self._jobs.require(task.name)
            self._pool(task.pool)
        max_retries = task.max_retries if task.max_retries is not None else (job.retry or self.retry).max_retries
        timeout = task.timeout or job.timeout or self.default_timeout
        run_at_ms = None if task.run_at is None else round(task.run_at.timestamp() * 1000)
        delay_ms = None if task.delay is None else round(task.delay * 1000)
        timeout_ms = max(1, round(timeout * 1000)) if timeout else 0
        return (task.id, task.name, task.pool, task.payload, task.priority, max_retries, timeout_ms, task.key,
                run_at_ms, task.parents(), delay_ms)  # fmt: skip

    async def submit(self, task: Task) -> str:
        """Stores the task and returns its id (the existing task's id if its idempotency key is taken)."""
        now = self._clock.now_ms()
        task_id, created = await self._storage.submit(self._spec(task), now)
        if created:
            self._pools[task.pool].wake()
        return task_id

    async def submit_many(self, tasks: Iterable[Task]) -> list[str]:
        """Submits a batch atomically (all or nothing). Tasks may name each other as parents by id."""
        tasks = list(tasks)
        now = self._clock.now_ms()
        specs = [self._spec(t) for t in tasks]
        out = await self._storage.submit_many(specs, now)
        for pool in {t.pool for t in tasks}:
            self._pools[pool].wake()
        return [task_id for task_id, _ in out]

    async def schedule_every(
        self, seconds: float, task: Task, *, id: str | None = None, skip_if_running: bool = True
    ) -> str:
        """Submits `task` every `seconds`, once per tick across all instances. Returns the schedule id."""
        every = _validate.seconds("seconds", seconds, allow_zero=False)
        return await self._add_schedule(id, "every", str(max(1, round(every * 1000))), "UTC", task, skip_if_running)

    async def schedule_cron(
        self, spec: str, task: Task, *, tz: str = "UTC", id: str | None = None, skip_if_running: bool = True
    ) -> str:
        """Submits `task` at every time the 5-field cron `spec` matches in time zone `tz`."""
        if not isinstance(spec, str):
            raise InvalidOptionError("a cron spec is a str such as '*/5 * * * *'")
        _validate.text("tz", tz)
        return await self._add_schedule(id, "cron", spec, tz, task, skip_if_running)

    async def _add_schedule(
        self, schedule_id: str | None, kind: str, every: str, tz: str, task: Task, skip_if_running: bool
    ) -> str:
        if task.delay is not None or task.run_at is not None:
            raise InvalidOptionError("a schedule's task cannot have delay or run_at: the schedule sets its time")
        now = self._clock.now_ms()
        schedule_id = schedule_id or f"{task.name}.{os.urandom(6).hex()}"
        await self._storage.add_schedule(schedule_id, kind, every, tz, self._spec(task), skip_if_running, now)
        self._schedules_changed = True
        self._schedule_lot.unpark_all()
        return schedule_id

    async def unschedule(self, schedule_id: str) -> None:
        """Removes a schedule; tasks it already submitted are not touched."""
        await self._storage.remove_schedule(schedule_id)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every stored schedule, with its next fire time and what it has fired or skipped."""
        return [ScheduleInfo(*row) for row in await self._storage.schedules()]

    # ----- reading and operating ----------------------------------------------------------------

    async def get(self, task_id: str) -> TaskInfo:
        """The task as the storage holds it now. Raises `TaskNotFoundError` for an unknown (or purged) id."""
        return await self._storage.get(task_id, self._clock.now_ms())

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskInfo:
        """Waits until the task has ended (succeeded, dead, cancelled or skipped) and returns it.
        With `timeout`, raises `trio.TooSlowError` if it has not ended in time."""
        with trio.fail_after(math.inf if timeout is None else timeout):
            await self._storage.wait(task_id, self._clock.now_ms())
        return await self.get(task_id)

    async def cancel(self, task_id: str) -> bool:
        """Cancels a waiting, scheduled, queued, retrying or running task. A running async job is
        cancelled at once; a sync job sees `ctx.cancelled`. Returns False if the task had already ended."""
        cancelled, lease, _ = await self._storage.cancel(task_id, self._clock.now_ms())
        attempt = self._running.get(task_id)
        if lease is not None and attempt is not None and (attempt.handle, attempt.token) == tuple(lease):
            attempt.stop("cancel")
        if lease is not None:
            self._drop_unstarted({(lease[0], lease[1])})
        if cancelled:
            self._wake_all()  # DAG children of the cancelled task may have become ready
        return cancelled

    async def resubmit(self, task_id: str) -> None:
        """Runs a dead task again, with a fresh attempt budget."""
        await self._storage.resubmit(task_id, self._clock.now_ms())
        self._wake_all()

    async def resubmit_dead(
        self, *, name: str | None = None, pool: str | None = None, query: str | None = None, limit: int = 1000
    ) -> list[str]:
        """Resubmits dead tasks matching the filter (oldest first). Returns their ids."""
        _validate.count("limit", limit, 1, 100_000)
        ids = await self._storage.resubmit_dead(name, pool, query, limit, self._clock.now_ms())
        self._wake_all()
        return ids

    async def purge(self, task_id: str) -> None:
        """Deletes an ended task (a dead one leaves the dead letter queue)."""
        await self._storage.purge(task_id)

    async def purge_dead(
        self, *, name: str | None = None, pool: str | None = None, query: str | None = None, limit: int = 1000
    ) -> list[str]:
        """Deletes dead tasks matching the filter (oldest first). Returns their ids."""
        _validate.count("limit", limit, 1, 100_000)
        return await self._storage.purge_dead(name, pool, query, limit)

    async def list_tasks(
        self,
        *,
        status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
        name: str | None = None,
        pool: str | None = None,
        query: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> TaskPage:
        """Tasks newest first. `status` may be one status or several; "failed" means retrying or dead."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidOptionError(f"limit must be an int from 1 to 10000, not {limit!r}")
        statuses = _statuses(status)
        return await self._storage.list_tasks(statuses, name, pool, query, limit, cursor, self._clock.now_ms())

    async def stats(self) -> SchedulerStats:
        """Task counts per pool and status from the storage, with this scheduler's live state."""
        per_pool = await self._storage.counts(self._clock.now_ms())
        totals: dict[str, int] = {s.value: 0 for s in TaskStatus}
        for counts in per_pool.values():
            for status, n in counts.items():
                totals[status] += n
        pools = {
            name: PoolStats(
                name, p.size, p.running, p.paused, per_pool.get(name, {s.value: 0 for s in TaskStatus}), len(p.backlog)
            )
            for name, p in self._pools.items()
        }
        return SchedulerStats(pools, totals, len(self._running), self._succeeded, self._failed, self._paused)

    async def join(self, poll: float = 0.05) -> None:
        """Waits until no task is waiting, queued, running or retrying (scheduled ones are not waited for)."""
        busy = ("waiting", "queued", "running", "retrying")
        while True:
            counts = await self._storage.counts(self._clock.now_ms())
            if not any(c[s] for c in counts.values() for s in busy) and not self._running:
                return
            await trio.sleep(poll)

    # ----- running attempts -----------------------------------------------------------------------

    async def _claim(self, pool: Pool, free: int) -> tuple[list[ClaimRow], bool]:
        """Claims up to `free` tasks for `pool`: returns those not seen here yet, and whether the storage
        returned all `free` (the queue may hold more: tasks handed here and seen already, which a claim
        returns first, count against `free` too)."""
        lease_ms = round(self.lease_ttl * 1000)
        runners = max(0, pool.size - pool.running - len(pool.backlog))  # the room it offers for hand-offs
        rows = await self._storage.claim(
            pool.name, free, self._owner, lease_ms, self._clock.now_ms(), idle=(self._hand_id, runners)
        )
        pool.queue_was_empty = not rows  # (before `_unseen`: tasks handed here before count as claimed)
        return self._unseen(rows, trio.current_time()), len(rows) >= free

    async def _run_attempt(self, pool: Pool, row: ClaimRow, scope: trio.CancelScope, leased_at: float) -> bool:
        """Runs one attempt inside the runner's `scope` and queues its outcome for the flusher. The only
        place user code is called. A stop (cancel, lost lease, shutdown) or the timeout cancels `scope`.
        `leased_at`: when the task's lease was last known to hold. Returns whether the attempt ended with
        an outcome for the flusher (which, once it is recorded, wakes every pool)."""
        handle, token, task_id, name, payload, attempt_no, priority, timeout_ms = row
        job = self._jobs.get(name)
        timeout = timeout_ms / 1000 if timeout_ms else None
        deadline = time.monotonic() + timeout if (timeout and job is not None and not job.is_async) else None
        ctx = JobContext(self, handle, token, task_id, name, payload, attempt_no, pool.name, priority, deadline)
        attempt = self._running[task_id] = _Attempt(scope, ctx, row, timeout, leased_at)
        if leased_at + self.lease_ttl * _LEASE_KEPT < self._lease_guard_wakes_at:
            self._lease_guard_lot.unpark_all()  # (a task claimed ahead a while ago)
        middleware = self._middleware
        started = time.perf_counter() if middleware else 0.0
        timeout_at = trio.current_time() + timeout if timeout else math.inf
        if timeout:
            scope.deadline = timeout_at
        result: Any = None
        error: Exception | None = None
        try:
            if job is None:
                raise UnknownJobError(f"no job registered as {name!r} in this scheduler")
            for m in middleware:
                await m.before_attempt(ctx)
            if job.is_async:
                result = await job.fn(ctx)
            else:
                result = await trio.to_thread.run_sync(job.fn, ctx, limiter=pool.thread_limiter)
            encoded = None if result is None else encode_result(result)
        except Exception as e:
            error = e
        except BaseException:  # Cancelled (maybe grouped by the job's own nursery), KeyboardInterrupt, ...
            timed_out = trio.current_time() >= timeout_at
            outcome = self._settle_stopped(attempt, external=not scope.cancel_called, timed_out=timed_out)
            if middleware:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    await self._after(ctx, outcome)
            raise
        finally:
            if self._running.get(task_id) is attempt:  # a lost lease may have let a newer attempt in
                del self._running[task_id]
            if timeout:
                scope.deadline = math.inf
        if scope.cancel_called:  # the job swallowed the cancellation and returned or raised (or ran on: a thread)
            outcome = self._settle_stopped(attempt, external=False, timed_out=trio.current_time() >= timeout_at)
            if middleware:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):  # (in the cancelled scope)
                    await self._after(ctx, outcome)
            return False
        if error is None:
            self._successes.append((handle, token, encoded))
            self._succeeded += 1
        else:
            if isinstance(error, JobBlockedError) and not error.args:  # raised into the job by the watchdog
                error = JobBlockedError(
                    f"the job held the event loop for over {self.block_limit:g}s without yielding; make it a "
                    "sync function (it runs in a thread) or await checkpoints in it"
                ).with_traceback(error.__traceback__)  # keep where it was stuck
            self._record_failure(handle, token, task_id, attempt_no, error, job)
        self._flush_lot.unpark_all()
        if middleware:
            status = "succeeded" if error is None else "failed"
            await self._after(ctx, AttemptOutcome(status, result, error, time.perf_counter() - started))
        return True

    def _settle_stopped(self, attempt: _Attempt, *, external: bool, timed_out: bool) -> AttemptOutcome:
        """Decides what a stopped attempt means for its task. Synchronous: it runs inside cancelled code.
        What a stopped job returned never counts: it may have returned early because it was told to stop."""
        handle, token, task_id, _, _, attempt_no, _, _ = attempt.row
        # The scope's deadline: a timeout (also when the lease guard stopped it too: the timeout was first
        # or at once, and it is the task's own doing).
        if not external and (attempt.reason is None or (timed_out and attempt.reason == "unconfirmed")):
            error = JobTimeoutError(f"the attempt ran past its timeout of {attempt.timeout:g}s")
            self._record_failure(handle, token, task_id, attempt_no, error, self._jobs.get(attempt.ctx.name))
            self._flush_lot.unpark_all()
            return AttemptOutcome("failed", error=error)
        if external or attempt.reason in ("shutdown", "unconfirmed"):
            # not the task's fault: no attempt counted. (After "unconfirmed", the lease may have run out
            # meanwhile: the storage then refuses the hand-back, and the reaper has the task.)
            self._hand_back_rows([attempt.row])
        # "cancel" and "lease": the storage has already moved the task on; nothing to report.
        return AttemptOutcome("cancelled")

    async def _after(self, ctx: JobContext, outcome: AttemptOutcome) -> None:
        for m in reversed(self._middleware):
            try:
                await m.after_attempt(ctx, outcome)
            except Exception:
                log.exception("middleware %r failed in after_attempt for task %s", m, ctx.task_id)

    def _record_failure(
        self, handle: Any, token: int, task_id: str, attempt_no: int, error: BaseException, job: Job | None
    ) -> None:
        self._failed += 1
        policy = (job.retry if job and job.retry else None) or self.retry
        delay = None if self._is_permanent(error) else policy.delay_ms(attempt_no, task_id)
        text = _describe(error)[:_MAX_ERROR_CHARS]
        try:
            tb = "".join(traceback.format_exception(error))[-_MAX_TRACEBACK_CHARS:]
        except Exception:  # an exception that cannot even be formatted
            tb = text
        log.warning("task %s attempt %d failed: %s", task_id, attempt_no, text)
        self._failures.append((handle, token, text, tb, delay))

    def _is_permanent(self, error: BaseException) -> bool:
        """A permanent error, or a group (from the job's own nursery) made only of permanent errors."""
        if isinstance(error, BaseExceptionGroup):
            _, rest = error.split(self.permanent_errors)
            return rest is None
        return isinstance(error, self.permanent_errors)

    def _record_progress(self, handle: Any, token: int, fraction: float) -> None:
        with self._progress_lock:  # jobs in threads report too; `_flush` swaps the dict under the lock
            self._progress[(handle, token)] = fraction
        if threading.get_ident() == self._trio_thread:
            self._flush_lot.unpark_all()
        elif self._trio_token is not None:
            self._trio_token.run_sync_soon(self._flush_lot.unpark_all)

    def _hand_back_rows(self, rows: list[ClaimRow]) -> None:
        if rows:
            self._hand_backs.extend((r[0], r[1]) for r in rows)
            self._flush_lot.unpark_all()

    def _leave_idle(self, pools: list[str]) -> None:
        """Asks the storage (at the next flush) to hand these pools no more tasks until they claim again."""
        self._leaving_idle.update(pools)
        self._flush_lot.unpark_all()

    def _wake_all(self) -> None:
        for pool in self._pools.values():
            pool.wake()

    # ----- background services ------------------------------------------------------------------

    async def _flush(self) -> None:
        """Sends every outcome gathered since the last flush to the storage, in as few calls as possible.
        Never cancelled half-way: the outcomes have left their lists, and each call is short and safe to
        repeat, so an interrupted flush could only lose them."""
        if not (self._successes or self._failures or self._hand_backs or self._progress or self._leaving_idle):
            return
        with trio.CancelScope(shield=True):
            await self._send_outcomes()

    async def _send_outcomes(self) -> None:
        now = self._clock.now_ms()
        successes, self._successes = self._successes, []
        failures, self._failures = self._failures, []
        hand_backs, self._hand_backs = self._hand_backs, []
        leaving, self._leaving_idle = self._leaving_idle, set()
        with self._progress_lock:
            progress, self._progress = self._progress, {}
        try:
            if leaving:
                await self._stand_idle_no_more(sorted(leaving))
            await self._record(now, successes, failures, hand_backs, progress)
        except StorageError:
            # Keep them for the next flush: every script is safe to repeat, so a part that did get
            # recorded is simply refused the second time.
            self._successes[:0] = successes
            self._failures[:0] = failures
            self._hand_backs[:0] = hand_backs
            self._leaving_idle |= leaving
            with self._progress_lock:
                self._progress = progress | self._progress
            raise

    async def _record(
        self,
        now: int,
        successes: list[tuple[Any, int, bytes | None]],
        failures: list[Failure],
        hand_backs: list[Held],
        progress: dict[Held, float],
    ) -> None:
        if progress:
            await self._storage.set_progress_many([(h, t, p) for (h, t), p in progress.items()])
        if successes:
            await self._storage.succeed_many(successes, now)
        if failures:
            await self._storage.fail_many(failures, now)
        if hand_backs:
            await self._storage.hand_back_many(hand_backs, now)
        self._wake_all()

    async def _flush_loop(self) -> None:
        while True:
            if not (self._successes or self._failures or self._hand_backs or self._progress or self._leaving_idle):
                await self._flush_lot.park()
            await self._flush()
            await trio.lowlevel.checkpoint()

    async def _beat_instance(self) -> None:
        fields = {
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "pools": ",".join(f"{p.name}:{p.size}" for p in self._pools.values()),
            "running": str(len(self._running)),
            "started_ms": str(self._started_ms),
        }
        await self._storage.beat_instance(self.instance_id, fields, round(self.lease_ttl * 1000), self._clock.now_ms())

    async def instances(self) -> list[InstanceInfo]:
        """The scheduler instances (processes) that heartbeat into this storage, including this one."""
        rows = await self._storage.instances(round(self.lease_ttl * 1000), self._clock.now_ms())
        return sorted((InstanceInfo.from_fields(f) for f in rows), key=lambda i: i.id)

    async def _heartbeat_loop(self) -> None:
        """Beats and renews, then waits a third of a lease. After an outage the loop starts again (see
        `_outlast_outages`) with the renewal, so leases are renewed as soon as the storage answers."""
        lease_ms = round(self.lease_ttl * 1000)
        while True:
            await self._beat_instance()
            await self._renew_leases(lease_ms)
            await trio.sleep(self.lease_ttl / 3)

    async def _renew_leases(self, lease_ms: int) -> None:
        held = [(a.handle, a.token) for a in self._running.values()]
        held += [(r[0], r[1]) for p in self._pools.values() for r in p.backlog]
        if not held:
            return
        sent = trio.current_time()
        lost = {tuple(h) for h in await self._storage.renew(held, lease_ms, self._clock.now_ms())}
        kept = {(h[0], h[1]) for h in held} - lost
        for attempt in list(self._running.values()):
            if (attempt.handle, attempt.token) in lost:
                attempt.stop("lease")
            elif (attempt.handle, attempt.token) in kept:
                attempt.confirmed_at = sent
        self._drop_unstarted(lost)
        for pool in self._pools.values():
            pool.leases_confirmed(kept, sent)

    async def _lease_guard_loop(self) -> None:
        """Stops an attempt whose lease this instance could not renew for most of a lease (the storage
        unreachable, or too slow to answer): past the lease's end, another instance's reaper may hand the
        task to someone else, and two runs at once are what leases are there to prevent. The task is
        handed back (no attempt counted; refused if the lease did run out, and then the reaper returns
        it), whatever the job returns: a sync job cannot be interrupted, only told (`ctx.cancelled`), and
        may return early because of it."""
        kept_for = self.lease_ttl * _LEASE_KEPT
        while True:
            now = trio.current_time()
            oldest = now
            for attempt in list(self._running.values()):
                if attempt.reason is not None:
                    continue  # stopping already
                if attempt.confirmed_at + kept_for <= now:
                    log.warning(
                        "task %s: its lease was last renewed %.1fs ago (the storage did not answer); stopped "
                        "here before the lease runs out, and handed back",
                        attempt.ctx.task_id, now - attempt.confirmed_at,
                    )  # fmt: skip
                    attempt.stop("unconfirmed")
                else:
                    oldest = min(oldest, attempt.confirmed_at)
            self._lease_guard_wakes_at = oldest + kept_for
            with trio.move_on_at(self._lease_guard_wakes_at):
                await self._lease_guard_lot.park()

    async def _reap_loop(self) -> None:
        while True:
            await trio.sleep(self.lease_ttl / 2)
            reaped = await self._storage.reap(self._clock.now_ms())
            for _handle, token, task_id, _dead in reaped:
                attempt = self._running.get(task_id)
                if attempt is not None and attempt.token == token:
                    attempt.stop("lease")
            self._drop_unstarted({(handle, token) for handle, token, _, _ in reaped})
            if reaped:
                self._wake_all()

    async def _schedule_loop(self) -> None:
        while True:
            self._schedules_changed = False
            due = await self._storage.next_schedule_due()
            if due is not None and due <= self._clock.now_ms():
                if await self._storage.fire_schedules(self._clock.now_ms()):
                    self._wake_all()
                continue
            if self._schedules_changed:  # one was added while we read: read again
                continue
            deadline = self._clock.trio_time(due) if due is not None else math.inf
            if self._storage.poll_interval is not None:  # other instances add schedules too
                deadline = min(deadline, trio.current_time() + self._storage.poll_interval)
            with trio.move_on_at(deadline):
                await self._schedule_lot.park()

    async def _sweep_loop(self) -> None:
        # A tenth of the shorter retention, so ended and dead tasks never outstay theirs by much (1 s to 60 s).
        retention_ms = min(self._storage.retention_ms, self._storage.dead_retention_ms or self._storage.retention_ms)
        every = min(60.0, max(1.0, retention_ms / 10_000))
        while True:
            await trio.sleep(every)
            while await self._storage.sweep(self._clock.now_ms()) >= _SWEEP_BATCH:
                await trio.lowlevel.checkpoint()  # more than one batch was due


def _describe(error: BaseException) -> str:
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:  # its __str__ raised
        return f"{type(error).__name__}: <unprintable>"


def _pool_size(name: str, size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_POOL_SIZE:
        raise InvalidOptionError(f"pool {name!r}: size must be an int from 0 to {_MAX_POOL_SIZE}, not {size!r}")
    return size


def _statuses(status: TaskStatus | str | Iterable[TaskStatus | str] | None) -> list[str] | None:
    if status is None:
        return None
    items = [status] if isinstance(status, str) else list(status)
    out: list[str] = []
    for s in items:
        value = s.value if isinstance(s, TaskStatus) else str(s)
        out.extend(["retrying", "dead"] if value == "failed" else [value])
    return out


__all__ = ["Scheduler"]
