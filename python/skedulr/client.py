"""`Client`: a synchronous handle on a Redis storage, for code that is not a Trio program (a Flask or
Django view, a script, a cron job): submit, get, cancel, resubmit and list tasks that workers run.

It reuses `RedisStorage` unchanged: the storage's coroutines only await their connection, and the
client's connection answers synchronously, so each coroutine runs to completion in one step.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

import redis
import redis.exceptions as rex

from . import _core, _validate
from .errors import InvalidOptionError, StorageError
from .retry import ExponentialBackoff
from .stats import InstanceInfo
from .storage._redis_io import redact_url
from .storage._scripts import Script
from .storage.redis import RedisStorage
from .task import Task, TaskInfo, TaskPage, TaskStatus

T = TypeVar("T")


class _SyncConnection:
    """The three calls `RedisStorage` makes, answered by a plain redis-py client."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def execute(self, *args: Any) -> Any:
        try:
            return self._client.execute_command(*args)  # type: ignore[no-untyped-call]
        except rex.ResponseError as e:
            raise StorageError(f"Redis refused {args[0]}: {e}") from e
        except rex.RedisError as e:
            raise StorageError(f"Redis is unreachable: {type(e).__name__}") from e

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        try:
            return list(pipe.execute(raise_on_error=False))
        except rex.RedisError as e:
            raise StorageError(f"Redis is unreachable: {type(e).__name__}") from e

    async def eval_script(self, script: Script, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        for attempt in range(2):
            try:
                return self._client.evalsha(script.sha, len(keys), *keys, *args)
            except rex.NoScriptError:
                if attempt:
                    raise StorageError(f"Redis keeps forgetting script {script.name}") from None
                self._client.script_load(script.source)
            except rex.ResponseError as e:
                raise StorageError(f"script {script.name} failed: {e}") from e
            except rex.RedisError as e:
                raise StorageError(f"Redis is unreachable: {type(e).__name__}") from e
        raise AssertionError("unreachable")


_A_DAY_MS = 86_400_000


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a storage coroutine whose awaits all complete at once (see the module docstring)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a storage call tried to wait; the synchronous client cannot do that")


class Client:
    """Submits and inspects tasks in the Redis storage that `Scheduler(storage=RedisStorage(url,
    prefix=...))` workers run. Job names are not checked here (the client does not know the workers'
    jobs); a task without `max_retries` gets `default_max_retries`."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "skedulr",
        default_max_retries: int = ExponentialBackoff().max_retries,
        **storage_options: Any,
    ) -> None:
        self._storage = RedisStorage(url, prefix=prefix, **storage_options)
        self._client = redis.Redis.from_url(url, decode_responses=False, client_name=f"skedulr-client:{prefix}")
        self._storage._sessions.append(_SyncConnection(self._client))  # type: ignore[arg-type]
        self.default_max_retries = default_max_retries

    def __repr__(self) -> str:
        return f"<Client {redact_url(self._storage.url)} prefix={self._storage.prefix}>"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> int:
        return int(time.time() * 1000)

    def _spec(self, task: Task) -> tuple[Any, ...]:
        if not isinstance(task, Task):
            raise InvalidOptionError(f"submit takes a skedulr.Task, not {type(task).__name__}")
        max_retries = task.max_retries if task.max_retries is not None else self.default_max_retries
        run_at_ms = None if task.run_at is None else round(task.run_at.timestamp() * 1000)
        delay_ms = None if task.delay is None else round(task.delay * 1000)
        timeout_ms = max(1, round(task.timeout * 1000)) if task.timeout else 0
        return (task.id, task.name, task.pool, task.payload, task.priority, max_retries, timeout_ms, task.key,
                run_at_ms, task.parents(), delay_ms)  # fmt: skip

    def submit(self, task: Task) -> str:
        now = self._now()
        ((task_id, _created),) = _run(self._storage.submit_many([self._spec(task)], now))
        return task_id

    def submit_many(self, tasks: Iterable[Task]) -> list[str]:
        now = self._now()
        specs = [self._spec(t) for t in tasks]
        return [task_id for task_id, _ in _run(self._storage.submit_many(specs, now))]

    def get(self, task_id: str) -> TaskInfo:
        return _run(self._storage.get(task_id, self._now()))

    def cancel(self, task_id: str) -> bool:
        """Cancels the task; a worker running it is told to stop. False if it had already ended."""
        cancelled, _lease, _status = _run(self._storage.cancel(task_id, self._now()))
        return cancelled

    def resubmit(self, task_id: str) -> None:
        _run(self._storage.resubmit(task_id, self._now()))

    def resubmit_dead(self, *, name: str | None = None, pool: str | None = None, query: str | None = None,
                      limit: int = 1000) -> list[str]:  # fmt: skip
        return _run(self._storage.resubmit_dead(name, pool, query, limit, self._now()))

    def instances(self) -> list[InstanceInfo]:
        """The scheduler instances (worker processes) heartbeating into this prefix: host, pid, pools,
        running jobs, last beat. One that stops beating drops out after its `lease_ttl`."""
        # (each instance's record expires on its own lease_ttl, which the client does not know)
        rows = _run(self._storage.instances(_A_DAY_MS, self._now()))
        return sorted((InstanceInfo.from_fields(f) for f in rows), key=lambda i: i.id)

    def set_pool(self, name: str, *, size: int | None = None, paused: bool | None = None) -> None:
        """Sets a pool's size and/or pause flag for every worker (`name="*"`: pause or resume all)."""
        if name != "*":
            _core.validate_name("pool name", name)
        if size is not None:
            _validate.count("size", size, 0, 10_000)
        if paused is not None and not isinstance(paused, bool):
            raise InvalidOptionError(f"paused must be True, False or None, not {paused!r}")
        _run(self._storage.set_control(name, size, paused))

    def list_tasks(self, *, status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
                   name: str | None = None, pool: str | None = None, query: str | None = None, limit: int = 100,
                   cursor: str | None = None) -> TaskPage:  # fmt: skip
        from .scheduler import _statuses

        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidOptionError(f"limit must be an int from 1 to 10000, not {limit!r}")
        return _run(self._storage.list_tasks(_statuses(status), name, pool, query, limit, cursor, self._now()))
