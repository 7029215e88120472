"""A Trio-native Redis connection for calls made one at a time where latency matters: a pool's claims,
and the submit script (single submits are grouped so that one group is in flight at a time); and for
the parts of a staged bulk submit, pipelined while they are encoded (`eval_pipelined`).

`_redis_io`'s I/O thread is built for throughput: everything waiting goes out in one pipeline. Each call
through it pays two thread hand-offs, and on a machine that idles between jobs each hand-off costs about
as much as the round trip itself (benches/redis_throughput.py measures the floor). A fetcher has one
claim in flight at a time by design, and so has the submit path, so they go straight from the Trio thread
to the socket.

Same rules as `RedisConnection`: an error reply raises `StorageError` and the connection goes on; while
Redis is unreachable calls fail fast with `StorageError` and the next call reconnects. A call interrupted
in any way (cancelled, timed out, a broken socket) drops the connection, so a half-read reply is never
left on the socket; as with every call, the command may still have run on the server.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import trio
from redis.connection import parse_url

from .. import _core
from ..errors import StorageError
from ._redis_io import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    Arg,
    ScriptLike,
    acquire_at_once,
    counting_outstanding,
    one_at_a_time,
    redact_url,
    scrub_secrets,
)

log = logging.getLogger("skedulr")

LOST = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, hiredis.ProtocolError)
"""What a call meets when the connection is gone or unusable (a bytes stream that is not Redis's protocol
included): the connection is dropped, and the next call opens a new one."""


def pack(args: tuple[Arg, ...]) -> bytes:
    """One command in RESP (packed in Rust: cheaper than hiredis for a process just woken from idling)."""
    try:
        return _core.pack_command(args)
    except TypeError as e:
        raise TypeError(f"{args[0]!r}: {e}") from None


async def read_reply(stream: trio.abc.Stream, reader: hiredis.Reader, idle_timeout: float = math.inf) -> Any:
    """The next reply on `stream` (an error reply is returned, not raised). `trio.TooSlowError` when no
    byte arrives for `idle_timeout` seconds: a large reply may take long, a silent server may not."""
    while True:
        reply = reader.gets()
        if reply is not False:
            return reply
        with trio.fail_after(idle_timeout):
            data = await stream.receive_some(65536)
        feed(reader, data)


def send_at_once(stream: trio.abc.Stream, data: bytes) -> int:
    """Writes what the socket under `stream` takes of `data` now, without yielding; returns how much that
    was (0 for a stream that is not a plain socket: TLS). `SocketStream.send_all` goes through several
    layers of Trio before the bytes leave, which a process just woken from idling pays dearly for (about
    30 µs of the submit-to-start p50: probe, the two ways alternating within one run)."""
    if type(stream) is not trio.SocketStream:
        return 0
    try:
        return os.write(stream.socket.fileno(), data)
    except OSError:  # (its buffer is full, or the connection failed: send_all sends, or raises Trio's error)
        return 0


def feed(reader: hiredis.Reader, data: bytes | bytearray) -> None:
    """Gives `reader` what a receive returned; nothing at all means the server closed the connection."""
    if not data:
        raise trio.BrokenResourceError("Redis closed the connection")
    reader.feed(bytes(data))


async def open_stream(options: dict[str, Any], name: str, reader: hiredis.Reader) -> trio.abc.Stream:
    """Connects as `options` (redis-py's `parse_url`) say: TCP or a unix socket, TLS for rediss://, AUTH,
    SELECT, and CLIENT SETNAME `name`. `OSError` (or a Trio stream error) when that fails."""
    stream: trio.abc.Stream
    if "path" in options:
        stream = await trio.open_unix_socket(options["path"])
    else:
        stream = await trio.open_tcp_stream(options.get("host", "localhost"), options.get("port", 6379))
        if options.get("connection_class") is not None and "SSL" in options["connection_class"].__name__:
            context = ssl.create_default_context()
            if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            stream = trio.SSLStream(stream, context, server_hostname=options.get("host"))
    try:
        setup: list[tuple[str, ...]] = []
        if options.get("password") is not None:
            user = options.get("username")
            password = str(options["password"])
            setup.append(("AUTH", str(user), password) if user else ("AUTH", password))
        if options.get("db"):
            setup.append(("SELECT", str(options["db"])))
        setup.append(("CLIENT", "SETNAME", name))
        for command in setup:
            await stream.send_all(pack(command))
            reply = await read_reply(stream, reader)
            if isinstance(reply, hiredis.ReplyError):
                raise OSError(f"{command[0]} refused: {reply}")
    except BaseException:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        raise
    return stream


class DirectConnection:
    """One socket to Redis. Calls take turns (two schedulers may share a storage, and so a pool's claimer)."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    ) -> None:
        self._options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self._secret_url = url  # for scrubbing error texts only; shown as `url`, redacted
        self.url = redact_url(url)
        self.name = name
        self._connect_timeout = connect_timeout
        self._socket_timeout = socket_timeout
        self._stream: trio.abc.Stream | None = None
        self._reader = hiredis.Reader()
        self._down = False
        self._turn = one_at_a_time()
        self._closed = False  # by aclose: a call still waiting for its turn must not reconnect

    def __repr__(self) -> str:
        state = "connected" if self._stream is not None else "not connected"
        return f"<DirectConnection {self.name} {self.url} {state}>"

    @property
    def socket_timeout(self) -> float:
        """Seconds a call may wait for Redis to say anything before it counts as unreachable."""
        return self._socket_timeout

    async def eval_script(
        self,
        script: ScriptLike,
        keys: Sequence[Arg] = (),
        args: Sequence[Arg] = (),
        *,
        timeout: float | None = None,
        shielded: bool = False,
    ) -> Any:
        """EVALSHA, loading the script when Redis does not know it. `StorageError` when the script fails
        or Redis cannot be reached. `timeout` replaces the socket timeout for a script known to run long.
        `shielded`: once the command is being sent, a cancellation waits until its whole reply has come (or
        a timeout), so that the caller learns what was done."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        reply = await self._call(command, timeout, shielded)
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            loaded = await self._call(("SCRIPT", "LOAD", script.source), None, shielded)
            if isinstance(loaded, hiredis.ReplyError):
                raise StorageError(f"Redis refused to load script {script.name}: {loaded}") from loaded
            reply = await self._call(command, timeout, shielded)
        if isinstance(reply, hiredis.ReplyError):  # its text is what the script raised: "CODE detail"
            raise StorageError(f"script {script.name} failed: {reply}") from reply
        return reply

    async def eval_pipelined(
        self, script: ScriptLike, calls: Iterable[tuple[Sequence[Arg], Sequence[Arg]]]
    ) -> list[Any]:
        """EVALSHA of `script` once per (keys, args) of `calls`, each sent as soon as `calls` yields it,
        before any reply is read: Redis runs one call while the caller builds the next. Returns the
        replies in order, an error reply as a `StorageError` (returned, not raised). An exception from
        `calls` drops the connection (replies of what was sent are left unread) and propagates."""
        async with self._turn:
            # checked each time (one round trip for a batch of calls): a reply cannot ask to load and resend
            if (await self._call_now(pack(("SCRIPT", "EXISTS", script.sha)))) != [1]:
                loaded = await self._call_now(pack(("SCRIPT", "LOAD", script.source)))
                if isinstance(loaded, hiredis.ReplyError):
                    raise StorageError(f"Redis refused to load script {script.name}: {loaded}") from loaded
            sent = 0
            finished = False
            with counting_outstanding():
                try:
                    stream = self._stream or await self._connect()
                    for keys, args in calls:
                        data = pack(("EVALSHA", script.sha, len(keys), *keys, *args))
                        with trio.fail_after(self._socket_timeout + len(data) / (1 << 20)):
                            await stream.send_all(data)
                        sent += 1
                    replies = [await read_reply(stream, self._reader, self._socket_timeout) for _ in range(sent)]
                    finished = True
                except LOST as e:
                    raise self._unreachable(e) from e
                finally:
                    if not finished:
                        await self._drop()
        out: list[Any] = []
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                error = StorageError(f"script {script.name} failed: {reply}")
                error.__cause__ = reply  # its text is what the script raised: "CODE detail"
                reply = error
            out.append(reply)
        return out

    async def aclose(self) -> None:
        self._closed = True
        await self._drop()

    async def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _call(self, command: tuple[Arg, ...], timeout: float | None = None, shielded: bool = False) -> Any:
        """Sends one command and returns its reply (an error reply is returned, not raised)."""
        data = pack(command)
        await acquire_at_once(self._turn)
        try:
            return await self._call_now(data, timeout, shielded)
        finally:
            self._turn.release()

    async def _call_now(self, data: bytes, timeout: float | None = None, shielded: bool = False) -> Any:
        if self._closed:
            raise StorageError(f"Redis connection {self.name} to {self.url} is closed")
        if not shielded:  # (nothing sent, the connection kept; a shielded call goes out all the same)
            await trio.lowlevel.checkpoint_if_cancelled()
        with counting_outstanding():
            finished = False
            try:
                stream = self._stream or await self._connect()
                # The bytes leave first, before any of Trio's machinery (this is the path from submit
                # to start; what a process just woken from idling does after they left costs less).
                sent = send_at_once(stream, data)
                # What is left to send and the reply's first bytes share one deadline, with a second per
                # MiB for a large command to go out; then the timeout is for silence, not for a long
                # reply. A bare cancel scope, not fail_after (two generator context managers around
                # one). The same scope shields a `shielded` call, rather than a scope of the caller's;
                # the rest of a reply that came in parts is read under a second, shield-only scope.
                wait = timeout or self._socket_timeout
                deadline = trio.current_time() + wait + len(data) / (1 << 20)
                with trio.CancelScope(deadline=deadline, shield=shielded) as scope:
                    if sent < len(data):
                        await stream.send_all(memoryview(data)[sent:])
                    first = await stream.receive_some(65536)
                if scope.cancelled_caught:
                    raise trio.TooSlowError
                feed(self._reader, first)
                reply = self._reader.gets()
                if reply is False:  # the rest of a reply that came in parts
                    with trio.CancelScope(shield=shielded):
                        reply = await read_reply(stream, self._reader, wait)
                finished = True
            except LOST as e:
                raise self._unreachable(e) from e
            finally:
                if not finished:  # cancelled or failed half-way: the socket may hold half a reply
                    await self._drop()
        if self._down:
            self._down = False
            log.warning("Redis at %s answers again (connection %s)", self.url, self.name)
        return reply

    async def _connect(self) -> trio.abc.Stream:
        self._reader = hiredis.Reader()
        with trio.fail_after(self._connect_timeout):
            self._stream = await open_stream(self._options, self.name, self._reader)
        return self._stream

    def _unreachable(self, error: BaseException) -> StorageError:
        reason = type(error).__name__
        if not str(error) and error.__cause__ is not None:  # (Trio's bare BrokenResourceError of a TLS refusal)
            error = error.__cause__
            reason = f"{reason} from {type(error).__name__}"
        if str(error):
            reason = scrub_secrets(f"{reason}: {error}", self._secret_url)
        if not self._down:
            self._down = True
            log.warning("Redis at %s unreachable (connection %s): %s", self.url, self.name, reason)
        return StorageError(
            f"Redis at {self.url} could not be reached or stopped answering ({reason}); calls fail fast until "
            "it answers again. The command may or may not have run."
        )
