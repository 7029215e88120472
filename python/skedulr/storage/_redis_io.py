"""Talking to Redis from Trio: one I/O thread per connection, auto-pipelining, cancellation-safe.

redis-py's asyncio client does not run under Trio, and the Trio-capable clients break under cancellation
(DESIGN.md, section 1). So skedulr drives redis-py's *sync* client (with hiredis) from a thread it owns:

- `RedisConnection` (open it with `async with open_connection(url) as conn:`) owns one I/O thread and
  one `redis.Redis` client. Trio tasks hand it commands (`await conn.execute("GET", key)`,
  `await conn.eval_script(script, keys, args)`); the thread takes *everything* waiting in its inbox, sends it
  as one pipeline (`transaction=False`, every command gets its own reply or error) and hands the whole batch
  back to Trio with one `TrioToken.run_sync_soon`, which wakes each caller with its own result. 100
  concurrent callers therefore cost one round trip, not 100, and no Trio task or thread hop per command.
- **Cancellation**: the thread always finishes a command it started, so a cancelled caller never leaves a
  half-read reply on the socket; the caller's result is dropped. A command whose caller was cancelled
  before the thread picked it up is not sent. But a cancelled call **may still have run on the server**:
  every script must be safe to repeat, and never hand a blocking pop (BLPOP...) to a cancellable caller
  (the popped item would be lost): claim with a script, use pub/sub only as a wake-up hint.
- **Errors**: an error reply becomes `StorageError` (the redis-py exception is its `__cause__`) and the
  connection goes on working. While Redis is unreachable every call fails fast with `StorageError` (connect
  and read timeouts bound the wait; redis-py's own retries are switched off); the next call after Redis is
  back reconnects. A call that failed that way may or may not have run.
- Pub/sub (wake-up hints) and the calls made one at a time on the latency path (claims, submit groups)
  do not go through this thread: see `_redis_subscription` and `_redis_direct`.
- URLs are only ever shown through `redact_url`, which hides the password.

Results are what redis-py's `Redis.execute_command` returns with `decode_responses=False` (bytes, ints,
lists; redis-py's response callbacks apply, e.g. `SET` gives True). Call a connection only from the Trio
run that opened it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from types import TracebackType
from typing import Any, Final, Protocol, Self

import outcome
import redis
import redis.exceptions as rex
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import StorageError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "Arg",
    "RedisConnection",
    "Script",
    "ScriptLike",
    "counting_outstanding",
    "open_connection",
    "outstanding_calls",
    "redact_url",
    "scrub_secrets",
]

log = logging.getLogger("skedulr")

Arg = bytes | str | int | float | memoryview
"""What a command argument may be (redis-py encodes it; bool and None are refused)."""

DEFAULT_CONNECT_TIMEOUT: Final = 2.0
"""Seconds to wait for a TCP connect (and the handshake) before a call fails with `StorageError`."""
DEFAULT_SOCKET_TIMEOUT: Final = 5.0
"""Seconds to wait for a reply before the connection is dropped and the batch fails. Raise it for slow scripts."""
DEFAULT_MAX_BATCH: Final = 4096
"""At most this many commands per pipeline (one network write, one pass over the replies)."""

# Errors that mean "the connection is gone or unusable" rather than "Redis answered with an error".
# AuthenticationError, BusyLoadingError and MaxConnectionsError are ConnectionError subclasses.
_UNREACHABLE = (rex.ConnectionError, rex.TimeoutError, OSError)
_CLIENT_NAME = re.compile(r"[!-~]{1,256}")  # what CLIENT SETNAME takes: printable ASCII, no spaces


# ---------------------------------------------------------------------------------------------------------
# URL redaction


_QUERY_PASSWORD = re.compile(r"([?&](?:password|pass|pwd)=)[^&#]*", re.IGNORECASE)


_outstanding = 0  # calls whose callers wait for a reply, all connections of this process (Trio thread only)


def outstanding_calls() -> int:
    """How many Redis calls are waiting for their reply right now. A test clock that jumps virtual time
    when every task is blocked must not jump while one is: the program is waiting on Redis, not idle."""
    return _outstanding


class _Outstanding:
    """Counts a call in `outstanding_calls()` while its caller waits for the reply. A class rather than a
    generator-based context manager: it is on every call's path, where that costs several times more."""

    def __enter__(self) -> None:
        global _outstanding
        _outstanding += 1

    def __exit__(self, *exc_info: object) -> None:
        global _outstanding
        _outstanding -= 1


_OUTSTANDING = _Outstanding()  # holds no state of its own: shared by every call


def counting_outstanding() -> _Outstanding:
    """`with counting_outstanding():` around a wait for Redis's reply (see `outstanding_calls`)."""
    return _OUTSTANDING


def one_at_a_time() -> trio.Semaphore:
    """A turn for one task at a time, lighter than `trio.Lock` (which notes its owner, for Trio's deadlock
    detection, at every acquire and release): a process just woken from idling pays for every step on the
    path from submit to start, and a Lock cost several µs there (probe)."""
    return trio.Semaphore(1, max_value=1)


async def acquire_at_once(turn: trio.Semaphore) -> None:
    """Takes `turn` (`one_at_a_time`); when it is free, without yielding to other tasks first. On the
    submit-to-start path every yield is a turn of Trio's run loop, which a process just woken from idling
    pays dearly (measured: two such turns were about a third of a submit's time before its bytes left).
    The caller checkpoints soon after, while it waits for Redis."""
    try:
        turn.acquire_nowait()
    except trio.WouldBlock:
        await turn.acquire()


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***`, for logs, messages and reprs.

    `redis://user:secret@host:6379/0` -> `redis://user:***@host:6379/0` (also `rediss://`, `unix://` and
    `password=` in the query). A user-info part without a colon (`redis://secret@host`) is hidden whole, as
    people put bare passwords there. An `@` after the host part (an unescaped `/`, `?` or `#` in the
    password) hides everything before it: when in doubt, this hides more.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    head = f"{scheme}://" if sep else ""
    authority_end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1:
            authority_end = min(authority_end, i)
    at = rest.rfind("@", 0, authority_end)
    if at == -1:
        at = rest.rfind("@")  # an '@' past the host part: a password with an unescaped '/', '?' or '#'
        if at != -1:
            rest = "***" + rest[at:]
    else:
        userinfo = rest[:at]
        user, colon, _password = userinfo.partition(":")
        rest = (f"{user}:***" if colon else "***") + rest[at:]
    return head + _QUERY_PASSWORD.sub(r"\1***", rest)


def scrub_secrets(text: str, url: str) -> str:
    """`text` (e.g. a redis-py error message) with any secret of `url` replaced, in case it quotes the URL."""
    scheme, sep, rest = url.partition("://")
    at = (rest if sep else scheme).rfind("@")
    secrets = [(rest if sep else scheme)[:at]] if at > 0 else []
    secrets += [m.group(0).split("=", 1)[1] for m in _QUERY_PASSWORD.finditer(url)]
    for secret in sorted(secrets, key=len, reverse=True):
        for part in (secret, secret.partition(":")[2]):
            if len(part) >= 3:
                text = text.replace(part, "***")
    return text


# ---------------------------------------------------------------------------------------------------------
# Scripts


class ScriptLike(Protocol):
    """What `eval_script` needs: any object with these (e.g. `Script`, or a frozen dataclass)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str | bytes: ...
    @property
    def sha(self) -> str:
        """Lowercase hex SHA1 of the UTF-8 source: the name Redis knows the script by."""
        ...


class Script:
    """A Lua script and its SHA1, run with `RedisConnection.eval_script` (EVALSHA, loaded on NOSCRIPT)."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, source: str | bytes, *, name: str | None = None) -> None:
        self.source: Final[bytes] = source.encode() if isinstance(source, str) else bytes(source)
        self.sha: Final[str] = hashlib.sha1(self.source).hexdigest()
        self.name: Final[str] = name if name is not None else self.sha[:12]

    def __repr__(self) -> str:
        return f"<Script {self.name} sha={self.sha[:12]} {len(self.source)} bytes>"


# ---------------------------------------------------------------------------------------------------------
# The connection


Command = tuple[Arg, ...]


class _Call:
    """One caller's command (or commands, for `execute_many`) on its way: the caller's task (None once the
    caller gave up) and, later, its outcome."""

    __slots__ = ("args", "many", "outcome", "task")

    def __init__(self, args: Command, many: list[Command] | None, task: trio.lowlevel.Task) -> None:
        self.args = args
        self.many = many
        self.task: trio.lowlevel.Task | None = task
        self.outcome: outcome.Outcome[Any] | None = None

    def abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self.task = None  # the thread skips it if not yet sent; a late result is dropped in _deliver
        return trio.lowlevel.Abort.SUCCEEDED


def _reply_error(args: Command, error: rex.ResponseError) -> StorageError:
    failure = StorageError(f"Redis answered {_command_name(args)} with an error: {error}")
    failure.__cause__ = error
    return failure


def _command_name(args: Sequence[Arg]) -> str:
    first = args[0] if args else b"?"
    name = first.decode(errors="replace") if isinstance(first, bytes | bytearray) else str(first)
    return name.split(" ", 1)[0].upper()[:32]


class RedisConnection:
    """Many Trio tasks, one Redis connection, one I/O thread that pipelines whatever is waiting.

    Use `async with open_connection(url) as conn:` (or `async with RedisConnection(url) as conn:`, or
    `conn.start()` ... `await conn.aclose()` from code that manages its own lifetime). See the module
    docstring for batching, cancellation and error semantics.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "skedulr",
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if not _CLIENT_NAME.fullmatch(name):
            raise ValueError(
                f"connection name {name!r}: use 1-256 printable ASCII characters, no spaces (CLIENT SETNAME)"
            )
        if connect_timeout <= 0 or socket_timeout <= 0 or max_batch < 1:
            raise ValueError("connect_timeout and socket_timeout must be > 0 and max_batch >= 1")
        self.url: Final[str] = redact_url(url)
        self._secret_url = url  # for scrubbing error texts only
        self.name: Final[str] = name
        self._max_batch = max_batch
        self._client = _make_client(url, name, connect_timeout, socket_timeout)
        self._cond = threading.Condition(threading.Lock())
        self._inbox: list[_Call] = []  # guarded by _cond
        self._idle = False  # the thread waits on _cond (guarded by _cond)
        self._closing = False  # guarded by _cond
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._exited = trio.Event()
        self._down = False  # the last attempt failed to reach Redis (for logging transitions only)
        self.pipelines_sent = 0
        """Pipelines sent so far (one network write each); with `commands_sent`, shows how well calls batch."""
        self.commands_sent = 0

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the I/O thread. Call from inside the Trio run that will use the connection."""
        if self._thread is not None:
            raise RuntimeError(f"{self!r} was started already")
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._run, name=f"skedulr-redis-{self.name}", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        """Stops taking calls, lets the thread finish what it was handed (bounded by the socket
        timeouts), closes the socket. Idempotent; shielded from cancellation."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            with trio.CancelScope(shield=True):
                await self._exited.wait()
            self._thread.join()  # it has handed over its last result: only returning is left
        else:
            self._client.close()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._exited.is_set() else "closing" if self._closing else "open"
        down = " unreachable" if self._down else ""
        return (
            f"<RedisConnection {self.name} {self.url} {state}{down} queued={len(self._inbox)} "
            f"in_flight={self._in_flight} pipelines={self.pipelines_sent} commands={self.commands_sent}>"
        )

    # -- calls (Trio side) -----------------------------------------------------------------------------

    async def execute(self, *args: Arg) -> Any:
        """Runs one command (`await conn.execute("HGET", key, field)`) and returns its reply.

        Raises `StorageError` on an error reply (the connection goes on working) and when Redis cannot be
        reached; `TypeError` for an argument redis-py cannot encode. If the caller is cancelled after the
        command was handed over, the command may still run on the server; its reply is dropped.
        """
        try:
            return await self._call(args)
        except rex.ResponseError as e:
            raise _reply_error(args, e) from e

    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        """Runs several commands in one pipeline (in order, not atomically) and returns their replies.

        An error reply is returned in its place as a `StorageError` instance, not raised; `StorageError`
        is raised when Redis cannot be reached. Same cancellation rules as `execute`."""
        if not commands:
            await trio.lowlevel.checkpoint()
            return []
        result: list[Any] = await self._call((), [tuple(c) for c in commands])
        return result

    async def eval_script(self, script: ScriptLike, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> Any:
        """EVALSHA `script`; when Redis does not know it (NOSCRIPT: restart, failover, SCRIPT FLUSH) it is
        loaded and run once more. Raises `StorageError` when the script fails (`redis.error_reply`, a Lua
        error) or Redis cannot be reached."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await self._call(command)
        except rex.NoScriptError:
            pass  # load outside the except block, so a later error is not chained to this one
        except rex.ResponseError as e:
            raise StorageError(f"script {script.name} failed: {e}") from e
        await self.load_script(script)
        try:
            return await self._call(command)
        except rex.ResponseError as e:
            raise StorageError(f"script {script.name} failed: {e}") from e

    async def load_script(self, script: ScriptLike) -> None:
        """SCRIPT LOAD: makes the next `eval_script(script, ...)` need no reload (e.g. at startup)."""
        try:
            sha = await self._call(("SCRIPT", "LOAD", script.source))
        except rex.ResponseError as e:
            raise StorageError(f"Redis refused to load script {script.name}: {e}") from e
        got = sha.decode() if isinstance(sha, bytes) else str(sha)
        if got != script.sha:
            raise StorageError(f"Redis loaded script {script.name} as {got}, expected {script.sha}")

    async def _call(self, args: Command, many: list[Command] | None = None) -> Any:
        """Hands `args` to the thread and sleeps until `_deliver` wakes us. Raises redis-py's
        ResponseError for error replies (callers turn it into StorageError) and StorageError otherwise."""
        await trio.lowlevel.checkpoint_if_cancelled()  # a caller cancelled already sends nothing
        call = _Call(args, many, trio.lowlevel.current_task())
        with self._cond:
            if self._closing or self._thread is None:
                state = "closed" if self._closing else "not started (use `async with open_connection(...)`)"
                raise StorageError(f"Redis connection {self.name} to {self.url} is {state}")
            self._inbox.append(call)
            if self._idle:
                self._idle = False
                self._cond.notify()
        with counting_outstanding():
            return await trio.lowlevel.wait_task_rescheduled(call.abort)

    def _deliver(self, batch: list[_Call]) -> None:
        """Runs in the Trio thread (via run_sync_soon): wakes every caller still waiting with its outcome."""
        for call in batch:
            task = call.task
            if task is not None and call.outcome is not None:
                call.task = None
                trio.lowlevel.reschedule(task, call.outcome)

    # -- the I/O thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._token is not None
        token = self._token
        batch: list[_Call] = []
        try:
            while True:
                with self._cond:
                    while not self._inbox and not self._closing:
                        self._idle = True
                        self._cond.wait()
                    self._idle = False
                    if not self._inbox:
                        break  # closing, and everything handed over is done
                    if len(self._inbox) <= self._max_batch:
                        batch, self._inbox = self._inbox, []
                    else:
                        batch = self._inbox[: self._max_batch]
                        del self._inbox[: self._max_batch]
                    self._in_flight = len(batch)
                try:
                    self._send(batch)
                except Exception as e:  # a bug of ours: answer every caller rather than leave it hanging
                    log.exception("Redis I/O thread of %s: unexpected error", self.name)
                    self._client.connection_pool.disconnect()
                    for call in batch:
                        if call.outcome is None:
                            call.outcome = outcome.Error(StorageError(f"Redis I/O failed unexpectedly: {e!r}"))
                self._in_flight = 0
                try:
                    token.run_sync_soon(self._deliver, batch)
                except trio.RunFinishedError:  # the Trio run ended without closing us: nobody to answer
                    with self._cond:
                        self._closing = True
                batch = []
        finally:
            with self._cond:
                self._closing = True
                leftover = [call for call in batch if call.outcome is None] + self._inbox
                self._inbox = []
            for call in leftover:  # only after an unexpected error (BaseException) in this loop
                call.outcome = outcome.Error(StorageError(f"the Redis I/O thread of {self.name} stopped"))
            self._client.close()
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(self._exit_in_trio, leftover)

    def _exit_in_trio(self, leftover: list[_Call]) -> None:
        self._deliver(leftover)
        self._exited.set()

    def _send(self, batch: list[_Call], *, sift: bool = True) -> None:
        """Sends the live calls of `batch` as one pipeline and stores each call's outcome."""
        live = [call for call in batch if call.task is not None]  # not yet cancelled: worth sending
        if not live:
            return
        pipe = self._client.pipeline(transaction=False)
        n = 0
        for call in live:
            if call.many is None:
                pipe.execute_command(*call.args)  # type: ignore[no-untyped-call]
                n += 1
            else:
                for command in call.many:
                    pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                n += len(call.many)
        try:
            replies = pipe.execute(raise_on_error=False)
        except rex.DataError as e:  # an argument redis-py cannot encode: nothing was sent
            if sift:
                self._send_encodable(live)  # fail the callers at fault, send the others
            else:
                self._fail(live, e)
            return
        except _UNREACHABLE as e:
            self._fail(live, e)
            return
        except Exception as e:  # a protocol or parse error: the socket may be out of step, drop it
            self._client.connection_pool.disconnect()
            self._fail(live, e)
            return
        self.pipelines_sent += 1
        self.commands_sent += n
        if self._down:
            self._down = False
            log.warning("Redis at %s answers again (connection %s)", self.url, self.name)
        if len(replies) != n:
            raise RuntimeError(f"{n} commands sent, {len(replies)} replies")
        i = 0
        for call in live:
            if call.many is None:
                reply = replies[i]
                i += 1
                call.outcome = outcome.Error(reply) if isinstance(reply, Exception) else outcome.Value(reply)
            else:
                part = replies[i : i + len(call.many)]
                i += len(call.many)
                call.outcome = outcome.Value(
                    [
                        _reply_error(c, r) if isinstance(r, rex.ResponseError) else r
                        for c, r in zip(call.many, part, strict=True)
                    ]
                )

    def _send_encodable(self, live: list[_Call]) -> None:
        encoder = self._client.connection_pool.get_encoder()
        good = []
        for call in live:
            try:
                for command in [call.args] if call.many is None else call.many:
                    name = _command_name(command)
                    for arg in command:
                        encoder.encode(arg)  # type: ignore[no-untyped-call]
            except rex.DataError as e:
                error = TypeError(f"{name}: {e}")
                error.__cause__ = e
                call.outcome = outcome.Error(error)
            else:
                good.append(call)
        if good:
            self._send(good, sift=False)

    def _fail(self, live: list[_Call], error: Exception) -> None:
        reason = type(error).__name__
        if str(error):
            reason = scrub_secrets(f"{reason}: {error}", self._secret_url)
        if not self._down:
            self._down = True
            log.warning("Redis at %s unreachable (connection %s): %s", self.url, self.name, reason)
        message = (
            f"Redis at {self.url} could not be reached or stopped answering ({reason}); calls fail fast until "
            "it answers again. The command may or may not have run."
        )
        for call in live:
            failure = StorageError(message)
            failure.__cause__ = error
            call.outcome = outcome.Error(failure)


def _make_client(url: str, name: str, connect_timeout: float, socket_timeout: float) -> redis.Redis:
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=False,
            client_name=name,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),  # fail fast: we report, the caller decides whether to retry
        )
    except (ValueError, TypeError, rex.RedisError) as e:
        raise ValueError(f"invalid Redis URL {redact_url(url)}: {scrub_secrets(str(e), url)}") from None


@asynccontextmanager
async def open_connection(
    url: str,
    *,
    name: str = "skedulr",
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> AsyncIterator[RedisConnection]:
    """`async with open_connection("redis://host:6379/0") as conn:` starts the I/O thread; on exit the
    thread finishes the calls it was handed, then closes. Does not connect yet: the first call does, and
    fails fast with `StorageError` if Redis is not there. `name` becomes the CLIENT SETNAME."""
    conn = RedisConnection(
        url, name=name, connect_timeout=connect_timeout, socket_timeout=socket_timeout, max_batch=max_batch
    )
    async with conn:
        yield conn
