"""What you submit (`Task`) and what you read back (`TaskInfo`, `TaskStatus`, `TaskPage`)."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from . import _core, _validate
from ._result import decode_result
from .errors import InvalidOptionError

DEFAULT_POOL = "default"

Payload = bytes | bytearray | memoryview | str | dict[str, Any] | list[Any] | int | float | bool | None


class TaskStatus(enum.StrEnum):
    """The states of a task. `RETRYING` and `DEAD` are what a "failed" filter shows."""

    WAITING = "waiting"  # DAG parents pending
    SCHEDULED = "scheduled"  # run time in the future
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed; the next one waits out its backoff
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # out of attempts or a permanent error: in the dead letter queue
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a DAG condition can no longer be met

    @property
    def is_terminal(self) -> bool:
        """True for the states a task never leaves (except a dead one, by resubmission)."""
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.SKIPPED})


def encode_payload(payload: Payload) -> bytes:
    """bytes stay bytes, str is UTF-8, anything else is JSON (read it back with `ctx.json()`)."""
    if payload is None:
        return b""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise InvalidOptionError(f"payload must be bytes, str or JSON-serialisable: {e}") from None


def _is_int(value: object) -> TypeGuard[int]:
    """An int (or an int subclass such as IntEnum), but not a bool."""
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _check_priority(priority: object) -> None:
    """Raises for what the fast check in `Task` did not let through: a non-int, or one out of range."""
    if not _is_int(priority):
        raise InvalidOptionError(f"priority must be an int, not {priority!r}")
    if not _core.MIN_PRIORITY <= priority <= _core.MAX_PRIORITY:
        raise InvalidOptionError(
            f"priority {priority} is out of range: use an integer from "
            f"{_core.MIN_PRIORITY} to {_core.MAX_PRIORITY} (higher runs first)"
        )


def _ids(name: str, value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    ids = tuple(value)
    if not all(isinstance(i, str) for i in ids):
        raise InvalidOptionError(f"{name} takes task ids (str)")
    return ids


@dataclass(frozen=True, slots=True, init=False)
class Task:
    """A unit of work to submit: the job name, its payload, and how and when to run it.

    `on_success` / `on_failure` / `on_complete` name parent task ids: the task waits until every
    condition holds (a parent succeeded / went dead / ended in any way), and is skipped when one no
    longer can. `delay` (seconds) and `run_at` (an aware datetime) set the earliest start.
    """

    name: str
    payload: bytes
    priority: int
    timeout: float | None
    pool: str
    max_retries: int | None
    key: str | None
    id: str | None
    run_at: datetime | None
    delay: float | None
    on_success: tuple[str, ...]
    on_failure: tuple[str, ...]
    on_complete: tuple[str, ...]

    def __init__(
        self,
        name: str,
        payload: Payload = None,
        *,
        priority: int = 0,
        timeout: float | None = None,
        pool: str = DEFAULT_POOL,
        max_retries: int | None = None,
        key: str | None = None,
        id: str | None = None,
        delay: float | None = None,
        run_at: datetime | None = None,
        on_success: str | Iterable[str] | None = None,
        on_failure: str | Iterable[str] | None = None,
        on_complete: str | Iterable[str] | None = None,
    ) -> None:
        # The common cases (exact types, arguments left at their defaults) are checked first and cheaply:
        # a bulk submit builds many tasks, and this is a large part of its cost.
        if type(name) is not str and not isinstance(name, str):
            raise InvalidOptionError(f"job name must be a str, not {type(name).__name__}")
        if type(priority) is not int or not _core.MIN_PRIORITY <= priority <= _core.MAX_PRIORITY:
            _check_priority(priority)
        if max_retries is not None and (not _is_int(max_retries) or max_retries < 0):
            raise InvalidOptionError(f"max_retries must be an int >= 0, not {max_retries!r}")
        if timeout is not None and _validate.seconds("timeout", timeout) == 0:
            raise InvalidOptionError("timeout must be positive (leave it out for no timeout)")
        if delay is not None and run_at is not None:
            raise InvalidOptionError("give either delay or run_at, not both")
        if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
            raise InvalidOptionError("run_at must be a timezone-aware datetime")
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "payload", payload if type(payload) is bytes else encode_payload(payload))
        set_(self, "priority", priority)
        set_(self, "timeout", None if timeout is None else float(timeout))
        set_(self, "pool", pool if type(pool) is str else _validate.text("pool", pool))
        set_(self, "max_retries", max_retries)
        set_(self, "key", None if key is None else _validate.text("key", key))
        set_(self, "id", None if id is None else _validate.text("id", id))
        set_(self, "delay", None if delay is None else _validate.seconds("delay", delay))
        set_(self, "run_at", run_at)
        set_(self, "on_success", () if on_success is None else _ids("on_success", on_success))
        set_(self, "on_failure", () if on_failure is None else _ids("on_failure", on_failure))
        set_(self, "on_complete", () if on_complete is None else _ids("on_complete", on_complete))

    def parents(self) -> list[tuple[str, str]]:
        """DAG edges as (parent id, trigger name)."""
        if not (self.on_success or self.on_failure or self.on_complete):
            return []
        return (
            [(p, "on_success") for p in self.on_success]
            + [(p, "on_failure") for p in self.on_failure]
            + [(p, "on_complete") for p in self.on_complete]
        )


def _when(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A snapshot of a task as the storage holds it."""

    id: str
    name: str
    pool: str
    status: TaskStatus
    priority: int
    attempts: int
    max_retries: int
    lease_losses: int
    timeout: float | None
    progress: float
    created_at: datetime | None
    run_at: datetime | None  # when it became (or becomes) eligible to run
    started_at: datetime | None
    finished_at: datetime | None
    key: str | None
    error: str | None
    traceback: str | None
    result: Any
    payload: bytes
    parents: tuple[tuple[str, str], ...] = field(default=())
    schedule: str | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> TaskInfo:
        """Builds the snapshot from a storage row (layout in `_core.pyi`, `Engine.get`)."""
        (id_, name, pool, status, priority, attempts, max_retries, lease_losses, timeout_ms, progress,
         created, ready, started, finished, key, error, tb, result, payload, parents, schedule, _seq) = row  # fmt: skip
        return cls(
            id=id_,
            name=name,
            pool=pool,
            status=TaskStatus(status),
            priority=priority,
            attempts=attempts,
            max_retries=max_retries,
            lease_losses=lease_losses,
            timeout=timeout_ms / 1000 if timeout_ms else None,
            progress=round(progress, 6),
            created_at=_when(created),
            run_at=_when(ready),
            started_at=_when(started),
            finished_at=_when(finished),
            key=key,
            error=error,
            traceback=tb,
            result=decode_result(result),
            payload=payload,
            parents=tuple((parent, trigger) for parent, trigger in parents),
            schedule=schedule,
        )

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return json.loads(self.payload)


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of `list_tasks`, newest first. Pass `next_cursor` back to get the next page."""

    tasks: list[TaskInfo]
    next_cursor: str | None
