"""`RedisStorage`: tasks in Redis, shared by any number of scheduler processes on any number of machines.

Every state change is one Lua script from `lua/` (atomic, safe to repeat); reads are plain commands.
Time comes from the Redis server's clock, so instances whose clocks disagree can neither reap live
leases nor start delayed work early or late: a delay goes to Redis as a delay, not as a time
(`use_client_clock=True` lets tests drive time instead).
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager, nullcontext, suppress
from typing import Any, TypeVar

import trio

from .. import _core
from ..errors import (
    CycleError,
    DuplicateTaskError,
    InvalidOptionError,
    InvalidStateError,
    ScheduleNotFoundError,
    StorageError,
    TaskNotFoundError,
    UnknownParentError,
)
from ..task import TaskInfo, TaskPage
from . import _scripts
from ._redis_direct import DirectConnection
from ._redis_io import RedisConnection, acquire_at_once, one_at_a_time, open_connection, redact_url
from ._redis_subscription import open_subscription
from .base import ClaimRow, Failure, Held, Spec, parse_cursor, parse_dead_retention

log = logging.getLogger("skedulr")

_STATUSES = ("waiting", "scheduled", "queued", "running", "retrying", "succeeded", "dead", "cancelled", "skipped")
_TERMINAL = frozenset({"succeeded", "dead", "cancelled", "skipped"})
_ERRORS: dict[str, Callable[[str], Exception]] = {
    "DUPLICATE": lambda x: DuplicateTaskError(
        f"a task with id {x!r} already exists: choose another id or leave it out"
    ),
    "UNKNOWN_PARENT": lambda x: UnknownParentError(
        f"parent task {x!r} does not exist (or has been purged after its retention period): submit the parent first"
    ),
    "NOT_FOUND": lambda x: TaskNotFoundError(f"no task with id {x!r}"),
    "INVALID_STATE": lambda x: InvalidStateError(f"the task is {x}: the operation does not apply to it"),
    "SCHEDULE_NOT_FOUND": lambda x: ScheduleNotFoundError(f"no schedule with id {x!r}"),
    "STAGE_LOST": lambda x: StorageError(
        f"bulk submit {x} was dropped before it was complete (a part came more than {_STAGE_MS // 1000} s after "
        "the one before): nothing of it is stored"
    ),
}
MIN_REDIS_VERSION = (6, 2)
# The key layout of lua/_lib.lua, noted under {p}:layout by the first instance: instances of a version with
# another layout must not share a prefix (one would misread what the other stored). 2: list members and
# hand-offs; 3: {p}:died, the dead letter queue by time of death (both 2026-11-28); 4: leases by batch
# (2026-11-28). `_check_server` migrates 2 and 3 to 4.
LAYOUT = 4
_REAP_BATCH = 1000  # tasks of expired leases looked at per reap call: short scripts, called again while more are due
_SWEEP_BATCH = 1000  # ended (or dead) tasks forgotten per sweep call: short scripts, called again while more are due
_GROUP_LIMIT = 1000  # most single submits sent together in one script call
_GROUP_BYTES = 8 << 20  # and most bytes of payload: one command stays well under Redis's query buffer limit
_OUTCOME_CALL_BYTES = 1 << 20  # most bytes of results or tracebacks recorded in one script call
_STAGE_PART = 1000  # tasks per part of a staged bulk submit (larger batches of plain tasks are staged)
_STAGE_MS = 300_000  # a staged batch not committed this long after its last part is dropped
_IDLE_MARGIN_MS = 2000  # an idle instance stands ready for hand-offs this much longer than its poll interval
_DROP_EXPIRED_BATCHES = 10  # the most expired staged batches lua/bulk.lua drops in one call
_VALID_NAMES_KEPT = 1000  # job and pool names known to be valid, kept so that a submit need not check them
_STAGE_DROP_TIMEOUT = 5.0  # seconds a failed bulk submit spends dropping what it staged
_COMMIT_SECONDS_PER_TASK = 20e-6  # allowed on top of the socket timeout for a staged commit (~1 µs per delayed task)


# A task as lua/submit.lua takes it: id, spec, pool, priority, max_retries, key, when, parents
_TaskArgs = tuple[str, bytes, str, int, int, str, str, str]
T = TypeVar("T")


def _runs(ordered: list[_TaskArgs]) -> list[Any]:
    """The tasks as lua/submit.lua's runs: consecutive tasks with the same pool, priority, retries and run
    time share one header, and a task without key or parents sends only its id and spec. A bulk submit
    of like tasks then costs two arguments per task instead of eight, in Python and in Redis."""
    out: list[Any] = []
    settings: tuple[Any, ...] = ()
    count_at = 0
    for task_id, spec, pool, priority, max_retries, key, when, parents in ordered:
        kind = "f" if key or parents else "p"
        if (kind, pool, priority, max_retries, when) != settings:
            settings = (kind, pool, priority, max_retries, when)
            count_at = len(out) + 1
            out += [kind, 0, pool, priority, max_retries, when]
        out[count_at] += 1
        if kind == "p":
            out += [task_id, spec]
        else:
            out += [task_id, spec, key, parents]
    return out


def _by_bytes(items: list[T], size_of: Callable[[T], int]) -> Iterator[list[T]]:
    """`items` in runs of at most `_OUTCOME_CALL_BYTES` (by `size_of`; at least one item each), so that
    no call of a large batch of outcomes (results, tracebacks) waits long on the network."""
    run: list[T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if run and size + item_size > _OUTCOME_CALL_BYTES:
            yield run
            run, size = [], 0
        run.append(item)
        size += item_size
    if run:
        yield run


def _held(flat: list[Any]) -> list[Held]:
    """(id, token) pairs from a script's flat reply."""
    return [(_text(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]


def _when(run_at_ms: int | None, delay_ms: int | None) -> str:
    """A task's start as lua/submit.lua takes it: "" (now), "+<ms>" (a delay) or "<epoch ms>"."""
    if delay_ms is not None:
        return f"+{delay_ms}"
    return "" if run_at_ms is None else str(run_at_ms)


def _can_stage(spec: Spec) -> bool:
    """Whether a task can be staged: no id given (so a random one nobody knows yet), no key, no parents."""
    task_id, _name, _pool, _payload, _priority, _retries, _timeout, key, _run_at, parents, _delay = spec
    return task_id is None and key is None and not parents


def _parts(specs: list[Spec]) -> Iterator[list[Spec]]:
    """Consecutive slices of `specs` of at most `_STAGE_PART` tasks and `_GROUP_BYTES` of payload (or one
    task): each one script call of a staged bulk submit, well under Redis's limit for one command. The
    first is a quarter of that, so Redis starts storing sooner."""
    start, size, limit = 0, 0, max(1, _STAGE_PART // 4)
    for i, spec in enumerate(specs):
        if i > start and (i - start == limit or size + len(spec[3]) > _GROUP_BYTES):
            limit = _STAGE_PART
            yield specs[start:i]
            start, size = i, 0
        size += len(spec[3])
    if start < len(specs):
        yield specs[start:]


class _ScriptsFlushedError(StorageError):
    """Redis forgot the submit script while a staged bulk submit's parts were on their way."""


class _SubmitGroup:
    """Single submits sent together in one script call (each task's `_task_args`), and each one's outcome."""

    __slots__ = ("bytes", "done", "results", "tasks")

    def __init__(self) -> None:
        self.tasks: list[_TaskArgs] = []
        self.bytes = 0
        self.results: list[tuple[str, bool] | Exception] = []
        self.done = trio.Event()


def _own_copy(error: Exception) -> Exception:
    """A copy of `error` for one of the submitters it concerns: each raises its own object."""
    try:
        copy = type(error)(*error.args)
    except Exception:
        copy = StorageError(str(error))
    copy.__cause__ = error.__cause__ or error
    return copy


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStorage:
    """Redis-backed storage. `prefix` namespaces the keys (all share the `{prefix}` hash tag).

    `retention`: seconds an ended task (other than a dead one) stays readable; `dead_retention`: seconds
    a dead task stays in the dead letter queue (None: until resubmitted or purged); `key_ttl`: seconds an
    idempotency key is remembered after its task ends; `poll_interval`: seconds after which an idle
    worker looks for work even without a wake-up hint (hints can be lost while Redis reconnects).
    `use_client_clock` is for tests that drive time: scripts take the caller's now instead of the server's
    (never use it across machines). It also turns the hand-off to idle workers off: a test clock jumps when
    every task waits, and a hand-off message on its way is a wait it cannot see.
    """

    kind = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "skedulr",
        retention: float = 3600.0,
        dead_retention: float | None = None,
        key_ttl: float = 86400.0,
        max_payload_bytes: int = 1 << 20,
        max_lease_losses: int = 3,
        use_client_clock: bool = False,
        poll_interval: float = 1.0,
    ) -> None:
        _core.validate_name("prefix", prefix)
        self.poll_interval = poll_interval  # fetchers look again this often even without a wake-up hint
        self.url = url
        self.prefix = prefix
        self.tag = "{" + prefix + "}"
        self.retention_ms = int(retention * 1000)
        self.dead_retention_ms = parse_dead_retention(dead_retention)
        self.key_ttl_ms = int(key_ttl * 1000)
        self.max_payload_bytes = max_payload_bytes
        self.max_lease_losses = max_lease_losses
        self.use_client_clock = use_client_clock
        self._sessions: list[RedisConnection] = []
        # "submit", "bulk" and "claim:<pool>", for running sessions (`_direct_connection`)
        self._direct: dict[str, DirectConnection] = {}
        self._gathering: _SubmitGroup | None = None  # single submits waiting to go out together
        self._server_ahead_ms: int | None = None  # the server's clock less ours, as the last beat found
        self._submit_turn = one_at_a_time()  # one group's script call in flight at a time
        self._valid_names: set[str] = set()  # (`_task_args`)
        self._submit_keys = [self._key("seq"), self._key("all")]  # (lua/submit.lua and lua/submit_one.lua)

    def __repr__(self) -> str:
        state = f"sessions={len(self._sessions)}"
        return f"<RedisStorage {redact_url(self.url)} prefix={self.prefix} {state}>"

    # ----- keys: the one place their names are built (lua/_lib.lua documents the layout) ---------

    def _key(self, *parts: str) -> str:
        return ":".join((self.tag, *parts))

    # ----- connection -----------------------------------------------------------------------------

    @asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """Connects for the length of a scheduler run, checking the server first. Several schedulers may
        share one storage object: each session has its own connection."""
        async with open_connection(self.url, name=f"skedulr:{self.prefix}") as conn:
            self._sessions.append(conn)
            try:
                await self._check_server()
                yield
            finally:
                self._sessions.remove(conn)
                if not self._sessions:
                    direct, self._direct = self._direct, {}
                    for connection in direct.values():
                        await connection.aclose()

    async def _check_server(self) -> None:
        info = await self._exec("INFO", "server")  # redis-py parses it into a dict
        version = str(info.get("redis_version", "0"))
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts < MIN_REDIS_VERSION:
            raise StorageError(
                f"Redis {version.strip()} is too old: skedulr needs {'.'.join(map(str, MIN_REDIS_VERSION))}+"
            )
        await self._exec("SET", self._key("layout"), LAYOUT, "NX")
        layout = int(await self._exec("GET", self._key("layout")))
        if layout in (2, 3):  # (lua/migrate.lua moves only the layout found here, so it moves once)
            moved = await self._eval("migrate", [], [self.tag, layout])
            if moved != -1:
                log.warning("prefix %r migrated from key layout %d to %d (%d running tasks, %d dead tasks indexed)",
                            self.prefix, layout, LAYOUT, *moved)  # fmt: skip
            layout = int(await self._exec("GET", self._key("layout")))
        if layout != LAYOUT:
            raise StorageError(
                f"prefix {self.prefix!r} at Redis {redact_url(self.url)} holds skedulr data in key layout {layout}; "
                f"this version of skedulr uses layout {LAYOUT}: stop every instance of the other version first, "
                "or use another prefix"
            )
        try:
            policy = _hash(await self._exec("CONFIG", "GET", "maxmemory-policy"))
            value = _text(policy.get("maxmemory-policy", b"noeviction"))
        except StorageError:  # CONFIG may be disabled on managed Redis
            value = "unknown"
        if value not in ("noeviction", "unknown"):
            log.warning(
                "Redis %s has maxmemory-policy=%s: under memory pressure it may EVICT TASKS. "
                "Set maxmemory-policy noeviction for a task queue.",
                redact_url(self.url),
                value,
            )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[RedisConnection]:
        """A running session's connection, or (reading a stopped scheduler's tasks, say) a short-lived one."""
        if self._sessions:
            yield self._sessions[-1]
        else:
            async with open_connection(self.url, name=f"skedulr:{self.prefix}") as conn:
                yield conn

    async def _exec(self, *args: Any) -> Any:
        if self._sessions:  # the hot path: no context manager
            return await self._sessions[-1].execute(*args)
        async with self._connection() as conn:
            return await conn.execute(*args)

    async def _exec_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        async with self._connection() as conn:
            return await conn.execute_many(commands)

    async def _eval(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            if self._sessions:
                return await self._sessions[-1].eval_script(_scripts.load(name), keys, args)
            async with self._connection() as conn:
                return await conn.eval_script(_scripts.load(name), keys, args)
        except StorageError as e:
            raise _typed(e) from e

    def _direct_connection(self, purpose: str) -> DirectConnection | None:
        """The Trio-native connection (`_redis_direct`: no I/O-thread hand-offs) for calls made one at a
        time for `purpose` (a pool's claims, the submit groups, bulk submits); None outside a session
        (or in the synchronous Client's), where calls go through `_eval`."""
        if not self._sessions or not isinstance(self._sessions[-1], RedisConnection):
            return None
        connection = self._direct.get(purpose)
        if connection is None:
            connection = self._direct[purpose] = DirectConnection(self.url, name=f"skedulr:{self.prefix}:{purpose}")
        return connection

    async def _eval_pipelined(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """EVALSHA of script `name` once per (keys, args), in one pipeline; an error reply comes back as a
        `StorageError` whose cause is Redis's error (as `DirectConnection.eval_pipelined` returns it)."""
        script = _scripts.load(name)
        await self._exec("SCRIPT", "LOAD", script.source)  # so that no call meets NOSCRIPT (but a flush)
        replies = await self._exec_many([("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls])
        out: list[Any] = []
        for reply in replies:
            if isinstance(reply, Exception) and not isinstance(reply, StorageError):
                error = StorageError(f"script {name} failed: {reply}")
                error.__cause__ = reply  # its text is what the script raised: "CODE detail"
                reply = error
            out.append(reply)
        return out

    async def _eval_direct(
        self, purpose: str, name: str, keys: list[str], args: list[Any], *, shielded: bool = False
    ) -> Any:
        """A script call made over `purpose`'s direct connection when there is one, else by `_eval`.
        `shielded`: a cancellation that comes once the call is on its way waits for its reply."""
        connection = self._direct_connection(purpose)
        if connection is None:
            if not shielded:  # (the synchronous Client's calls run outside Trio)
                return await self._eval(name, keys, args)
            with trio.CancelScope(shield=True):
                reply = await self._eval(name, keys, args)
            return reply
        try:
            return await connection.eval_script(_scripts.load(name), keys, args, shielded=shielded)
        except StorageError as e:
            raise _typed(e) from e

    def _now(self, now_ms: int) -> str:
        return str(now_ms) if self.use_client_clock else ""

    async def _server_now(self, now_ms: int) -> int:
        if self.use_client_clock:
            return now_ms
        seconds, micros = await self._exec("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    # ----- instances ------------------------------------------------------------------------------

    async def beat_instance(self, instance_id: str, fields: dict[str, str], ttl_ms: int, now_ms: int) -> None:
        keys = [self._key("instances"), self._key("inst", instance_id)]
        pairs = [x for item in fields.items() for x in item]
        sent = _wall_ms()
        args = [self.tag, self._now(now_ms), "beat", instance_id, ttl_ms, *pairs]
        server_ms = await self._eval("instance", keys, args)
        if not self.use_client_clock:  # for a hand-off's lease, which the server's clock times
            self._server_ahead_ms = int(server_ms) - (sent + _wall_ms()) // 2

    async def leave_instance(self, instance_id: str) -> None:
        keys = [self._key("instances"), self._key("inst", instance_id)]
        await self._eval("instance", keys, [self.tag, "", "leave", instance_id, 0])

    async def instances(self, ttl_ms: int, now_ms: int) -> list[dict[str, str]]:
        since = await self._server_now(now_ms) - ttl_ms
        ids = [_text(i) for i in await self._exec("ZRANGEBYSCORE", self._key("instances"), f"({since}", "+inf")]
        hashes = await self._exec_many([("HGETALL", self._key("inst", i)) for i in ids])
        return [{k: _text(v) for k, v in _hash(h).items()} for h in hashes if h and not isinstance(h, Exception)]

    # ----- pool controls (size and pause, for every instance) --------------------------------------

    async def set_control(self, pool: str, size: int | None, paused: bool | None) -> None:
        args = [self.tag, "", pool, "" if size is None else size, "" if paused is None else int(paused)]
        await self._eval("control", [self._key("controls")], args)

    async def controls(self) -> dict[str, tuple[int | None, bool | None]]:
        out: dict[str, tuple[int | None, bool | None]] = {}
        for field, value in _hash(await self._exec("HGETALL", self._key("controls"))).items():
            pool, _, what = field.rpartition("/")
            size, paused = out.get(pool, (None, None))
            if what == "size":
                size = int(value)
            elif what == "paused":
                paused = _text(value) == "1"
            out[pool] = (size, paused)
        return out

    # ----- submit -----------------------------------------------------------------------------------

    def _task_args(self, spec: Spec, new_id: str | None = None) -> _TaskArgs:
        """The task as lua/submit.lua takes it, under `new_id` if given (a task without an id of its own).
        A delay goes as "+<ms>", which the script adds to its own now (the server's clock): a delay is a
        delay, whatever the submitting machine's clock says; a run_at goes as the moment it names."""
        task_id, name, pool, payload, priority, max_retries, timeout_ms, key, run_at_ms, parents, delay_ms = spec
        if name not in self._valid_names or pool not in self._valid_names:
            _core.validate_name("job name", name)
            _core.validate_name("pool name", pool)
            if len(self._valid_names) < _VALID_NAMES_KEPT:
                self._valid_names.update((name, pool))
        if new_id is None and task_id is not None:  # (not one of ours: those are hex)
            _core.validate_name("task id", task_id)
        task_id = new_id or task_id
        if key is not None:
            _core.validate_key(key)
        for parent, _trigger in parents:
            _core.validate_name("parent task id", parent)
        if len(payload) > self.max_payload_bytes:
            raise InvalidOptionError(
                f"payload of {len(payload)} bytes is over the {self.max_payload_bytes}-byte cap: store large data "
                "elsewhere and pass a reference"
            )
        return (task_id, _pack_spec(name, timeout_ms, priority, payload), pool, priority, max_retries, key or "",
                _when(run_at_ms, delay_ms),
                "\n".join(f"{t}:{p}" for p, t in parents) if parents else "")  # fmt: skip

    async def submit(self, spec: Spec, now_ms: int) -> tuple[str, bool]:
        """One task. Submits made while another submit script is in flight gather into one group, sent as
        one script call when that one returns (group commit): a hundred concurrent submitters cost Redis
        one script call instead of a hundred. A task refused in a group (duplicate id) is then retried
        alone, so it fails alone. A task with parents goes alone through `submit_many`'s checks."""
        if spec[9]:
            return (await self.submit_many([spec], now_ms))[0]
        # a task with bad input fails here, on its own, before joining a group
        task_args = self._task_args(spec, None if spec[0] else _new_id())
        if self._gathering is None and self._submit_turn.value:
            # Nothing in flight: a group of one, sent at once. (This is the latency path from submit to
            # start: none of the group's bookkeeping, which a process just woken from idling pays dearly.)
            self._submit_turn.acquire_nowait()
            try:
                if not (task_args[5] or task_args[6]):  # no key, delay or run time: see lua/submit_one.lua
                    return await self._submit_one(task_args, now_ms)
                with trio.CancelScope(shield=True):  # as a group's leader: once sent, learn the outcome
                    matched = await self._submit_script([task_args], now_ms)
            finally:
                self._submit_turn.release()
            return matched.get(0, (task_args[0], True))
        size = len(task_args[1])  # the spec: name, numbers and payload
        group = self._gathering
        if group is not None and len(group.tasks) < _GROUP_LIMIT and group.bytes + size <= _GROUP_BYTES:
            index = len(group.tasks)
            group.tasks.append(task_args)
            group.bytes += size
            await group.done.wait()  # cancelled here: the task may still be stored, as with any call
        else:
            group, index = _SubmitGroup(), 0
            group.tasks.append(task_args)
            group.bytes = size
            self._gathering = group
            # The others in the group depend on this call: it finishes even if its caller is cancelled
            # (the connection fails fast when Redis cannot be reached, so this cannot hang).
            with trio.CancelScope(shield=True):
                await acquire_at_once(self._submit_turn)
                try:
                    if self._gathering is group:
                        self._gathering = None  # later submits gather into a new group
                    await self._send_group(group, now_ms)
                finally:
                    self._submit_turn.release()
        result = group.results[index]
        if isinstance(result, Exception):
            raise result
        return result

    async def _send_group(self, group: _SubmitGroup, now_ms: int) -> None:
        try:
            matched = await self._submit_script(group.tasks, now_ms)
            group.results = [matched.get(i, (t[0], True)) for i, t in enumerate(group.tasks)]
        except (DuplicateTaskError, UnknownParentError):
            group.results = [await self._submit_alone(t, now_ms) for t in group.tasks]
        except Exception as e:
            group.results = [_own_copy(e) for _ in group.tasks]
        finally:
            group.done.set()

    async def _submit_alone(self, task_args: _TaskArgs, now_ms: int) -> tuple[str, bool] | Exception:
        try:
            matched = await self._submit_script([task_args], now_ms)
        except Exception as e:
            return e
        task_id: str = task_args[0]
        return matched.get(0, (task_id, True))

    async def submit_many(self, specs: list[Spec], now_ms: int) -> list[tuple[str, bool]]:
        large = len(specs) > _STAGE_PART or sum(len(s[3]) for s in specs) > _GROUP_BYTES  # s[3]: payload
        if large and all(_can_stage(s) for s in specs):
            connection = self._direct_connection("bulk")  # None: the sync Client, or outside a session
            try:
                ids = await self._submit_staged(specs, connection, now_ms)
            except _ScriptsFlushedError:  # dropped: sent again, from the start, now that it is loaded
                ids = await self._submit_staged(specs, connection, now_ms)
            return [(task_id, True) for task_id in ids]
        specs = [(s[0] or _new_id(), *s[1:]) for s in specs]
        index = {s[0]: i for i, s in enumerate(specs)}
        if len(index) != len(specs):
            dup = next(s[0] for s in specs if sum(1 for t in specs if t[0] == s[0]) > 1)
            raise DuplicateTaskError(f"a task with id {dup!r} appears twice in the batch")
        for s in specs:
            if any(p == s[0] for p, _ in s[9]):
                raise CycleError(f"task {s[0]!r} names itself as a parent")
        order = _core.topological_order([[index[p] for p, _ in s[9] if p in index] for s in specs])
        ordered = [specs[i] for i in order]
        matched = await self._submit_script([self._task_args(s) for s in ordered], now_ms)
        by_id = {s[0]: matched.get(k, (s[0], True)) for k, s in enumerate(ordered)}
        return [by_id[s[0]] for s in specs]

    async def _submit_one(self, task_args: _TaskArgs, now_ms: int) -> tuple[str, bool]:
        """Runs lua/submit_one.lua: one plain task, ready now (no key, parents, delay or run time). Once
        its bytes are on their way, a cancellation waits for the reply: the caller learns the task's id.
        (The shield is the call's own cancel scope: one scope less, on the path from submit to start.)"""
        task_id, spec, pool, priority, max_retries, _key, _when, _parents = task_args
        args = [self.tag, self._now(now_ms), task_id, spec, pool, priority, max_retries]
        await self._eval_direct("submit", "submit_one", self._submit_keys, args, shielded=True)
        return task_id, True

    async def _submit_script(self, ordered: list[_TaskArgs], now_ms: int) -> dict[int, tuple[str, bool]]:
        """Runs lua/submit.lua on tasks (their `_task_args`) in batch order, parents first; returns
        {position: (holder id, False)} for the tasks an idempotency key matched."""
        args = [self.tag, self._now(now_ms), self.key_ttl_ms, "", "", len(ordered), *_runs(ordered)]
        flat = await self._eval_direct("submit", "submit", self._submit_keys, args)
        return {int(flat[i]) - 1: (_text(flat[i + 1]), False) for i in range(0, len(flat), 2)}

    async def _submit_staged(self, specs: list[Spec], connection: DirectConnection | None, now_ms: int) -> list[str]:
        """A large batch of plain tasks under new random ids (nobody else can know them yet), in parts
        that Redis stores while the next part is being encoded, made visible at once by one commit
        (lua/bulk.lua). Sent as one script call, the batch costs Python's encoding plus Redis's storing;
        in parts, about the larger of the two, and the commit's cost does not grow with the batch; and no
        single script holds Redis for long. Anything that stops it half-way drops what was staged (or
        the sweep does, `_STAGE_MS` after the last part). Returns the new ids, in batch order. Without a
        direct `connection` (the sync Client), the parts are encoded first, then sent in one pipeline."""
        batch = self._key("s", _new_id())
        now = self._now(now_ms)
        keys = [self._key("seq"), self._key("all"), self._key("staging"), batch]
        bulk_keys = [self._key("staging"), self._key("all"), self._key("seq")]

        ids: list[str] = []

        def parts() -> Iterator[tuple[list[str], list[Any]]]:
            for number, part_specs in enumerate(_parts(specs), 1):
                part = [self._task_args(s, _new_id()) for s in part_specs]
                ids.extend(t[0] for t in part)
                yield keys, [self.tag, now, self.key_ttl_ms, number, _STAGE_MS, len(part), *_runs(part)]

        try:
            if connection is not None:
                replies = await connection.eval_pipelined(_scripts.load("submit"), parts())
            else:
                replies = await self._eval_pipelined("submit", list(parts()))
            failed = next((r for r in replies if isinstance(r, StorageError)), None)
            if failed is not None:
                if str(failed.__cause__).startswith("NOSCRIPT"):  # a SCRIPT FLUSH after the check of the parts
                    raise _ScriptsFlushedError(str(failed)) from failed
                raise _typed(failed) from failed
            commit: list[Any] = [self.tag, "commit", batch, _STAGE_MS]
            if connection is not None:
                timeout = connection.socket_timeout + len(specs) * _COMMIT_SECONDS_PER_TASK  # ~1 µs/delayed task
                await connection.eval_script(_scripts.load("bulk"), bulk_keys, commit, timeout=timeout)
            else:
                await self._eval("bulk", bulk_keys, commit)
            return ids
        except BaseException as e:
            with _dropping(), suppress(StorageError):
                # -1: the commit ran though its reply was lost (Redis went away, or we were cancelled)
                committed = await self._eval("bulk", bulk_keys, [self.tag, "drop", batch, _STAGE_MS]) == -1
                if committed and isinstance(e, StorageError):
                    return ids  # stored: the caller must not be told otherwise (a retry would store it twice)
            raise  # Redis unreachable meanwhile: the sweep drops the batch once its deadline has passed

    # ----- workers ----------------------------------------------------------------------------------

    async def claim(
        self, pool: str, max_tasks: int, owner: int, lease_ms: int, now_ms: int, *, idle: tuple[str, int] | None = None
    ) -> list[ClaimRow]:
        """With `idle` (the instance's hand id, its free runners): first the tasks handed to it that it
        still holds (lua/claim.lua: their message may have been lost; the caller skips those it has), and
        when the queue is left empty the instance stands idle until a little after its fetcher would look
        again by itself: a submit may then hand it tasks (`serve_hints`)."""
        keys = [self._key("r", pool), self._key("d", pool), self._key("leases"), self._key("token")]
        args = [self.tag, self._now(now_ms), pool, max_tasks, lease_ms, self.key_ttl_ms]
        if idle is not None and not self.use_client_clock:  # (see the class docstring)
            idle_ms = round(self.poll_interval * 1000) + _IDLE_MARGIN_MS if self.poll_interval else lease_ms
            args += [idle[0], idle_ms, idle[1]]
        while True:
            flat = await self._eval_direct(f"claim:{pool}", "claim", keys, args)
            rows: list[ClaimRow] = []
            for i in range(0, len(flat) - len(flat) % 4, 4):
                task_id = flat[i].decode()
                name, timeout_ms, priority, payload = _unpack_spec(flat[i + 3])
                rows.append((task_id, flat[i + 1], task_id, name, payload, flat[i + 2], priority, timeout_ms))
            # "more": it stopped passing over cancelled tasks of a bulk submit's list (lua/claim.lua). Only
            # a call that leased nothing is repeated here, so a failed call cannot strand leased tasks.
            if rows or len(flat) % 4 == 0:
                return rows

    async def succeed_many(self, items: list[tuple[Any, int, bytes | None]], now_ms: int) -> list[Held]:
        refused: list[Held] = []
        for chunk in _by_bytes(items, lambda item: len(item[2] or b"")):
            args: list[Any] = [self.tag, self._now(now_ms), self.key_ttl_ms]
            for task_id, token, result in chunk:
                args += [task_id, token, result or b""]
            refused += _held(await self._eval("succeed", [self._key("leases")], args))
        return refused

    async def fail_many(self, items: list[Failure], now_ms: int) -> list[Held]:
        refused: list[Held] = []
        for chunk in _by_bytes(items, lambda item: len(item[2]) + len(item[3])):  # error and traceback
            args: list[Any] = [self.tag, self._now(now_ms), self.key_ttl_ms]
            for task_id, token, error, traceback, retry_delay_ms in chunk:
                args += [task_id, token, error, traceback, "" if retry_delay_ms is None else retry_delay_ms]
            refused += _held(await self._eval("fail", [self._key("leases")], args))
        return refused

    async def leave_idle(self, hand_id: str, pools: list[str]) -> list[Held]:
        """No more hand-offs to this instance in `pools` until it claims there again (see `claim`).
        Returns the tasks handed to it there that it still holds: the caller hands back those it has not
        seen (their message is on its way, or lost)."""
        return _held(await self._eval("leave_idle", [], [self.tag, hand_id, *pools]))

    async def hand_back_many(self, items: list[Held], now_ms: int) -> int:
        args: list[Any] = [self.tag, self._now(now_ms), self.key_ttl_ms]
        for task_id, token in items:
            args += [task_id, token]
        return int(await self._eval("hand_back", [self._key("leases")], args))

    async def renew(self, held: list[Held], lease_ms: int, now_ms: int) -> list[Held]:
        args: list[Any] = [self.tag, self._now(now_ms), lease_ms]
        for task_id, token in held:
            args += [task_id, token]
        return _held(await self._eval("renew", [self._key("leases")], args))

    async def reap(self, now_ms: int) -> list[tuple[Any, int, str, bool]]:
        args = [self.tag, self._now(now_ms), self.max_lease_losses, self.key_ttl_ms, _REAP_BATCH]
        out: list[tuple[Any, int, str, bool]] = []
        while True:  # a call ends after about _REAP_BATCH tasks, saying "more" if other leases ran out
            try:
                flat = await self._eval("reap", [self._key("leases")], args)
            except StorageError:
                if out:  # what the calls before did is done: the caller must hear of it (the rest: next time)
                    return out
                raise
            for i in range(0, len(flat) - len(flat) % 3, 3):
                task_id = _text(flat[i])
                out.append((task_id, int(flat[i + 1]), task_id, bool(flat[i + 2])))
            if len(flat) % 3 == 0:
                return out

    async def set_progress_many(self, items: list[tuple[Any, int, float]]) -> None:
        args: list[Any] = [self.tag]
        for task_id, token, fraction in items:
            args += [task_id, token, repr(fraction)]
        await self._eval("set_progress", [self._key("leases")], args)

    async def next_due(self, pool: str) -> int | None:
        first = await self._exec("ZRANGE", self._key("d", pool), 0, 0, "WITHSCORES")
        due = int(first[0][1]) if first else None
        if self.use_client_clock or due is None:
            return due
        # The caller sleeps on its own clock: translate the server's moment into it.
        return due - await self._server_now(0) + _wall_ms()

    # ----- operator actions ---------------------------------------------------------------------

    async def cancel(self, task_id: str, now_ms: int) -> tuple[bool, Held | None, str | None]:
        _core.validate_name("task id", task_id)
        keys = [self._key("t", task_id), self._key("leases")]
        done, detail = await self._eval("cancel", keys, [self.tag, self._now(now_ms), self.key_ttl_ms, task_id])
        if not done:
            return False, None, _text(detail)
        token = _text(detail)  # (a damaged record's may be anything: no lease the caller could hold)
        return True, ((task_id, int(token)) if token.isascii() and token.isdigit() else None), None

    async def resubmit(self, task_id: str, now_ms: int) -> None:
        _core.validate_name("task id", task_id)
        await self._eval("resubmit", [self._key("t", task_id), self._key("dead")],
                         [self.tag, self._now(now_ms), task_id])  # fmt: skip

    async def resubmit_dead(
        self, name: str | None, pool: str | None, query: str | None, limit: int, now_ms: int
    ) -> list[str]:
        page = await self._dead(name, pool, query, limit, now_ms)
        done = []
        for info in page:
            try:
                await self.resubmit(info.id, now_ms)
                done.append(info.id)
            except (InvalidStateError, TaskNotFoundError):
                continue  # changed since it was listed
        return done

    async def purge(self, task_id: str) -> None:
        _core.validate_name("task id", task_id)
        await self._eval("purge", self._purge_keys(), [self.tag, "", "ids", task_id])

    async def purge_dead(self, name: str | None, pool: str | None, query: str | None, limit: int) -> list[str]:
        ids = [info.id for info in await self._dead(name, pool, query, limit, 0)]
        if not ids:
            return []
        # ("dead": one swept or resubmitted since it was listed is passed over, not an error)
        return [_text(x) for x in await self._eval("purge", self._purge_keys(), [self.tag, "", "dead", *ids])]

    def _purge_keys(self) -> list[str]:
        return [self._key("all"), self._key("ended"), self._key("dead"), self._key("died")]

    async def _dead(self, name: str | None, pool: str | None, query: str | None, limit: int,
                    now_ms: int) -> list[TaskInfo]:  # fmt: skip
        """Dead tasks matching the filter, oldest first."""
        found: list[TaskInfo] = []
        cursor: str | None = None
        while True:
            page = await self.list_tasks(["dead"], name, pool, query, 1000, cursor, now_ms)
            found += page.tasks
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return list(reversed(found))[:limit]

    # ----- reading ------------------------------------------------------------------------------

    async def get(self, task_id: str, now_ms: int) -> TaskInfo:
        _core.validate_name("task id", task_id)
        fields = await self._exec("HGETALL", self._key("t", task_id))
        if not fields:
            raise TaskNotFoundError(f"no task with id {task_id!r}")
        return self._info(task_id, fields, await self._server_now(now_ms))

    def _info(self, task_id: str, raw: Any, now: int) -> TaskInfo:
        """A task hash as a TaskInfo. Tolerant of missing fields, so a damaged record can still be read."""
        f = _hash(raw)

        def num(field: str) -> int:
            try:
                return int(f.get(field, 0))
            except ValueError:
                return 0

        name, timeout_ms, _, payload = _unpack_spec(f.get("spec", b""), damaged_ok=True)
        status = _text(f.get("status", b"waiting"))
        ready = num("rms") or num("cms")  # left out at submit when the task was ready at once
        if status in ("scheduled", "retrying") and ready <= now:
            status = "queued"  # due: the next claim promotes it
        if status not in _STATUSES:
            status = "dead"
        parents = [tuple(e.split(":", 1)) for e in _text(f.get("parents", b"")).split("\n") if ":" in e]
        result = f.get("res")
        try:
            progress = 1.0 if status == "succeeded" else float(f.get("prog", 0))
        except ValueError:
            progress = 0.0
        row = (
            task_id, name, _text(f.get("pool", b"")), status, num("prio"), num("att"), num("maxr"), num("ll"),
            timeout_ms, progress, num("cms"), ready, num("sms"), num("fms"), _opt(f.get("key")), _opt(f.get("err")),
            _opt(f.get("tb")), bytes(result) if result else None, payload, [(p[1], p[0]) for p in parents],
            _opt(f.get("sch")), num("seq"),
        )  # fmt: skip
        return TaskInfo.from_row(row)

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
        wanted = set(statuses) if statuses else None
        if wanted is not None and not wanted <= set(_STATUSES):
            bad = sorted(wanted - set(_STATUSES))
            raise InvalidOptionError(f"unknown status {bad[0]!r}: use one of {', '.join(_STATUSES)}")
        source = self._key("dead") if wanted == {"dead"} else self._key("all")
        needle = query.lower() if query else None
        now = await self._server_now(now_ms)
        after = parse_cursor(cursor)
        upper = "+inf" if after is None else f"({after}"
        tasks: list[TaskInfo] = []
        last_seq: int | None = None
        while True:
            # the staged batches are read after the page: a part in the page wrote its range with it
            batch, staging = await self._exec_many([
                ("ZREVRANGEBYSCORE", source, upper, "-inf", "WITHSCORES", "LIMIT", 0, 500),
                ("ZRANGE", self._key("staging"), 0, -1),
            ])  # fmt: skip
            for reply in (batch, staging):
                if isinstance(reply, Exception):
                    raise reply
            if not batch:
                return TaskPage(tasks, None)
            staged = await self._staged_seqs(staging) if staging else []
            ids = [_text(m) for m, seq in batch if _staged_range(int(seq), staged) is None]
            hashes = await self._exec_many([("HGETALL", self._key("t", i)) for i in ids])
            for task_id, raw in zip(ids, hashes, strict=True):
                if not raw or isinstance(raw, Exception):
                    continue  # purged meanwhile
                info = self._info(task_id, raw, now)
                seq = int(_hash(raw).get("seq", 0))
                if _matches(info, wanted, name, pool, needle):
                    if len(tasks) == limit:
                        return TaskPage(tasks, str(last_seq))
                    tasks.append(info)
                    last_seq = seq
            lowest = int(batch[-1][1])
            skipped = _staged_range(lowest, staged)  # a large staged batch is skipped at once, not page by page
            upper = f"({lowest if skipped is None else skipped[0]}"

    async def _staged_seqs(self, batches: list[bytes]) -> list[tuple[int, int]]:
        """The seq ranges of bulk submits not committed yet (members of {p}:staging), sorted and merged:
        their tasks are in {p}:all already, and must not be listed until the commit (lua/bulk.lua)."""
        ranges: list[tuple[int, int]] = []
        for texts in await self._exec_many([("LRANGE", f"{_text(b)}:seqs", 0, -1) for b in batches]):
            if isinstance(texts, Exception):
                raise texts
            for text in texts:
                first, last = text.split()
                ranges.append((int(first), int(last)))
        merged: list[tuple[int, int]] = []
        for first, last in sorted(ranges):
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
            else:
                merged.append((first, last))
        return merged

    async def counts(self, now_ms: int) -> dict[str, dict[str, int]]:
        raw = _hash(await self._exec("HGETALL", self._key("counts")))
        out: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            pool, _, status = field.rpartition("/")
            out.setdefault(pool, dict.fromkeys(_STATUSES, 0))[status] = int(value)
        return out

    async def wait(self, task_id: str, now_ms: int) -> None:
        delay = 0.005
        while True:
            status = await self._exec("HGET", self._key("t", task_id), "status")
            if status is None:
                raise TaskNotFoundError(f"no task with id {task_id!r}")
            if _text(status) in _TERMINAL:
                return
            await trio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def sweep(self, now_ms: int) -> int:
        now = await self._server_now(now_ms)
        dead_cutoff = "" if self.dead_retention_ms is None else now - self.dead_retention_ms
        args = [self.tag, "", "sweep", now - self.retention_ms, _SWEEP_BATCH, dead_cutoff]
        looked = int(await self._eval("purge", self._purge_keys(), args))
        # bulk submits abandoned half-way (their client died): invisible tasks, dropped after their deadline
        staged = [self._key("staging"), self._key("all"), self._key("seq")]
        while await self._eval("bulk", staged, [self.tag, "drop_expired", "", _STAGE_MS]) == _DROP_EXPIRED_BATCHES:
            await trio.lowlevel.checkpoint()
        return looked

    # ----- schedules ----------------------------------------------------------------------------

    async def add_schedule(
        self, schedule_id: str, kind: str, every: str, tz: str, template: Spec, skip_if_running: bool, now_ms: int
    ) -> int:
        _core.validate_name("schedule id", schedule_id)
        _, name, pool, payload, priority, max_retries, timeout_ms, key, _, parents, _ = template
        if key is not None or parents:
            raise InvalidOptionError("a schedule's task cannot have an idempotency key or parents")
        self._task_args(template)
        now = await self._server_now(now_ms)
        first = _next_fire(kind, every, tz, now, None)
        skip = "1" if skip_if_running else "0"
        fields = ["kind", kind, "every", every, "tz", tz, "name", name, "pool", pool, "payload", payload,
                  "prio", priority, "maxr", max_retries, "tmo", timeout_ms, "skip", skip]  # fmt: skip
        keys = [self._key("schedules"), self._key("sch", schedule_id)]
        await self._eval("schedule", keys, [self.tag, schedule_id, "add", first, *fields])
        return first

    async def remove_schedule(self, schedule_id: str) -> None:
        keys = [self._key("schedules"), self._key("sch", schedule_id)]
        await self._eval("schedule", keys, [self.tag, schedule_id, "remove"])

    async def schedules(self) -> list[tuple[Any, ...]]:
        ids = [_text(x) for x in await self._exec("ZRANGE", self._key("schedules"), 0, -1)]
        rows = []
        for raw in await self._exec_many([("HGETALL", self._key("sch", i)) for i in ids]):
            f = _hash(raw)
            if not f:
                continue
            every = _text(f["every"]) + ("|" + _text(f["tz"]) if _text(f["kind"]) == "cron" else "")
            rows.append((_text(f["id"]), _text(f["kind"]), every, _text(f["name"]), _text(f["pool"]),
                         _text(f["skip"]) == "1", _opt_int(f.get("next")), _opt_int(f.get("last_fire")),
                         _opt(f.get("last_task")), int(f.get("fired", 0)), int(f.get("skipped", 0))))  # fmt: skip
        return rows

    async def next_schedule_due(self) -> int | None:
        first = await self._exec("ZRANGE", self._key("schedules"), 0, 0, "WITHSCORES")
        if not first:
            return None
        due = int(first[0][1])
        return due if self.use_client_clock else due - await self._server_now(0) + _wall_ms()

    async def fire_schedules(self, now_ms: int) -> list[str]:
        now = await self._server_now(now_ms)
        due = await self._exec("ZRANGEBYSCORE", self._key("schedules"), "-inf", now, "WITHSCORES", "LIMIT", 0, 100)
        created = []
        for member, score in due:
            sid, expected = _text(member), int(score)
            f = _hash(await self._exec("HGETALL", self._key("sch", sid)))
            if not f:
                continue
            following = _next_fire(_text(f["kind"]), _text(f["every"]), _text(f["tz"]), now, expected)
            keys = [self._key("schedules"), self._key("sch", sid), self._key("seq"), self._key("all")]
            args = [self.tag, self._now(now_ms), sid, expected, following, _new_id()]
            task_id = await self._eval("fire_schedule", keys, args)
            if task_id:
                created.append(_text(task_id))
        return created

    # ----- hints --------------------------------------------------------------------------------

    async def serve_hints(
        self,
        on_wake: Callable[[str], None],
        on_cancel: Callable[[str], None],
        *,
        hand_id: str | None = None,
        on_hand: Callable[[str, list[ClaimRow], int | None], None] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Relays wake-up hints (a pool got work) and cancels of running tasks from other instances, and
        with `hand_id`, tasks a submit handed to this instance (lua/_hand_off.lua): leased to it already, like
        claimed ones, passed to `on_hand(pool, rows, lease_until_ms)` as they arrive (the end of their
        lease on the caller's clock, None while that is not known yet)."""
        wake, cancel = self._key("wake"), self._key("cancel")
        handlers: dict[str, Callable[[bytes], None]] = {}
        if hand_id is not None and on_hand is not None:
            hand = on_hand

            def handed(data: bytes) -> None:
                try:
                    pool, sent_lease_until, rows = _handed(data)
                except ValueError:  # not from lua/_hand_off.lua
                    log.error("ignored a hand-off message that is not one: %r", data[:80])
                    return  # (its tasks, if any, come with the next claim: lua/claim.lua)
                lease_until: int | None = sent_lease_until
                if not self.use_client_clock:
                    ahead = self._server_ahead_ms
                    lease_until = None if ahead is None else sent_lease_until - ahead
                try:
                    hand(pool, rows, lease_until)
                except Exception:  # a bug must not end the subscription (and with it the worker)
                    log.exception("could not take %d handed task(s): the reaper returns them", len(rows))

            handlers[self._key("hand", hand_id)] = handed
        async with open_subscription(self.url, [wake, cancel], handlers=handlers) as sub:
            task_status.started()
            while True:
                message = await sub.wait(None)
                if message is None:  # re-subscribed after a connection loss: hints may have been lost
                    on_wake("*")
                    continue
                channel, data = message
                (on_wake if _text(channel) == wake else on_cancel)(_text(data))


def _dropping() -> AbstractContextManager[object]:
    """Where a failed bulk submit drops what it staged: shielded from cancellation, for a few seconds at
    most, in Trio; as it comes in the synchronous Client (its calls wait on their sockets' timeouts)."""
    if not trio.lowlevel.in_trio_run():
        return nullcontext()
    stack = ExitStack()
    stack.enter_context(trio.CancelScope(shield=True))
    stack.enter_context(trio.move_on_after(_STAGE_DROP_TIMEOUT))
    return stack


_handed = _core.parse_hand_off
"""The pool, lease end (ms) and claim rows of a hand-off message (its format: lua/_hand_off.lua); ValueError
for anything else. (Read in Rust: on the path from submit to start.)"""


def _staged_range(seq: int, ranges: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The range of `ranges` (sorted, disjoint) that holds `seq`, if one does."""
    i = bisect.bisect_right(ranges, (seq, math.inf)) - 1
    return ranges[i] if i >= 0 and ranges[i][1] >= seq else None


def _pack_spec(name: str, timeout_ms: int, priority: int, payload: bytes) -> bytes:
    """The task hash's "spec" field (lua/_lib.lua): what a worker needs to run an attempt, in one field."""
    return f"{name} {timeout_ms} {priority}\n".encode() + payload


def _unpack_spec(raw: bytes, *, damaged_ok: bool = False) -> tuple[str, int, int, bytes]:
    """(name, timeout_ms, priority, payload) of a "spec" field. The claim script only hands out well-formed
    ones; a listing of a damaged record reads as an empty name."""
    head, _, payload = raw.partition(b"\n")
    try:
        name, timeout_ms, priority = head.decode().split(" ")
        return name, int(timeout_ms), int(priority), payload
    except ValueError:
        if not damaged_ok:
            raise
        return "", 0, 0, b""


_spare_ids: list[str] = []  # random ids drawn ahead; a forked child must not reuse its parent's
os.register_at_fork(after_in_child=_spare_ids.clear)


def _new_id() -> str:
    """A random 64-bit task id in hex. Drawn 512 at a time: a getrandom call per id cost more than the
    rest of a submit."""
    while True:
        try:
            return _spare_ids.pop()
        except IndexError:
            raw = os.urandom(8 * 512).hex()
            _spare_ids.extend(raw[i : i + 16] for i in range(0, len(raw), 16))


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _next_fire(kind: str, every: str, tz: str, now: int, previous: int | None) -> int:
    """The fire time after `now`: the cron spec's next match, or the interval's next tick (missed ticks
    collapse into one)."""
    if kind == "cron":
        following = _core.CronSchedule(every, tz).next_after(now)
        return following if following is not None else 2**62
    step = int(every)
    if previous is None:
        return now + step
    missed = max(0, now - previous) // step
    return previous + (missed + 1) * step


def _hash(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return {_text(k): v for k, v in raw.items()}
    return {_text(raw[i]): raw[i + 1] for i in range(0, len(raw), 2)}


def _opt(value: Any) -> str | None:
    if value is None:
        return None
    text = _text(value)
    return text or None


def _opt_int(value: Any) -> int | None:
    return None if value in (None, b"", "") else int(float(value))


def _matches(info: TaskInfo, wanted: set[str] | None, name: str | None, pool: str | None, needle: str | None) -> bool:
    if wanted is not None and info.status.value not in wanted:
        return False
    if name is not None and info.name != name:
        return False
    if pool is not None and info.pool != pool:
        return False
    if needle is None:
        return True
    return any(needle in (s or "").lower() for s in (info.id, info.name, info.key, info.error))


def _typed(error: StorageError) -> Exception:
    """Turns a script's error reply ("CODE detail") into the matching skedulr error."""
    text = str(error.__cause__ or error)
    code, _, detail = text.partition(" ")
    factory = _ERRORS.get(code)
    return factory(detail) if factory else error


__all__ = ["RedisStorage"]
