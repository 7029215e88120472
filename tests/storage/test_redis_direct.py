"""The Trio-native connection used for claims (`skedulr.storage._redis_direct`), against a real
redis-server, in real time: scripts, error replies, outages, passwords and interrupted calls."""

from __future__ import annotations

import logging
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import trio
import trustme

from redis_fixtures import SLOW, RedisServer, free_port
from skedulr.errors import StorageError
from skedulr.storage import _redis_direct as redis_direct
from skedulr.storage._redis_direct import DirectConnection, send_at_once
from skedulr.storage._redis_io import Script, outstanding_calls

INCR = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])", name="incr_by")
FAILING = Script("return redis.error_reply('STALE token 7 is old')", name="failing")


async def test_scripts_run_and_are_loaded_again_after_a_flush(redis_url: str) -> None:
    conn = DirectConnection(redis_url, name="test-direct")
    try:
        assert await conn.eval_script(INCR, ["n"], [2]) == 2  # never loaded: loaded on NOSCRIPT
        redis.Redis.from_url(redis_url).script_flush()
        assert await conn.eval_script(INCR, ["n"], [b"3"]) == 5
        assert await conn.eval_script(ECHO, ["k"], ["a", b"b", 7]) == [b"k", b"a", b"b", b"7"]
        assert "test-direct" in {c["name"] for c in redis.Redis.from_url(redis_url).client_list()}
    finally:
        await conn.aclose()


ECHO = Script("local out = {KEYS[1]} for i, a in ipairs(ARGV) do out[i + 1] = a end return out", name="echo")


async def test_an_error_reply_raises_and_the_connection_goes_on(redis_url: str) -> None:
    conn = DirectConnection(redis_url, name="test-direct-errors")
    try:
        with pytest.raises(StorageError, match=r"script failing failed: STALE token 7 is old"):
            await conn.eval_script(FAILING)
        assert await conn.eval_script(INCR, ["n"], [1]) == 1
    finally:
        await conn.aclose()


async def test_pipelined_calls_reply_in_order_with_error_replies_returned(redis_url: str) -> None:
    conn = DirectConnection(redis_url, name="test-direct-pipelined")
    try:
        redis.Redis.from_url(redis_url).script_flush()  # never loaded: loaded first
        replies = await conn.eval_pipelined(INCR, ((["p"], [i]) for i in range(1, 6)))
        assert replies == [1, 3, 6, 10, 15]
        redis.Redis.from_url(redis_url).script_flush()  # loaded again, not refused with NOSCRIPT
        mixed = await conn.eval_pipelined(CHECKED, [(["c"], [2]), (["c"], [-1]), (["c"], [3])])
        assert mixed[0] == 2 and mixed[2] == 5
        assert isinstance(mixed[1], StorageError) and "NEGATIVE -1" in str(mixed[1].__cause__)
        assert await conn.eval_script(INCR, ["p"], [1]) == 16  # the connection goes on
    finally:
        await conn.aclose()


async def test_a_failure_while_building_pipelined_calls_drops_the_connection(redis_url: str) -> None:
    conn = DirectConnection(redis_url, name="test-direct-pipelined-fail")

    def calls() -> Iterator[tuple[list[str], list[int]]]:
        yield ["q"], [1]
        raise ValueError("bad input in the second call")

    try:
        with pytest.raises(ValueError, match="second call"):
            await conn.eval_pipelined(INCR, calls())
        assert "not connected" in repr(conn)  # the first call's reply was never read
        assert await conn.eval_script(INCR, ["q"], [10]) == 11  # its own reply: the first call did run
        assert outstanding_calls() == 0
    finally:
        await conn.aclose()


CHECKED = Script(
    "if tonumber(ARGV[1]) < 0 then return redis.error_reply('NEGATIVE ' .. ARGV[1]) end "
    "return redis.call('INCRBY', KEYS[1], ARGV[1])",
    name="checked",
)


async def test_redis_down_fails_fast_then_reconnects(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        conn = DirectConnection(server.url, name="test-direct-down", connect_timeout=0.5, socket_timeout=1.0)
        assert await conn.eval_script(INCR, ["n"], [1]) == 1
        server.stop()
        for _ in range(3):
            start = time.monotonic()
            with pytest.raises(StorageError, match="could not be reached"):
                await conn.eval_script(INCR, ["n"], [1])
            assert time.monotonic() - start < 0.5
        server.start()  # same port, empty
        assert await conn.eval_script(INCR, ["n"], [1]) == 1
        await conn.aclose()


async def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        conn = DirectConnection(url, name="test-direct-mute", connect_timeout=0.3, socket_timeout=0.3)
        start = time.monotonic()
        with pytest.raises(StorageError, match="could not be reached"):
            await conn.eval_script(INCR, ["n"], [1])
        assert time.monotonic() - start < 2.0
        assert outstanding_calls() == 0


async def test_a_reply_that_does_not_come_in_time_fails_the_call_and_the_next_call_gets_its_own_reply(
    redis_url: str,
) -> None:
    """Connected, but the server stays silent past the socket timeout (it is busy): the call fails with a
    StorageError naming the timeout, drops the connection, and the next call is answered on a new one."""
    conn = DirectConnection(redis_url, name="test-direct-silent", socket_timeout=0.2)
    try:
        assert await conn.eval_script(INCR, ["n"], [1]) == 1  # connected
        start = time.monotonic()
        with pytest.raises(StorageError, match="TooSlowError"):
            await conn.eval_script(SLOW, [], [600])
        assert time.monotonic() - start < 0.5
        assert "not connected" in repr(conn)
        with trio.fail_after(5):
            while True:  # (the server is still busy with the slow script for a moment)
                try:
                    assert await conn.eval_script(INCR, ["n"], [1]) == 2
                    break
                except StorageError:
                    await trio.sleep(0.1)
        assert outstanding_calls() == 0
    finally:
        await conn.aclose()


async def test_a_password_is_sent_and_never_shows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="skedulr")
    with RedisServer(tmp_path / "redis") as server:
        redis.Redis.from_url(server.url).config_set("requirepass", "s3cret-pw")
        url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/3"
        conn = DirectConnection(url, name="test-direct-auth")
        assert await conn.eval_script(INCR, ["n"], [4]) == 4
        assert redis.Redis.from_url(url).get("n") == b"4"  # db 3 was selected
        await conn.aclose()
        wrong = DirectConnection(f"redis://:wrong-pw@127.0.0.1:{server.port}/0", name="test-direct-auth")
        with pytest.raises(StorageError) as info:
            await wrong.eval_script(INCR, ["n"], [1])
    down = DirectConnection(f"redis://admin:s3cret-pw@127.0.0.1:{free_port()}/0", name="test-direct-secret")
    with pytest.raises(StorageError) as down_info:
        await down.eval_script(INCR, ["n"], [1])
    text = f"{info.value} {down_info.value} {caplog.text} {down!r} {wrong!r}"
    assert "s3cret-pw" not in text and "wrong-pw" not in text
    assert "admin:***@" in str(down_info.value)


async def test_a_cancelled_call_drops_the_connection_and_the_next_call_gets_its_own_reply(redis_url: str) -> None:
    conn = DirectConnection(redis_url, name="test-direct-cancel")
    try:
        with trio.move_on_after(0.05):
            await conn.eval_script(SLOW, [], [300])  # cancelled while the server still runs it
        assert "not connected" in repr(conn)
        assert await conn.eval_script(INCR, ["n"], [1]) == 1  # not the slow script's late "done"
        assert outstanding_calls() == 0
    finally:
        await conn.aclose()


async def test_a_shielded_call_cancelled_in_flight_returns_its_reply_and_keeps_the_connection(redis_url: str) -> None:
    conn = DirectConnection(redis_url, name="test-direct-shielded")
    try:
        with trio.CancelScope() as scope:
            scope.deadline = trio.current_time() + 0.05
            reply = await conn.eval_script(SLOW, [], [300], shielded=True)  # the cancel comes meanwhile
        assert scope.cancel_called and not scope.cancelled_caught
        assert reply == b"done" and "connected" in repr(conn) and "not connected" not in repr(conn)
        with trio.move_on_after(0.05):  # unshielded, as before: the cancel drops the connection
            await conn.eval_script(SLOW, [], [300])
        assert "not connected" in repr(conn)
        assert await conn.eval_script(INCR, ["n"], [1]) == 1
    finally:
        await conn.aclose()


async def test_a_call_whose_caller_was_cancelled_already_sends_nothing_unless_shielded(redis_url: str) -> None:
    """The bytes go out before any of Trio's machinery (`send_at_once`), but not for a caller cancelled
    before the call: that one raises Cancelled with nothing sent, and the connection stays open. A shielded
    call on an open connection goes out all the same, and returns its reply."""
    conn = DirectConnection(redis_url, name="test-direct-precancelled")
    client = redis.Redis.from_url(redis_url)
    try:
        assert await conn.eval_script(INCR, ["n"], [1]) == 1  # connected
        replies = []
        with trio.CancelScope() as scope:
            scope.cancel()
            replies.append(await conn.eval_script(INCR, ["n"], [100], shielded=True))
            await conn.eval_script(INCR, ["n"], [10])
        assert replies == [101] and scope.cancelled_caught and client.get("n") == b"101"
        assert "not connected" not in repr(conn)  # nothing was sent: nothing to drop
        assert await conn.eval_script(INCR, ["n"], [1]) == 102
    finally:
        client.close()
        await conn.aclose()


async def test_a_command_larger_than_the_socket_takes_at_once_goes_out_whole(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 MB: what the socket does not take at once goes by `send_all` (the path is checked to be taken)."""
    sent: list[tuple[int, int]] = []

    def noting(stream: trio.abc.Stream, data: bytes) -> int:
        n = send_at_once(stream, data)
        sent.append((n, len(data)))
        return n

    monkeypatch.setattr(redis_direct, "send_at_once", noting)
    conn = DirectConnection(redis_url, name="test-direct-large")
    try:
        big = bytes(range(256)) * (1 << 16)
        assert await conn.eval_script(LENGTH, [], [big]) == len(big)
        assert await conn.eval_script(INCR, ["n"], [1]) == 1  # and the connection goes on
        assert sent[0][0] < sent[0][1] and sent[0][1] > len(big)  # (the whole command: big and the rest)
    finally:
        await conn.aclose()


async def test_calls_go_through_a_unix_socket_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A unix socket is a plain socket to `send_at_once` too: the bytes leave by one write. (Its own
    server, in a short directory: a socket's path has a length limit that test directories can pass.)"""
    sent: list[int] = []

    def noting(stream: trio.abc.Stream, data: bytes) -> int:
        sent.append(send_at_once(stream, data))
        return sent[-1]

    monkeypatch.setattr(redis_direct, "send_at_once", noting)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp, RedisServer(Path(tmp), unix_socket=True) as server:
        assert server.unix_url is not None
        conn = DirectConnection(server.unix_url, name="test-direct-unix")
        client = redis.Redis.from_url(server.url)
        try:
            assert await conn.eval_script(INCR, ["n"], [3]) == 3
            assert client.get("n") == b"3"  # the same server, by TCP
            assert sent and all(n > 0 for n in sent)
        finally:
            client.close()
            await conn.aclose()


async def _tls_proxy(upstream_port: int, cert: trustme.LeafCert, *, task_status: trio.TaskStatus[int]) -> None:
    """A TLS front for a plain Redis (as a cloud Redis or stunnel would be), with `cert` as its certificate.
    A client that refuses the handshake only ends its own connection."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def relay(client: trio.SocketStream) -> None:
        tls = trio.SSLStream(client, context, server_side=True)
        try:
            async with tls, await trio.open_tcp_stream("127.0.0.1", upstream_port) as server:

                async def up() -> None:
                    async for data in tls:
                        await server.send_all(data)

                async def down() -> None:
                    async for data in server:
                        await tls.send_all(data)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(up)
                    nursery.start_soon(down)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # (the client went, or refused the certificate)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(relay, listeners)


async def test_a_tls_connection_checks_the_certificate_and_carries_calls(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rediss://: the certificate is checked against the trusted ones (here a test CA, by SSL_CERT_FILE);
    one that is not trusted fails the call with StorageError, unless the URL says ssl_cert_reqs=none. A
    TLS stream is not a plain socket: `send_at_once` leaves its bytes to `send_all`."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    sent: list[int] = []

    def noting(stream: trio.abc.Stream, data: bytes) -> int:
        sent.append(send_at_once(stream, data))
        return sent[-1]

    monkeypatch.setattr(redis_direct, "send_at_once", noting)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_tls_proxy, redis_server.port, ca.issue_cert("127.0.0.1"))
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        trusted = DirectConnection(f"rediss://127.0.0.1:{port}/0", name="test-direct-tls")
        assert await trusted.eval_script(INCR, ["tls-n"], [5]) == 5
        assert await trusted.eval_script(INCR, ["tls-n"], [1]) == 6
        assert sent and set(sent) == {0}  # (each call, the script's loading included)
        await trusted.aclose()
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-file.pem"))  # the test CA no longer trusted
        untrusted = DirectConnection(f"rediss://127.0.0.1:{port}/0", name="test-direct-tls-untrusted")
        with pytest.raises(StorageError, match=r"could not be reached.*certificate verify failed"):
            await untrusted.eval_script(INCR, ["tls-n"], [1])
        unchecked = DirectConnection(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none", name="test-direct-tls-none")
        assert await unchecked.eval_script(INCR, ["tls-n"], [1]) == 7
        await unchecked.aclose()
        nursery.cancel_scope.cancel()
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete("tls-n")


LENGTH = Script("return #ARGV[1]", name="length")
GET_BIG = Script("return redis.call('GET', KEYS[1])", name="get_big")


def _store_big(url: str, size: int) -> None:
    """Stores `size` bytes under "big", for GET_BIG to return: a reply that takes a while to cross a proxy."""
    client = redis.Redis.from_url(url)
    client.set("big", b"x" * size)
    client.close()


async def _throttling_proxy(upstream_port: int, *, task_status: trio.TaskStatus[int]) -> None:
    """A TCP proxy that passes Redis's replies on 4 KiB every 10 ms: a large reply takes a while."""

    async def relay(client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", upstream_port) as server:
            await pipe(client, server)

    async def pipe(client: trio.SocketStream, server: trio.SocketStream) -> None:

        async def up() -> None:
            async for data in client:
                await server.send_all(data)

        async def down() -> None:
            async for data in server:
                for i in range(0, len(data), 4096):
                    await client.send_all(data[i : i + 4096])
                    await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(up)
            nursery.start_soon(down)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(relay, listeners)


async def test_a_large_reply_that_keeps_coming_is_not_cut_short(redis_server: RedisServer) -> None:
    """The timeout is for silence, not for the whole reply: half a megabyte trickling in for about a second
    arrives whole with a 0.3 s timeout (a claim of large payloads must not fail after it ran)."""
    _store_big(redis_server.url, 500_000)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_throttling_proxy, redis_server.port)
        conn = DirectConnection(
            f"redis://127.0.0.1:{port}/0", name="test-direct-slow", connect_timeout=0.2, socket_timeout=0.3
        )
        start = time.monotonic()
        assert len(await conn.eval_script(GET_BIG, ["big"])) == 500_000
        assert time.monotonic() - start > 0.6  # it really trickled for longer than the timeout
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_a_shielded_call_cancelled_while_its_reply_trickles_in_returns_it_whole(
    redis_server: RedisServer,
) -> None:
    _store_big(redis_server.url, 100_000)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_throttling_proxy, redis_server.port)
        conn = DirectConnection(f"redis://127.0.0.1:{port}/0", name="test-direct-shielded-parts")
        await conn.eval_script(INCR, ["n"], [1])  # connected
        with trio.CancelScope() as scope:
            scope.deadline = trio.current_time() + 0.1  # about 40 of its 100 KB have come by then
            reply = await conn.eval_script(GET_BIG, ["big"], shielded=True)
        assert scope.cancel_called and not scope.cancelled_caught
        assert len(reply) == 100_000 and "not connected" not in repr(conn)
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_a_reply_that_is_not_redis_protocol_fails_the_call_and_the_next_call_reconnects(
    redis_server: RedisServer,
) -> None:
    """Something not Redis on the port (or a stream garbled on the way): a typed StorageError, not the
    parser's own error, and the connection is dropped; a later call opens a new one."""
    connections = 0

    async def garbling(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        async with stream:
            await stream.receive_some(65536)  # CLIENT SETNAME
            await stream.send_all(b"+OK\r\n")
            await stream.receive_some(65536)
            await stream.send_all(b"X not a reply type\r\n")
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(trio.serve_listeners, garbling, listeners)
        conn = DirectConnection(f"redis://127.0.0.1:{listeners[0].socket.getsockname()[1]}/0", name="test-garbled")
        for attempt in (1, 2):
            with pytest.raises(StorageError, match="ProtocolError"):
                await conn.eval_script(INCR, ["n"], [1])
            assert "not connected" in repr(conn) and connections == attempt
        await conn.aclose()
        nursery.cancel_scope.cancel()
