"""The embedded storage: task state lives in the Rust engine (`skedulr._core.Engine`), in this process.

Nothing survives the process, but everything survives the scheduler: a `MemoryStorage` handed to a new
`Scheduler` still holds every queued, scheduled, retrying and dead task, and every schedule.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from .. import _core
from ..task import TaskInfo, TaskPage
from .base import ClaimRow, Failure, Held, Spec, parse_cursor, parse_dead_retention


class MemoryStorage:
    """In-process storage. `retention`: seconds an ended task (other than a dead one) stays readable.
    `dead_retention`: seconds a dead task stays in the dead letter queue (None: until resubmitted or
    purged). `key_ttl`: seconds an idempotency key is remembered after its task ends."""

    kind = "memory"
    poll_interval: float | None = None  # every change happens in this process: wake-ups are never missed

    def __init__(
        self,
        *,
        retention: float = 3600.0,
        dead_retention: float | None = None,
        key_ttl: float = 86400.0,
        max_payload_bytes: int = 1 << 20,
        max_lease_losses: int = 3,
    ) -> None:
        self.retention_ms = int(retention * 1000)
        self.dead_retention_ms = parse_dead_retention(dead_retention)
        self._engine = _core.Engine(
            max_payload_bytes=max_payload_bytes,
            key_ttl_ms=int(key_ttl * 1000),
            max_lease_losses=max_lease_losses,
            id_seed=int.from_bytes(os.urandom(8), "little"),
        )
        self._waiters: dict[str, trio.Event] = {}
        self._instances: dict[str, dict[str, str]] = {}
        self._controls: dict[str, tuple[int | None, bool | None]] = {}

    def __repr__(self) -> str:
        return f"<MemoryStorage tasks={len(self._engine)}>"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        yield

    async def serve_hints(
        self,
        on_wake: Callable[[str], None],
        on_cancel: Callable[[str], None],
        *,
        hand_id: str | None = None,
        on_hand: Callable[[str, list[ClaimRow], int | None], None] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Nothing to relay: the scheduler sharing this process wakes its pools itself (and hands off
        nothing: a claim here costs no round trip)."""
        task_status.started()
        await trio.sleep_forever()

    async def leave_idle(self, hand_id: str, pools: list[str]) -> list[Held]:
        """Nothing to leave (see `serve_hints`)."""
        return []

    def _notify(self) -> None:
        """Wakes `wait()` callers whose task has ended (called after every change that can end one)."""
        if self._waiters:
            for task_id in self._engine.drain_finished():
                event = self._waiters.pop(task_id, None)
                if event is not None:
                    event.set()

    async def beat_instance(self, instance_id: str, fields: dict[str, str], ttl_ms: int, now_ms: int) -> None:
        self._instances[instance_id] = {**fields, "id": instance_id, "beat_ms": str(now_ms)}

    async def leave_instance(self, instance_id: str) -> None:
        self._instances.pop(instance_id, None)

    async def instances(self, ttl_ms: int, now_ms: int) -> list[dict[str, str]]:
        await trio.lowlevel.checkpoint()
        return [dict(f) for f in self._instances.values() if int(f["beat_ms"]) > now_ms - ttl_ms]

    async def set_control(self, pool: str, size: int | None, paused: bool | None) -> None:
        await trio.lowlevel.checkpoint()
        old_size, old_paused = self._controls.get(pool, (None, None))
        self._controls[pool] = (old_size if size is None else size, old_paused if paused is None else paused)

    async def controls(self) -> dict[str, tuple[int | None, bool | None]]:
        return dict(self._controls)

    async def submit(self, spec: Spec, now_ms: int) -> tuple[str, bool]:
        await trio.lowlevel.checkpoint()  # an async API call always yields (Trio convention)
        out = self._engine.submit(spec, now_ms)
        self._notify()
        return out

    async def submit_many(self, specs: list[Spec], now_ms: int) -> list[tuple[str, bool]]:
        await trio.lowlevel.checkpoint()  # an async API call always yields (Trio convention)
        out = self._engine.submit_many(specs, now_ms)
        self._notify()
        return out

    async def claim(
        self, pool: str, max_tasks: int, owner: int, lease_ms: int, now_ms: int, *, idle: tuple[str, int] | None = None
    ) -> list[ClaimRow]:
        return self._engine.claim(pool, max_tasks, owner, lease_ms, now_ms)

    async def succeed_many(self, items: list[tuple[Any, int, bytes | None]], now_ms: int) -> list[Held]:
        refused = self._engine.succeed_many(items, now_ms)
        self._notify()
        return refused

    async def fail_many(self, items: list[Failure], now_ms: int) -> list[Held]:
        fail = self._engine.fail
        refused = [
            (slot, token) for slot, token, error, tb, delay in items if not fail(slot, token, error, tb, delay, now_ms)
        ]
        self._notify()
        return refused

    async def hand_back_many(self, items: list[Held], now_ms: int) -> int:
        return self._engine.hand_back_many(items, now_ms)

    async def renew(self, held: list[Held], lease_ms: int, now_ms: int) -> list[Held]:
        return self._engine.renew(held, lease_ms, now_ms)

    async def reap(self, now_ms: int) -> list[tuple[Any, int, str, bool]]:
        reaped = self._engine.reap(now_ms)
        self._notify()
        return reaped

    async def set_progress_many(self, items: list[tuple[Any, int, float]]) -> None:
        for handle, token, fraction in items:
            self._engine.set_progress(handle, token, fraction)

    async def next_due(self, pool: str) -> int | None:
        return self._engine.next_due(pool)

    async def cancel(self, task_id: str, now_ms: int) -> tuple[bool, Held | None, str | None]:
        await trio.lowlevel.checkpoint()  # an async API call always yields (Trio convention)
        out = self._engine.cancel(task_id, now_ms)
        self._notify()
        return out

    async def resubmit(self, task_id: str, now_ms: int) -> None:
        await trio.lowlevel.checkpoint()  # an async API call always yields (Trio convention)
        self._engine.resubmit(task_id, now_ms)

    async def resubmit_dead(
        self, name: str | None, pool: str | None, query: str | None, limit: int, now_ms: int
    ) -> list[str]:
        return self._engine.resubmit_dead(name, pool, query, limit, now_ms)

    async def purge(self, task_id: str) -> None:
        await trio.lowlevel.checkpoint()  # an async API call always yields (Trio convention)
        self._engine.purge(task_id)

    async def purge_dead(self, name: str | None, pool: str | None, query: str | None, limit: int) -> list[str]:
        return self._engine.purge_dead(name, pool, query, limit)

    async def get(self, task_id: str, now_ms: int) -> TaskInfo:
        await trio.lowlevel.checkpoint()  # an async API call always yields (Trio convention)
        return TaskInfo.from_row(self._engine.get(task_id, now_ms))

    async def list_tasks(
        self,
        statuses: list[str] | None,
        name: str | None,
        pool: str | None,
        query: str | None,
        limit: int,
        cursor: str | None,
        now_ms: int,
    ) -> TaskPage:
        await trio.lowlevel.checkpoint()
        after = parse_cursor(cursor)
        rows, next_cursor = self._engine.list_tasks(statuses, name, pool, query, limit, after, now_ms)
        return TaskPage([TaskInfo.from_row(r) for r in rows], None if next_cursor is None else str(next_cursor))

    async def counts(self, now_ms: int) -> dict[str, dict[str, int]]:
        await trio.lowlevel.checkpoint()  # an async API call always yields (Trio convention)
        return {pool: dict(counts) for pool, counts in self._engine.counts(now_ms)}

    async def wait(self, task_id: str, now_ms: int) -> None:
        if not self._engine.watch(task_id):
            return
        event = self._waiters.get(task_id)
        if event is None:
            event = self._waiters[task_id] = trio.Event()
        await event.wait()

    async def sweep(self, now_ms: int) -> int:
        swept = self._engine.sweep(now_ms - self.retention_ms, now_ms)
        if self.dead_retention_ms is not None:
            swept += self._engine.sweep_dead(now_ms - self.dead_retention_ms)
        return swept

    async def add_schedule(
        self, schedule_id: str, kind: str, every: str, tz: str, template: Spec, skip_if_running: bool, now_ms: int
    ) -> int:
        return self._engine.add_schedule(schedule_id, kind, every, tz, template, skip_if_running, now_ms)

    async def remove_schedule(self, schedule_id: str) -> None:
        self._engine.remove_schedule(schedule_id)

    async def schedules(self) -> list[tuple[Any, ...]]:
        return self._engine.schedules()

    async def next_schedule_due(self) -> int | None:
        return self._engine.next_schedule_due()

    async def fire_schedules(self, now_ms: int) -> list[str]:
        created = self._engine.fire_schedules(now_ms)
        self._notify()
        return created
