"""The storage contract: one protocol, two implementations (memory and Redis), one test suite.

Every method takes `now_ms`, the scheduler's clock, so tests drive time; a storage with a clock of its
own (Redis uses the server's) may ignore it. A `ClaimRow` is what a worker needs to run an attempt:
`(handle, token, id, name, payload, attempt, priority, timeout_ms)`, where `handle` is opaque and goes
back to the storage with `token` (the lease's fencing token) in every report about that attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import trio

from .. import _validate
from ..errors import InvalidOptionError
from ..task import TaskInfo, TaskPage

ClaimRow = tuple[Any, int, str, str, bytes, int, int, int]
Held = tuple[Any, int]  # (handle, token)
Failure = tuple[Any, int, str, str, int | None]  # (handle, token, error, traceback, retry delay ms)
# (id, name, pool, payload, priority, max_retries, timeout_ms, key, run_at_ms, parents, delay_ms): run_at_ms is
# a moment (epoch ms, on the storage's clock), delay_ms a distance from when the storage stores the task
Spec = tuple[Any, ...]


def parse_dead_retention(seconds: float | None) -> int | None:
    """A storage's `dead_retention` option in ms: None keeps dead tasks until resubmitted or purged."""
    if seconds is None:
        return None
    return round(_validate.seconds("dead_retention", seconds, allow_zero=False) * 1000)


def parse_cursor(cursor: str | None) -> int | None:
    """A listing cursor is the decimal position after which the next page starts (opaque to callers)."""
    if not cursor:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidOptionError(f"invalid cursor {cursor[:40]!r}: pass back a next_cursor from list_tasks")
    return int(cursor)


@runtime_checkable
class Storage(Protocol):
    """What a scheduler needs from the place tasks live; `MemoryStorage` and `RedisStorage` implement it."""

    kind: str
    # How often a fetcher with nothing to do looks again without a hint (None: never needed).
    poll_interval: float | None
    # How long (ms) an ended task other than a dead one stays readable before `sweep` forgets it.
    retention_ms: int
    # How long (ms) a dead task stays in the dead letter queue before `sweep` forgets it (None: for good).
    dead_retention_ms: int | None

    def session(self) -> AbstractAsyncContextManager[None]:
        """Holds what a running scheduler needs (connections); entered for the length of `run`."""
        ...

    async def serve_hints(
        self,
        on_wake: Callable[[str], None],
        on_cancel: Callable[[str], None],
        *,
        hand_id: str | None = None,
        on_hand: Callable[[str, list[ClaimRow], int | None], None] | None = None,
        task_status: trio.TaskStatus[None] = ...,
    ) -> None:
        """Relays other instances' news until cancelled: a pool got work (`on_wake(pool)`), a running
        task was cancelled (`on_cancel(task_id)`). `on_wake("*")`: news may have been lost (the
        connection was re-established): look at every pool, and trust no task claimed ahead. A storage
        may also hand the instance `hand_id` tasks leased to it already, as a claim would have:
        `on_hand(pool, rows, lease_until_ms)` (None: lease end not known)."""
        ...

    async def leave_idle(self, hand_id: str, pools: list[str]) -> list[Held]:
        """Hands the instance no more tasks in `pools` until it claims there again (it pauses, resizes or
        stops). Returns tasks handed to it that it still holds, for it to hand back those it never saw."""
        ...

    async def beat_instance(self, instance_id: str, fields: dict[str, str], ttl_ms: int, now_ms: int) -> None:
        """Announces a running instance (host, pid, pools, running); it drops out `ttl_ms` after its last beat."""
        ...

    async def leave_instance(self, instance_id: str) -> None: ...

    async def instances(self, ttl_ms: int, now_ms: int) -> list[dict[str, str]]:
        """The instances that beat within `ttl_ms`, each as its fields plus "id" and "beat_ms"."""
        ...

    async def set_control(self, pool: str, size: int | None, paused: bool | None) -> None:
        """Sets a pool's size and/or pause flag for every instance (`pool` "*": the global pause)."""
        ...

    async def controls(self) -> dict[str, tuple[int | None, bool | None]]:
        """{pool or "*": (size, paused)} as last set through `set_control`."""
        ...

    async def submit(self, spec: Spec, now_ms: int) -> tuple[str, bool]:
        """Stores a task; returns (id, created). `created` is False when an idempotency key matched."""
        ...

    async def submit_many(self, specs: list[Spec], now_ms: int) -> list[tuple[str, bool]]: ...

    async def claim(
        self, pool: str, max_tasks: int, owner: int, lease_ms: int, now_ms: int, *, idle: tuple[str, int] | None = None
    ) -> list[ClaimRow]:
        """Leases up to `max_tasks` of the pool's ready tasks to `owner`. A storage that hands off (see
        `serve_hints`) also takes `idle`: the instance's hand id and free runners."""
        ...

    async def succeed_many(self, items: list[tuple[Any, int, bytes | None]], now_ms: int) -> list[Held]:
        """Records successes; returns the (handle, token) pairs refused because the lease was lost."""
        ...

    async def fail_many(self, items: list[Failure], now_ms: int) -> list[Held]:
        """Records failed attempts (handle, token, error, traceback, retry delay in ms or None for no
        retry): each is retried after its delay while attempts remain, else dead. Returns the (handle,
        token) pairs refused because the lease was lost."""
        ...

    async def hand_back_many(self, items: list[Held], now_ms: int) -> int: ...

    async def renew(self, held: list[Held], lease_ms: int, now_ms: int) -> list[Held]:
        """Renews leases; returns the ones lost."""
        ...

    async def reap(self, now_ms: int) -> list[tuple[Any, int, str, bool]]:
        """Returns expired leases' tasks to the queue: [(handle, token, id, now_dead)]."""
        ...

    async def set_progress_many(self, items: list[tuple[Any, int, float]]) -> None: ...

    async def next_due(self, pool: str) -> int | None:
        """When the next scheduled or retrying task of `pool` becomes due (epoch ms)."""
        ...

    async def cancel(self, task_id: str, now_ms: int) -> tuple[bool, Held | None, str | None]:
        """(cancelled now, the lease it held if running, its status if it had already ended)."""
        ...

    async def resubmit(self, task_id: str, now_ms: int) -> None: ...

    async def resubmit_dead(self, name: str | None, pool: str | None, query: str | None, limit: int,
                            now_ms: int) -> list[str]: ...  # fmt: skip

    async def purge(self, task_id: str) -> None: ...

    async def purge_dead(self, name: str | None, pool: str | None, query: str | None, limit: int) -> list[str]: ...

    async def get(self, task_id: str, now_ms: int) -> TaskInfo: ...

    async def list_tasks(self, statuses: list[str] | None, name: str | None, pool: str | None, query: str | None,
                         limit: int, cursor: str | None, now_ms: int) -> TaskPage: ...  # fmt: skip

    async def counts(self, now_ms: int) -> dict[str, dict[str, int]]:
        """{pool: {status: count}}."""
        ...

    async def wait(self, task_id: str, now_ms: int) -> None:
        """Returns once the task has ended."""
        ...

    async def sweep(self, now_ms: int) -> int:
        """Forgets tasks past their retention; returns how many."""
        ...

    async def add_schedule(self, schedule_id: str, kind: str, every: str, tz: str, template: Spec,
                           skip_if_running: bool, now_ms: int) -> int: ...  # fmt: skip

    async def remove_schedule(self, schedule_id: str) -> None: ...

    async def schedules(self) -> list[tuple[Any, ...]]: ...

    async def next_schedule_due(self) -> int | None: ...

    async def fire_schedules(self, now_ms: int) -> list[str]: ...
