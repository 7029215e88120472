"""Pub/sub for wake-up hints and cancels, read by a Trio task from its own socket.

A hint is on the latency path from submit to start: a thread reading the socket would add a hand-off
to Trio, which on a machine idle between jobs costs about a round trip. So the subscription is a Trio
task: `async with open_subscription(url, ["wake"]) as sub: message = await sub.wait(1.0)`.

Opening returns once every channel is confirmed (a PUBLISH after that is delivered) and raises
`StorageError` if Redis cannot be reached. A connection lost later heals in the background, every
`retry_interval` seconds; messages published meanwhile are lost, so after a reconnection `wait()`
returns None once at once ("hints may have been lost: go and look").

A channel given a handler in `handlers` is not queued: the reading task calls the handler with each
message's data as it arrives. Such messages are not dropped when many come at once (the queue of the
others keeps the newest `max_pending`), and they skip the hop to the consumer task; like every message,
one published while the connection is down is lost.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, NamedTuple

import hiredis
import trio
from redis.connection import parse_url

from ..errors import StorageError
from ._redis_direct import LOST, feed, open_stream, pack, read_reply
from ._redis_io import DEFAULT_CONNECT_TIMEOUT, counting_outstanding, redact_url, scrub_secrets

log = logging.getLogger("skedulr")

_CLIENT_NAME = re.compile(r"[!-~]{1,256}")  # what CLIENT SETNAME takes: printable ASCII, no spaces
HEALTH_CHECK_EVERY = 30.0  # seconds between the PINGs that check the connection is alive


class Message(NamedTuple):
    """A message published on a subscribed channel (`channel, data = message`)."""

    channel: bytes
    data: bytes


class Subscription:
    """The state of one subscription; `open_subscription` runs it. Meant for one consumer task."""

    def __init__(
        self,
        url: str,
        channels: Sequence[str | bytes],
        *,
        name: str = "skedulr-sub",
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry_interval: float = 1.0,
        max_pending: int = 1024,
        handlers: Mapping[str, Callable[[bytes], None]] | None = None,
    ) -> None:
        if not channels:
            raise ValueError("subscribe to at least one channel")
        if not _CLIENT_NAME.fullmatch(name):
            raise ValueError(f"subscription name {name!r}: use 1-256 printable ASCII characters, no spaces")
        self.url: Final[str] = redact_url(url)
        self.name: Final[str] = name
        self._handlers = {channel.encode(): handler for channel, handler in (handlers or {}).items()}
        self.channels: Final[tuple[bytes, ...]] = (
            *(c.encode() if isinstance(c, str) else c for c in channels),
            *self._handlers,
        )
        try:
            self._options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
            self._secret_url = url  # for scrubbing error texts only; shown as `url`, redacted
        except ValueError:
            raise ValueError(f"invalid Redis URL {self.url}") from None
        self._connect_timeout = connect_timeout
        self._retry_interval = retry_interval
        self._pending: deque[Message] = deque(maxlen=max_pending)
        self._look = False  # a reconnection happened: the next wait() returns None at once
        self._lot = trio.lowlevel.ParkingLot()
        self._state = "starting"
        self.resumed = 0
        """How often the subscription was re-established after a connection loss."""

    def __repr__(self) -> str:
        chans = ",".join(c.decode(errors="replace") for c in self.channels)
        return (
            f"<Subscription {self.name} {self.url} channels={chans} {self._state} pending={len(self._pending)} "
            f"resumed={self.resumed}>"
        )

    async def wait(self, timeout: float | None = None) -> Message | None:
        """The next message; None after `timeout` seconds (None: no limit) without one, or at once after a
        reconnection (messages may have been lost). Always a checkpoint."""
        if not self._pending and not self._look:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await self._lot.park()
        else:
            await trio.lowlevel.checkpoint()
        if self._pending:
            return self._pending.popleft()
        self._look = False
        return None

    async def connect(self) -> tuple[trio.abc.Stream, hiredis.Reader]:
        """The first subscription; `StorageError` if Redis cannot be reached."""
        reader = hiredis.Reader()
        try:
            return await self._subscribe(reader), reader
        except LOST as e:
            reason = scrub_secrets(f"{type(e).__name__}: {e}", self._secret_url)
            raise StorageError(f"cannot subscribe at Redis {self.url}: {reason}") from None

    async def run(self, first: tuple[trio.abc.Stream, hiredis.Reader]) -> None:
        """Reads messages from the connection `connect` made until cancelled; when the connection is lost,
        subscribes again at once, then every `retry_interval` seconds."""
        stream, reader = first
        try:
            while True:
                self._state = "subscribed"
                try:
                    await self._listen(stream, reader)
                except LOST as e:
                    reason = scrub_secrets(f"{type(e).__name__}: {e}", self._secret_url)
                    log.warning("subscription %s lost Redis at %s (%s); reconnecting", self.name, self.url, reason)
                finally:
                    self._state = "reconnecting"
                    with trio.CancelScope(shield=True):
                        await stream.aclose()
                while True:
                    reader = hiredis.Reader()
                    try:
                        stream = await self._subscribe(reader)
                        break
                    except LOST:
                        await trio.sleep(self._retry_interval)
                log.warning("subscription %s at %s re-established", self.name, self.url)
                self.resumed += 1
                self._look = True
                self._lot.unpark_all()
        finally:
            self._state = "closed"

    async def _subscribe(self, reader: hiredis.Reader) -> trio.abc.Stream:
        """Connects and subscribes, waiting for every confirmation (counted as a call waiting on Redis, so a
        test clock does not jump past the timeout meanwhile)."""
        with counting_outstanding(), trio.fail_after(self._connect_timeout):
            stream = await open_stream(self._options, self.name, reader)
            try:
                await stream.send_all(pack(("SUBSCRIBE", *self.channels)))
                waiting = set(self.channels)
                while waiting:
                    reply = await read_reply(stream, reader)
                    if isinstance(reply, hiredis.ReplyError):
                        raise OSError(f"SUBSCRIBE refused: {reply}")
                    if isinstance(reply, list) and reply[:1] == [b"subscribe"]:
                        waiting.discard(reply[1])
            except BaseException:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                raise
        return stream

    async def _listen(self, stream: trio.abc.Stream, reader: hiredis.Reader) -> None:
        """Reads messages; every HEALTH_CHECK_EVERY seconds a PING must be answered (a connection half-open
        after a network fault would otherwise go unnoticed, and hints with it). The check comes on time
        even when messages flow, so no cancel scope is entered and left per message (dear on the latency
        path, in a process just woken from idling)."""
        await self._pass_on(reader)  # a message that came with the subscription's confirmations
        while True:
            with trio.move_on_after(HEALTH_CHECK_EVERY):
                while True:
                    feed(reader, await stream.receive_some(65536))
                    await self._pass_on(reader)
            await stream.send_all(pack(("PING",)))  # answered ["pong", ""] in subscribed mode, or messages
            with counting_outstanding(), trio.fail_after(self._connect_timeout + 1.0):
                feed(reader, await stream.receive_some(65536))
            await self._pass_on(reader)

    async def _pass_on(self, reader: hiredis.Reader) -> None:
        """Passes on the messages `reader` holds (`_take`). After a handler was called, yields twice
        before the next read, so that the tasks it woke (a runner given a handed task) run first: they
        share the loop's next turn with this task, in an order Trio picks at random, and the job would
        wait half the time for this task's failed recv and epoll re-arm. One yield: ~25 µs off message to
        job; the second: ~8 µs more at the median (probe, A/B in one run)."""
        if self._take(reader):
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.checkpoint()

    def _take(self, reader: hiredis.Reader) -> bool:
        """Passes on the messages `reader` holds: to their channel's handler, or to `wait()`. Returns
        whether a handler was called."""
        got = handled = False
        while (reply := reader.gets()) is not False:
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                handler = self._handlers.get(reply[1])
                if handler is not None:
                    handler(reply[2])
                    handled = True
                else:
                    self._pending.append(Message(reply[1], reply[2]))
                    got = True
        if got:
            self._lot.unpark_all()
        return handled


@asynccontextmanager
async def open_subscription(
    url: str,
    channels: Sequence[str | bytes],
    *,
    name: str = "skedulr-sub",
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    retry_interval: float = 1.0,
    max_pending: int = 1024,
    handlers: Mapping[str, Callable[[bytes], None]] | None = None,
) -> AsyncIterator[Subscription]:
    """`async with open_subscription(url, ["wake"]) as sub: message = await sub.wait(1.0)`; see the module
    docstring."""
    sub = Subscription(
        url, channels, name=name, connect_timeout=connect_timeout, retry_interval=retry_interval,
        max_pending=max_pending, handlers=handlers,
    )  # fmt: skip
    first = await sub.connect()  # before the nursery, so its StorageError is not wrapped in a group
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sub.run, first)
        try:
            yield sub
        finally:
            nursery.cancel_scope.cancel()


__all__ = ["Message", "Subscription", "open_subscription"]
