"""The store's one shared Redis connection: redis-py's answers, in order, whatever happens to the
server (a restart, a stall, a flushed script cache) or to the callers (cancelled mid-way)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from handoff.store.multiplex import Multiplexed
from tests.conftest import CLUSTER, RedisServer, free_port

pytestmark = pytest.mark.skipif(CLUSTER, reason="the multiplexed client serves one server")


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def mux(own_redis: RedisServer) -> AsyncIterator[Multiplexed]:
    client = Multiplexed.from_url(own_redis.url, timeout=0.5)
    yield client
    await client.aclose()


async def test_replies_are_shaped_as_redis_py_shapes_them(own_redis: RedisServer,
                                                          mux: Multiplexed) -> None:
    reference = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        await reference.hset("h", mapping={"a": b"\x81\xa1x\x01", "b": 2})
        await reference.xadd("s", {"f": b"v1"})
        await reference.xadd("s", {"f": b"v2"})
        await reference.zadd("z", {"m1": 1.5, "m2": 2})
        for method, args, kwargs in [
            ("hgetall", ("h",), {}), ("xrevrange", ("s", "+", "-"), {"count": 1}),
            ("zrevrange", ("z", 0, -1), {"withscores": True}), ("get", ("missing",), {}),
            ("set", ("k", "v"), {"px": 60_000, "get": True}), ("getex", ("k",), {"px": 1000}),
            ("set", ("k", "w"), {"nx": True}), ("hlen", ("h",), {}),
        ]:
            mine = await getattr(mux, method)(*args, **kwargs)
            theirs = await getattr(reference, method)(*args, **kwargs)
            if method == "set" and kwargs.get("get"):  # both read the value the first set left
                continue
            assert mine == theirs, method
    finally:
        await reference.aclose()


async def test_a_pipeline_answers_every_command_in_order_and_raises_the_first_error(
        mux: Multiplexed) -> None:
    await mux.set("text", "x")
    async with mux.pipeline(transaction=False) as pipe:
        pipe.incr("n")
        pipe.hgetall("text")  # wrong type: an error in the middle
        pipe.incr("n")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await pipe.execute()
    assert await mux.get("n") == b"2"  # the commands around the error ran
    async with mux.pipeline(transaction=False) as pipe:
        pipe.incr("n")
        pipe.hgetall("text")
        replies = await pipe.execute(raise_on_error=False)
    assert replies[0] == 3 and isinstance(replies[1], ResponseError)


async def test_concurrent_callers_each_get_their_own_reply(mux: Multiplexed) -> None:
    await asyncio.gather(*(mux.set(f"k{n}", n) for n in range(500)))
    values = await asyncio.gather(*(mux.get(f"k{n}") for n in range(500)))
    assert values == [str(n).encode() for n in range(500)]


async def test_a_cancelled_caller_leaves_the_line_in_order(mux: Multiplexed) -> None:
    await mux.set("a", "1")
    await mux.set("b", "2")
    slow = asyncio.ensure_future(mux.execute_command("BLPOP", "nothing", "0.1"))
    await asyncio.sleep(0.01)
    cancelled = asyncio.ensure_future(mux.get("a"))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await mux.get("b") == b"2"  # not "1": the cancelled reply was read and dropped
    await slow


async def test_a_script_is_loaded_again_after_the_server_forgets_it(mux: Multiplexed) -> None:
    script = mux.register_script("return {KEYS[1], ARGV[1]}")
    assert await script(keys=["k"], args=[7]) == [b"k", b"7"]
    await mux.execute_command("SCRIPT", "FLUSH")
    assert await script(keys=["k2"], args=["x"]) == [b"k2", b"x"]


async def test_a_restarted_server_fails_the_waiting_commands_then_serves_again(
        own_redis: RedisServer, mux: Multiplexed) -> None:
    await mux.set("kept", "yes")
    own_redis.kill()
    with pytest.raises(ConnectionError):
        await mux.get("kept")
    with pytest.raises(ConnectionError):  # nothing listens: refused, at once
        await mux.get("kept")
    own_redis.start()
    assert await mux.get("kept") == b"yes"  # AOF kept it, and the client reconnected itself


async def test_a_stalled_server_times_out_instead_of_hanging(own_redis: RedisServer,
                                                             mux: Multiplexed) -> None:
    await mux.ping()
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await mux.get("anything")
        assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert await mux.ping()


async def test_credentials_and_database_from_the_url(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, free_port())
    server.start()
    try:
        redis.Redis(port=server.port).config_set("requirepass", "s3cret")
        client = Multiplexed.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/3")
        await client.set("where", "db3")
        await client.aclose()
        plain = redis.Redis(port=server.port, password="s3cret", db=3)
        assert plain.get("where") == b"db3"
        plain.close()
        wrong = Multiplexed.from_url(f"redis://:nope@127.0.0.1:{server.port}/0")
        with pytest.raises(redis.exceptions.AuthenticationError):
            await wrong.ping()
        await wrong.aclose()
    finally:
        server.stop()


async def test_what_the_doctor_reads_comes_back_parsed(mux: Multiplexed) -> None:
    from handoff.store.diagnostics import server_facts

    facts = await server_facts(mux, pings=3)
    assert facts.info["redis_version"] and len(facts.latencies_ms) == 3
    assert facts.config["appendonly"] == "yes"


async def test_one_wait_confirms_every_write_made_before_it_for_every_caller(
        tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "p", free_port())
    replica = RedisServer(tmp_path / "r", free_port(),
                          options=("--replicaof", "127.0.0.1", "0"))
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    primary.start()
    replica.options = ("--replicaof", "127.0.0.1", str(primary.port))
    replica.start()
    client = Multiplexed.from_url(primary.url, timeout=2.0)
    try:
        await client.ping()
        for _ in range(100):  # the replica's first sync
            if await client.replicated(1, 100) == 1:
                break

        async def write_then_confirm(n: int) -> int:
            await client.set(f"k{n}", n)
            return await client.replicated(1, 1000)

        waits_before = redis.Redis(port=primary.port).info("commandstats").get(
            "cmdstat_wait", {"calls": 0})["calls"]
        assert await asyncio.gather(*(write_then_confirm(n) for n in range(200))) == [1] * 200
        waits = redis.Redis(port=primary.port).info("commandstats")["cmdstat_wait"]["calls"]
        assert waits - waits_before < 20  # shared, not one per caller
        copy = redis.Redis(port=replica.port)
        assert [copy.get(f"k{n}") for n in range(200)] == [str(n).encode() for n in range(200)]

        replica.kill()  # nobody to confirm: the answer says so, in time
        await client.set("lonely", 1)
        assert await client.replicated(1, 200) == 0
    finally:
        await client.aclose()
        for server in (replica, primary):  # a primary would wait for its lost replica
            if server.process is not None and server.process.poll() is None:
                server.kill()
