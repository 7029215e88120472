"""The Redis I/O thread (`skedulr.storage._redis_io`) against a real redis-server, in real time."""

from __future__ import annotations

import logging
import math
import random
import socket
import threading
import time
from pathlib import Path

import pytest
import redis
import trio
import trio.testing

from redis_fixtures import RedisServer, free_port, redis_server, redis_url
from skedulr.errors import StorageError
from skedulr.storage._redis_io import RedisConnection, Script, open_connection, redact_url
from skedulr.storage._redis_subscription import Message, open_subscription

FIXTURES = (redis_server, redis_url)  # used by name as test parameters; referenced here so ruff sees them used

ECHO_TAGGED = Script("return {KEYS[1], ARGV[1]}", name="echo_tagged")
# Busy-waits ARGV[1] ms on the server's clock, then sets KEYS[1]: a command that is surely in flight.
SLOW_SET = Script(
    """
    local t = redis.call('TIME')
    local stop = t[1] * 1000 + t[2] / 1000 + tonumber(ARGV[1])
    repeat t = redis.call('TIME') until t[1] * 1000 + t[2] / 1000 >= stop
    redis.call('SET', KEYS[1], ARGV[2])
    return ARGV[2]
    """,
    name="slow_set",
)


def io_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("skedulr-redis-")]


async def test_concurrent_callers_each_get_their_own_result(redis_url: str) -> None:
    results: dict[int, list[object]] = {}

    async def caller(i: int) -> None:
        got = results.setdefault(i, [])
        for round_ in range(5):
            tag = f"caller-{i}-round-{round_}"
            got.append(await conn.execute("ECHO", tag) == tag.encode())
            got.append(await conn.eval_script(ECHO_TAGGED, [f"k{i}"], [tag]) == [f"k{i}".encode(), tag.encode()])
            await conn.execute("SET", f"k{i}", tag)
            got.append(await conn.execute("GET", f"k{i}") == tag.encode())

    async with open_connection(redis_url, name="test-concurrent") as conn:
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(caller, i)
        assert conn.commands_sent >= 200 * 5 * 4
    assert all(len(got) == 15 and all(got) for got in results.values()), results
    assert len(results) == 200


async def test_waiting_commands_go_out_as_one_pipeline(redis_url: str) -> None:
    async with open_connection(redis_url, name="test-batching") as conn:
        await conn.execute("PING")  # connected; the thread now sleeps on its inbox
        pipelines, commands = conn.pipelines_sent, conn.commands_sent

        async def caller(i: int) -> None:
            assert await conn.execute("INCR", "n") >= 1

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(caller, i)
        assert conn.commands_sent - commands == 100
        # 100 callers that hand over their command within microseconds share a handful of round trips
        assert conn.pipelines_sent - pipelines <= 10, conn

        before = conn.pipelines_sent
        replies = await conn.execute_many([("INCR", "m") for _ in range(50)])
        assert replies == list(range(1, 51))
        assert conn.pipelines_sent - before == 1
        assert await conn.execute_many([]) == []
        assert "queued=0" in repr(conn)


async def test_a_cancelled_call_finishes_on_the_server_and_the_next_caller_gets_its_own_reply(
    redis_url: str,
) -> None:
    async with open_connection(redis_url, name="test-cancel") as conn:
        await conn.load_script(SLOW_SET)
        start = time.monotonic()
        with trio.move_on_after(0.02) as scope:
            await conn.eval_script(SLOW_SET, ["slow"], [300, "done"])
        assert scope.cancelled_caught
        assert time.monotonic() - start < 0.2  # the caller leaves at once; the thread waits for the reply
        # The next command queues behind the slow one and gets its own reply, not the slow one's.
        assert await conn.execute("ECHO", "mine") == b"mine"
        assert await conn.execute("GET", "slow") == b"done"  # a cancelled call may still have run


async def test_cancel_storm_leaves_the_connection_consistent(redis_url: str) -> None:
    attempts = 0
    completed = 0
    rng = random.Random(1)

    async def caller(i: int) -> None:
        nonlocal attempts, completed
        for j in range(40):
            attempts += 1
            with trio.move_on_after(rng.choice([0, 0, 0.00005, 0.0002, 0.001, 0.005, math.inf])):
                tag = f"{i}:{j}"
                value = await conn.execute("INCR", "counter")
                assert isinstance(value, int)
                assert await conn.execute("ECHO", tag) == tag.encode()
                completed += 1

    async with open_connection(redis_url, name="test-storm") as conn:
        async with trio.open_nursery() as nursery:
            for i in range(25):
                nursery.start_soon(caller, i)
        assert 0 < completed < attempts  # some calls were cancelled (before or in flight), some not
        counter = int(await conn.execute("GET", "counter"))
        # every completed INCR ran; some cancelled ones ran too (in flight), some were never sent
        assert completed <= counter <= attempts
        # nothing is left on the socket: 100 fresh callers each get their own reply
        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(_expect_echo, conn, f"after-{i}")
        assert "queued=0 in_flight=0" in repr(conn)


async def _expect_echo(conn: RedisConnection, tag: str) -> None:
    assert await conn.execute("ECHO", tag) == tag.encode()


async def test_noscript_loads_the_script_and_runs_it_again(redis_url: str) -> None:
    incr = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])", name="incr_by")
    async with open_connection(redis_url, name="test-noscript") as conn:
        assert await conn.execute("SCRIPT", "EXISTS", incr.sha) == [False]
        assert await conn.eval_script(incr, ["n"], [2]) == 2  # never loaded: loaded on NOSCRIPT
        assert await conn.execute("SCRIPT", "EXISTS", incr.sha) == [True]
        await conn.execute("SCRIPT", "FLUSH")
        async with trio.open_nursery() as nursery:  # a whole batch hits NOSCRIPT; each call recovers
            for _ in range(20):
                nursery.start_soon(conn.eval_script, incr, ["n"], [1])
        assert await conn.execute("GET", "n") == b"22"


async def test_error_replies_raise_storage_error_and_the_connection_goes_on(redis_url: str) -> None:
    failing = Script("return redis.error_reply('STALE token 7 is old')", name="failing")
    async with open_connection(redis_url, name="test-errors") as conn:
        await conn.execute("SET", "text", "abc")
        with pytest.raises(StorageError, match="INCR") as info:
            await conn.execute("INCR", "text")
        assert isinstance(info.value.__cause__, redis.exceptions.ResponseError)
        assert "not an integer" in str(info.value)
        with pytest.raises(StorageError, match=r"script failing failed: STALE token 7 is old"):
            await conn.eval_script(failing)
        with pytest.raises(StorageError, match="unknown command"):
            await conn.execute("NO-SUCH-COMMAND")
        assert await conn.execute("GET", "text") == b"abc"

        replies = await conn.execute_many([("GET", "text"), ("INCR", "text"), ("ECHO", "x")])
        assert replies[0] == b"abc" and replies[2] == b"x"
        assert isinstance(replies[1], StorageError)

        # An argument redis-py cannot encode fails that caller only, not the others in its pipeline.
        async def bad() -> None:
            with pytest.raises(TypeError, match="NoneType"):
                await conn.execute("SET", "k", None)  # type: ignore[arg-type]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(bad)
            for i in range(10):
                nursery.start_soon(_expect_echo, conn, f"good-{i}")


async def test_redis_down_fails_fast_then_recovers_on_restart(tmp_path: Path) -> None:
    incr = Script("return redis.call('INCR', KEYS[1])", name="incr")
    with RedisServer(tmp_path / "redis") as server:
        async with open_connection(server.url, name="test-down", connect_timeout=0.5, socket_timeout=1.0) as conn:
            assert await conn.eval_script(incr, ["n"]) == 1
            server.stop()
            for _ in range(3):  # every call fails at once while Redis is down, none hangs
                start = time.monotonic()
                with pytest.raises(StorageError, match="could not be reached") as info:
                    await conn.eval_script(incr, ["n"])
                assert time.monotonic() - start < 0.5
                assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
            assert "unreachable" in repr(conn)
            server.start()  # same port, empty (no persistence): the script is gone too
            assert await conn.eval_script(incr, ["n"]) == 1
            assert await conn.execute("PING") is True
            assert "unreachable" not in repr(conn)


async def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts TCP connections (kernel backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0"
        async with open_connection(url, name="test-mute", connect_timeout=0.3, socket_timeout=0.3) as conn:
            start = time.monotonic()
            with pytest.raises(StorageError, match="could not be reached"):
                await conn.execute("PING")
            assert time.monotonic() - start < 2.0


async def test_the_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="skedulr")
    down = f"redis://admin:s3cret-pw@127.0.0.1:{free_port()}/0"
    async with open_connection(down, name="test-secret", connect_timeout=0.3) as conn:
        assert "s3cret-pw" not in repr(conn) and "admin:***@" in repr(conn)
        # an error text that quotes the URL (some resolvers and proxies do) is scrubbed as well: the I/O
        # thread reports every failure through `_fail`, which logs the first
        conn._fail([], OSError(f"cannot connect to {down}"))
        assert "cannot connect to" in caplog.text
        with pytest.raises(StorageError) as info:
            await conn.execute("PING")
    text = f"{info.value} {info.value.__cause__} {caplog.text} {conn!r}"
    assert "s3cret-pw" not in text
    assert "admin:***@" in str(info.value)

    with pytest.raises(ValueError, match=r"invalid Redis URL http://u:\*\*\*@h") as bad:
        RedisConnection("http://u:s3cret-pw@h:1/0")
    assert "s3cret-pw" not in str(bad.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://user:pass@host:6379/0", "redis://user:***@host:6379/0"),
        ("rediss://user:pass@host:6380/2", "rediss://user:***@host:6380/2"),
        ("redis://:pass@host", "redis://:***@host"),
        ("redis://user:@host", "redis://user:***@host"),
        ("redis://pass-only@host:6379", "redis://***@host:6379"),
        ("redis://user:p%40ss@host", "redis://user:***@host"),
        ("redis://user:p@ss@host/0", "redis://user:***@host/0"),
        ("redis://user:pa/ss@host/0", "redis://***@host/0"),
        ("redis://host:6379/0?password=pass&db=1", "redis://host:6379/0?password=***&db=1"),
        ("unix://user:pass@/run/redis.sock?db=0", "unix://user:***@/run/redis.sock?db=0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://127.0.0.1", "redis://127.0.0.1"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "pass" not in redact_url(url).replace("password=", "")


async def test_subscription_receives_published_messages(redis_url: str) -> None:
    async with open_connection(redis_url, name="test-pub") as conn, open_subscription(redis_url, ["a", b"b"]) as sub:
        assert await sub.wait(0.01) is None
        assert await conn.execute("PUBLISH", "a", "hello") == 1
        assert await sub.wait(2.0) == Message(b"a", b"hello")
        for i in range(5):
            await conn.execute("PUBLISH", "b", f"m{i}")
        got = [await sub.wait(2.0) for _ in range(5)]
        assert [(m.channel, m.data) for m in got if m is not None] == [(b"b", f"m{i}".encode()) for i in range(5)]
        channel, data = got[0] or (b"", b"")
        assert (channel, data) == (b"b", b"m0")
        assert "subscribed" in repr(sub)
    assert "closed" in repr(sub)
    assert io_threads() == []


async def test_subscription_resumes_after_a_restart(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        async with open_subscription(server.url, ["wake"], retry_interval=0.05) as sub:
            server.stop()
            server.start()
            with trio.fail_after(5):
                while sub.resumed == 0:
                    await trio.sleep(0.01)
            assert await sub.wait(1.0) is None  # "hints may have been lost: go and look"
            client = redis.Redis.from_url(server.url)
            try:
                client.publish("wake", "again")
            finally:
                client.close()
            assert await sub.wait(2.0) == Message(b"wake", b"again")


async def test_subscribing_to_a_redis_that_is_down_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(StorageError, match="cannot subscribe") as info:
        async with open_subscription(f"redis://:pw-x1@127.0.0.1:{free_port()}/0", ["c"], connect_timeout=0.3):
            pass  # pragma: no cover
    assert time.monotonic() - start < 2.0
    assert "pw-x1" not in str(info.value) and ":***@" in str(info.value)
    assert io_threads() == []


async def test_close_finishes_handed_over_calls_then_refuses(redis_url: str) -> None:
    conn = RedisConnection(redis_url, name="test-close")
    with pytest.raises(StorageError, match="not started"):
        await conn.execute("PING")
    conn.start()
    assert "skedulr-redis-test-close" in io_threads()
    results: list[int] = []

    async def caller(i: int) -> None:
        results.append(await conn.execute("INCR", "n"))

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(caller, i)
        await trio.testing.wait_all_tasks_blocked()  # all 50 handed over
        await conn.aclose()
    assert sorted(results) == list(range(1, 51))
    assert "closed" in repr(conn) and redis_url in repr(conn)
    with pytest.raises(StorageError, match="closed"):
        await conn.execute("PING")
    await conn.aclose()  # idempotent
    assert io_threads() == []


async def test_a_silently_dead_subscription_connection_is_noticed_and_replaced(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that stops carrying anything (a network fault, no FIN) is found out by a PING after
    a quiet spell, and the subscription connects again."""
    from skedulr.storage import _redis_subscription

    monkeypatch.setattr(_redis_subscription, "HEALTH_CHECK_EVERY", 0.2)
    frozen = trio.Event()  # set: the proxy stops passing bytes on the connections it has

    async def relay(client: trio.SocketStream) -> None:
        stuck = frozen.is_set()  # connections made after the freeze work
        async with client, await trio.open_tcp_stream("127.0.0.1", redis_server.port) as server:

            async def pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                async for data in source:
                    if frozen.is_set() and not stuck:
                        await trio.sleep_forever()
                    await sink.send_all(data)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pipe, client, server)
                nursery.start_soon(pipe, server, client)

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, relay, listeners)
        url = f"redis://127.0.0.1:{port}/0"
        async with open_subscription(url, ["wake"], connect_timeout=0.3, retry_interval=0.05) as sub:
            frozen.set()
            with trio.fail_after(5):
                while sub.resumed == 0:
                    await trio.sleep(0.01)
            assert await sub.wait(1.0) is None  # "hints may have been lost: go and look"
            publisher = redis.Redis.from_url(redis_server.url)
            publisher.publish("wake", "after")
            publisher.close()
            assert await sub.wait(2.0) == Message(b"wake", b"after")
        nursery.cancel_scope.cancel()


async def test_the_health_check_pings_on_time_while_messages_flow_and_loses_none(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PING comes every HEALTH_CHECK_EVERY seconds whether or not messages arrive, and what arrives
    meanwhile (a handled channel's messages, queued ones, the PONG) is all read, in order."""
    from skedulr.storage import _redis_subscription

    monkeypatch.setattr(_redis_subscription, "HEALTH_CHECK_EVERY", 0.02)
    handled: list[bytes] = []
    publisher = redis.Redis.from_url(redis_server.url)
    name = f"health-{random.getrandbits(32):08x}"
    publisher.config_resetstat()
    try:
        async with open_subscription(redis_server.url, ["wake"], handlers={"hand": handled.append}, name=name) as sub:
            sent = 0
            with trio.fail_after(10):
                for _ in range(40):  # about 0.4 s of steady traffic: twenty health checks' worth
                    for _ in range(25):
                        publisher.publish("hand", str(sent))
                        sent += 1
                    publisher.publish("wake", str(sent))
                    await trio.sleep(0.01)
                while len(handled) < sent:
                    await trio.sleep(0.01)
            assert handled == [str(i).encode() for i in range(sent)]
            woken = []
            while (message := await sub.wait(0)) is not None:
                woken.append(message)
            assert woken, "the queued channel's messages were lost"
            pings = publisher.info("commandstats").get("cmdstat_ping", {}).get("calls", 0)
            assert pings >= 10, f"{pings} health checks in about 0.4 s of traffic, one due every 0.02 s"
    finally:
        publisher.close()


async def test_a_task_a_handler_wakes_runs_before_the_subscription_reads_again(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handed task's runner starts its job before the subscription's next read (a failed recv and an
    epoll re-arm, on the path from submit to start), whichever order Trio picks for the two: it reverses
    a turn's tasks half the time, so twenty messages in a row all find the runner first only by design."""
    order: list[str] = []
    lot = trio.lowlevel.ParkingLot()
    plain_receive = trio.SocketStream.receive_some

    async def noting_receive(self: trio.SocketStream, max_bytes: int | None = None) -> bytes | bytearray:
        order.append("read")
        return await plain_receive(self, max_bytes)

    async def runner() -> None:
        while True:
            await lot.park()
            order.append("ran")

    monkeypatch.setattr(trio.SocketStream, "receive_some", noting_receive)
    publisher = redis.Redis.from_url(redis_server.url)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner)
            handlers = {"hand": lambda data: lot.unpark_all()}
            async with open_subscription(redis_server.url, ["wake"], handlers=handlers):
                for _ in range(20):
                    await trio.testing.wait_all_tasks_blocked()  # the subscription waits in a read
                    order.clear()
                    publisher.publish("hand", "task")
                    with trio.fail_after(5):
                        while "read" not in order:
                            await trio.sleep(0.001)
                    assert order == ["ran", "read"], order
            nursery.cancel_scope.cancel()
    finally:
        publisher.close()
