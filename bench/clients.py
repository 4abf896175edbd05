"""`python -m bench.clients`: the store's Redis client beside the alternatives, on the hot paths'
shapes.

Each client runs the same two operations, shaped as the service's Redis traffic is
(tests/test_bounded_cost.py counts it), from N concurrent tasks on one event loop:

- `brief`: a brief read after a new turn: two round trips, the first a pipeline of the ETag
  reads and the audit entries (2 HGETALL, 2 XADD, 2 PEXPIRE), the second a pipeline of the
  brief's reads (6 HGETALL, XREVRANGE COUNT 50 of a 60-entry stream, ZREVRANGE);
- `append`: a turn append: one EVALSHA of a script that adds the turn and its event to two
  streams, records its id and bumps the customer's version.

Clients: redis-py's asyncio client on one connection (a pool of one, no health checks) and on a
connection per task (the baseline (b)'s shape); `Multiplexed` (handoff/store/multiplex.py);
coredis; valkey-glide. The last two are not dependencies of the service: install them for this
comparison with `pip install coredis valkey-glide`; a client that is not installed (or does not
start) is skipped with a line saying why.

Each client runs in a process of its own on the server core (where the service's client runs),
valkey on the other; the figures are the best of `--repeat` runs, the clients taking turns. CPU
µs/op is the client process's CPU (all its threads: glide's core is Rust threads) per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.cpu import CpuMeter
from bench.servers import CLIENT_CORE, SERVER_CORE, Processes, pinned, start_redis

CLIENTS = ("redis-py, one connection", "redis-py, a connection per task", "multiplexed",
           "coredis", "valkey-glide")
WORKLOADS = ("brief", "append")
PREFIX = "bench:clients:{c1}"  # one hash slot, as a customer's keys are
META, VERIFIED = f"{PREFIX}:meta", f"{PREFIX}:verified"
HASHES = [f"{PREFIX}:h{n}" for n in range(6)]
TURNS, CONVS, EVENTS, TIDS = (f"{PREFIX}:turns", f"{PREFIX}:convs", f"{PREFIX}:events",
                              f"{PREFIX}:tids")
AUDIT = [f"{PREFIX}:audit:a", f"{PREFIX}:audit:b"]
AUDIT_TTL_MS = 30 * 24 * 3600 * 1000
TRIM = 10_000
BRIEF_TURNS = 50
TURN = b"\x96\xa3t-1\xa8customer" + b"I was charged twice for my last order, can you help?" * 2
AUDIT_ENTRY = b"\x84\xa3who\xa7agent-7\xa4what\xa5brief\xa2at\xcf\x00\x00\x01\x93\x00\x00\x00\x00"
# The append's write: the turn and its event on two capped streams, its id, the new version.
APPEND_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'd', ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], id)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[3])
return {id, redis.call('HINCRBY', KEYS[4], 'ver', 1)}
"""


def seed(url: str) -> None:
    """The keys a brief reads: hashes, a 60-turn stream, a sorted set of conversations."""
    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.delete(META, VERIFIED, *HASHES, TURNS, CONVS, EVENTS, TIDS, *AUDIT)
        pipe.hset(META, mapping={"id": "cus_01JBENCHCLIENTS000000000000", "ver": 60,
                                 "created": 1795428000000})
        pipe.hset(VERIFIED, mapping={"account": b"\x83\xa5level\xa4high"})
        for n, name in enumerate(HASHES):
            pipe.hset(name, mapping={f"f{k}": f"value {n}.{k}" for k in range(4)})
        for _ in range(60):
            pipe.xadd(TURNS, {"d": TURN})
        pipe.zadd(CONVS, {f"conv-{n}": n for n in range(5)})
        pipe.execute()
    finally:
        client.close()


# -- one adapter per client: the same two operations ---------------------------------------------


class Driver:
    """A client under test: `brief` and `append` as described above."""

    name = ""

    async def open(self, host: str, port: int, tasks: int) -> None:
        raise NotImplementedError

    async def brief(self) -> None:
        raise NotImplementedError

    async def append(self, n: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def _append_args(n: int) -> list[Any]:
    return [TURN, f"t-{n}", AUDIT_ENTRY, TRIM]


def _checked(turns: Any) -> None:
    if len(turns) != BRIEF_TURNS:
        raise RuntimeError(f"XREVRANGE answered {len(turns)} turns, not {BRIEF_TURNS}")


class RedisPy(Driver):
    """redis-py's asyncio client, tuned: no health checks, hiredis parsing."""

    def __init__(self, per_task: bool) -> None:
        self.per_task = per_task
        self.client: Any = None
        self.script: Any = None

    async def open(self, host: str, port: int, tasks: int) -> None:
        from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis

        # One connection: every command and pipeline waits its turn for it.
        pool = (ConnectionPool(host=host, port=port, max_connections=tasks,
                               health_check_interval=0) if self.per_task else
                BlockingConnectionPool(host=host, port=port, max_connections=1, timeout=None,
                                       health_check_interval=0))
        self.client = Redis(connection_pool=pool)
        self.script = self.client.register_script(APPEND_LUA)

    async def brief(self) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(META)
            pipe.hgetall(VERIFIED)
            for stream in AUDIT:
                pipe.xadd(stream, {"d": AUDIT_ENTRY}, maxlen=TRIM, approximate=True)
                pipe.pexpire(stream, AUDIT_TTL_MS)
            await pipe.execute()
            for name in HASHES:
                pipe.hgetall(name)
            pipe.xrevrange(TURNS, count=BRIEF_TURNS)
            pipe.zrevrange(CONVS, 0, -1)
            _checked((await pipe.execute())[-2])

    async def append(self, n: int) -> None:
        await self.script(keys=[TURNS, TIDS, EVENTS, META], args=_append_args(n))

    async def close(self) -> None:
        await self.client.aclose()


class Multiplex(Driver):
    """The service's own client: one shared, auto-pipelined connection."""

    client: Any = None
    script: Any = None

    async def open(self, host: str, port: int, tasks: int) -> None:
        from handoff.store.multiplex import Multiplexed

        self.client = Multiplexed(host=host, port=port, timeout=5.0)
        self.script = self.client.register_script(APPEND_LUA)

    async def brief(self) -> None:
        pipe = self.client.pipeline()
        pipe.hgetall(META)
        pipe.hgetall(VERIFIED)
        for stream in AUDIT:
            pipe.xadd(stream, {"d": AUDIT_ENTRY}, maxlen=TRIM, approximate=True)
            pipe.pexpire(stream, AUDIT_TTL_MS)
        await pipe.execute()
        for name in HASHES:
            pipe.hgetall(name)
        pipe.xrevrange(TURNS, count=BRIEF_TURNS)
        pipe.zrevrange(CONVS, 0, -1)
        _checked((await pipe.execute())[-2])

    async def append(self, n: int) -> None:
        await self.script(keys=[TURNS, TIDS, EVENTS, META], args=_append_args(n))

    async def close(self) -> None:
        await self.client.aclose()


class Coredis(Driver):
    """coredis with its defaults (RESP3; a pipeline is sent when its block ends)."""

    client: Any = None
    script: Any = None
    token: Any = None
    stack: Any = None

    async def open(self, host: str, port: int, tasks: int) -> None:
        import contextlib

        coredis = importlib.import_module("coredis")
        self.token = importlib.import_module("coredis.tokens").PureToken
        self.stack = contextlib.AsyncExitStack()
        # coredis 6: a client is opened and closed as a context.
        self.client = await self.stack.enter_async_context(coredis.Redis(host=host, port=port))
        self.script = self.client.register_script(APPEND_LUA)

    async def brief(self) -> None:
        token = self.token
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(META)
            pipe.hgetall(VERIFIED)
            for stream in AUDIT:
                pipe.xadd(stream, {"d": AUDIT_ENTRY}, trim_strategy=token.MAXLEN,
                          threshold=TRIM, trim_operator=token.APPROXIMATELY)
                pipe.pexpire(stream, AUDIT_TTL_MS)
        async with self.client.pipeline(transaction=False) as pipe:
            for name in HASHES:
                pipe.hgetall(name)
            turns = pipe.xrevrange(TURNS, count=BRIEF_TURNS)
            pipe.zrevrange(CONVS, 0, -1)
        _checked(await turns)

    async def append(self, n: int) -> None:
        await self.script(keys=[TURNS, TIDS, EVENTS, META], args=_append_args(n))

    async def close(self) -> None:
        await self.stack.aclose()


class Glide(Driver):
    """valkey-glide: a Rust core holding one multiplexed connection, driven from asyncio."""

    client: Any = None
    glide: Any = None
    script: Any = None

    async def open(self, host: str, port: int, tasks: int) -> None:
        glide = self.glide = importlib.import_module("glide")
        config = glide.GlideClientConfiguration([glide.NodeAddress(host, port)],
                                                request_timeout=5000)
        self.client = await glide.GlideClient.create(config)
        self.script = glide.Script(APPEND_LUA)
        g = glide
        self.trim = g.StreamAddOptions(trim=g.TrimByMaxLen(exact=False, threshold=TRIM))
        self.everything = g.RangeByIndex(0, -1)

    async def brief(self) -> None:
        g = self.glide
        first = g.Batch(is_atomic=False)
        first.hgetall(META)
        first.hgetall(VERIFIED)
        for stream in AUDIT:
            first.xadd(stream, [("d", AUDIT_ENTRY)], self.trim)
            first.pexpire(stream, AUDIT_TTL_MS)
        await self.client.exec(first, raise_on_error=True)
        second = g.Batch(is_atomic=False)
        for name in HASHES:
            second.hgetall(name)
        second.xrevrange(TURNS, g.MaxId(), g.MinId(), count=BRIEF_TURNS)
        second.zrange(CONVS, self.everything, reverse=True)
        _checked((await self.client.exec(second, raise_on_error=True))[-2])

    async def append(self, n: int) -> None:
        await self.client.invoke_script(self.script, keys=[TURNS, TIDS, EVENTS, META],
                                        args=[str(a).encode() if isinstance(a, int) else a
                                              for a in _append_args(n)])

    async def close(self) -> None:
        await self.client.close()


DRIVERS: dict[str, Callable[[], Driver]] = {
    "redis-py, one connection": lambda: RedisPy(per_task=False),
    "redis-py, a connection per task": lambda: RedisPy(per_task=True),
    "multiplexed": Multiplex,
    "coredis": Coredis,
    "valkey-glide": Glide,
}
PACKAGES = {"coredis": "coredis", "valkey-glide": "glide"}


# -- one client's run, in its own process --------------------------------------------------------


async def _drive(driver: Driver, operation: Callable[[int], Awaitable[None]], tasks: int,
                 seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    counts = [0] * tasks

    async def worker(k: int, until: float) -> None:
        n = k
        while loop.time() < until:
            await operation(n)
            n += tasks
            counts[k] += 1

    await asyncio.gather(*(worker(k, loop.time() + 0.5) for k in range(tasks)))  # warm-up
    counts[:] = [0] * tasks
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(k, loop.time() + seconds) for k in range(tasks)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    ops = sum(counts)
    return {"ops_per_s": ops / wall, "cpu_us_per_op": cpu / max(1, ops) * 1e6}


async def _run_client(name: str, host: str, port: int, tasks: list[int], seconds: float
                      ) -> dict[str, Any]:
    driver = DRIVERS[name]()
    await driver.open(host, port, max(tasks))
    try:
        results: dict[str, Any] = {}
        for workload in WORKLOADS:
            for n in tasks:
                operation: Callable[[int], Awaitable[None]] = (
                    driver.append if workload == "append" else lambda _: driver.brief())
                results[f"{workload}/{n}"] = await _drive(driver, operation, n, seconds)
        return results
    finally:
        await driver.close()


def _child(args: argparse.Namespace) -> int:
    package = PACKAGES.get(args.run)
    if package is not None:
        try:
            importlib.import_module(package)
        except ImportError as exc:
            print(json.dumps({"skipped": f"{args.run} is not installed ({exc}); "
                                         f"pip install {args.run} to compare it"}))
            return 0
    try:
        results = asyncio.run(_run_client(args.run, args.host, args.port, args.tasks,
                                          args.seconds))
    except Exception as exc:  # a client that does not run here is reported, not fatal
        print(json.dumps({"skipped": f"{args.run} did not run: {type(exc).__name__}: {exc}"}))
        return 0
    print(json.dumps(results))
    return 0


# -- the comparison --------------------------------------------------------------------------------


@dataclass
class Best:
    ops_per_s: float = 0.0
    cpu_us_per_op: float = float("inf")
    other_load: float = 0.0  # the most any run of it shared the machine with (bench/cpu.py)

    def add(self, sample: dict[str, float], other_load: float) -> None:
        self.ops_per_s = max(self.ops_per_s, sample["ops_per_s"])
        self.cpu_us_per_op = min(self.cpu_us_per_op, sample["cpu_us_per_op"])
        self.other_load = max(self.other_load, other_load)


def _report(best: dict[tuple[str, str, int], Best], skipped: dict[str, str],
            tasks: list[int]) -> str:
    lines = ["| operation | tasks | client | ops/s | client CPU µs/op | ops/s × multiplexed | "
             "other load |", "|---|---|---|---|---|---|---|"]
    for workload in WORKLOADS:
        for n in tasks:
            ours = best.get(("multiplexed", workload, n))
            for name in CLIENTS:
                b = best.get((name, workload, n))
                if b is None:
                    continue
                ratio = f"{b.ops_per_s / ours.ops_per_s:.2f}×" if ours else "—"
                lines.append(f"| {workload} | {n} | {name} | {b.ops_per_s:,.0f} | "
                             f"{b.cpu_us_per_op:,.0f} | {ratio} | {b.other_load:.2f} |")
    lines += [f"\n{name}: skipped: {why}" for name, why in skipped.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="each measured run")
    parser.add_argument("--tasks", type=int, nargs="+", default=[8, 64],
                        help="concurrent tasks (the service's requests in flight)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per client; best kept")
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always")
    parser.add_argument("--run", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        return _child(args)
    os.sched_setaffinity(0, {CLIENT_CORE})
    best: dict[tuple[str, str, int], Best] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="handoff-clients-") as tmp:
        procs = Processes(Path(tmp))
        try:
            info = start_redis(procs, args.appendfsync)
            seed(info.url)
            for attempt in range(args.repeat):
                for name in args.clients:
                    if name in skipped:
                        continue
                    meter = CpuMeter.start()
                    done = subprocess.run(pinned(SERVER_CORE, [
                        sys.executable, "-m", "bench.clients", "--run", name, "--port",
                        str(info.port), "--seconds", str(args.seconds),
                        "--tasks", *map(str, args.tasks)]),
                        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
                        timeout=120 + 4 * len(args.tasks) * (args.seconds + 1))
                    if done.returncode != 0 or not done.stdout.strip():
                        skipped[name] = f"exited {done.returncode}: {done.stderr[-500:]}"
                        continue
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    other_load = meter.foreign_cores()
                    if "skipped" in result:
                        skipped[name] = result["skipped"]
                        print(f"{name}: skipped: {result['skipped']}", file=sys.stderr)
                        continue
                    for key, sample in result.items():
                        workload, n = key.split("/")
                        best.setdefault((name, workload, int(n)), Best()).add(sample,
                                                                              other_load)
                        print(f"run {attempt + 1} {name} {key}: {sample['ops_per_s']:,.0f} ops/s,"
                              f" {sample['cpu_us_per_op']:.0f} µs/op", file=sys.stderr)
        finally:
            procs.stop_all()
    print(f"valkey appendfsync {args.appendfsync}; {args.repeat} runs of {args.seconds:g} s per "
          "client and operation, best kept; client on the server core, valkey on the other; "
          "other load: the most cores other processes kept busy during a run of that client\n")
    print(_report(best, skipped, args.tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
