"""`python -m bench.ab TREE_A TREE_B`: the hot paths of two source trees, side by side.

On a shared machine a rate moves with the neighbours' load, so two versions are only compared in
the same run: both services (each `handoff serve` from its own copy of the source, `python -m`
importing from its folder) run against one valkey, on the same core, and take turns, A then B
then B then A, for every figure and round. What is compared is the CPU each server process spent
per request (user + system, from /proc), which moves far less with the neighbours than a rate.

A tree is a folder holding `handoff/` and `adapters/`, e.g. a copy made before an edit; each is
started as `python -m handoff serve`, so both need that entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import wrk_runner
from bench.cpu import CpuMeter, tree_seconds
from bench.seed import Api, Keys, conversation, mint_keys, session, visitor
from bench.servers import (
    CLIENT_CORE,
    HttpServer,
    Processes,
    start_redis,
    start_service,
    wait_ready,
)

FIGURES = ("append", "brief", "304")
APPEND, BRIEF = "ab-append", "ab-brief"


@dataclass(frozen=True)
class Sample:
    variant: str
    figure: str
    rps: float
    cpu_us: float
    other_load: float


def _run(server: HttpServer, figure: str, keys: Keys, brief: tuple[str, str], run: str,
         seconds: float, connections: int) -> Sample:
    cus_id, etag = brief
    if figure == "append":
        url, script, expect = server.base, "append.lua", frozenset({200})
        env = {"BENCH_KEY": keys.bot, "BENCH_CONVERSATION": conversation(APPEND),
               "BENCH_VISITOR": visitor(APPEND), "BENCH_RUN": run}
    else:
        url, script = f"{server.base}/v1/customers/{cus_id}/context", "get.lua"
        env = {"BENCH_KEY": keys.agent, "BENCH_ETAG": etag if figure == "304" else "",
               "BENCH_RUN": run}
        expect = frozenset({304 if figure == "304" else 200})
    meter = CpuMeter.start()
    spent = [0.0]
    result = wrk_runner.warm_then_run(
        f"{server.name} {figure}", url, script, warmup=1, seconds=seconds,
        connections=connections, env=env, expect=expect,
        after_warmup=lambda: spent.__setitem__(0, tree_seconds(server.pid)))
    if result.problems:
        raise RuntimeError("; ".join(result.problems))
    cpu = (tree_seconds(server.pid) - spent[0]) / max(1, result.requests) * 1e6
    return Sample(server.name, figure, result.rps, cpu, meter.foreign_cores())


async def _seed(server: HttpServer, keys: Keys) -> tuple[str, str]:
    async with session(8) as http:
        api = Api(http, server.base, keys)
        await api.history(APPEND, 10)
        cus_id = await api.history(BRIEF, 60)
        etag, _ = await api.brief(cus_id)
        return cus_id, etag


def _table(samples: list[Sample], names: tuple[str, str]) -> str:
    lines = ["| figure | variant | CPU µs/req (median) | each round | req/s (median) | "
             "other load (max) |", "|---|---|---|---|---|---|"]
    for figure in FIGURES:
        medians = {}
        for name in names:
            mine = [s for s in samples if s.figure == figure and s.variant == name]
            cpu = statistics.median(s.cpu_us for s in mine)
            medians[name] = cpu
            lines.append(f"| {figure} | {name} | {cpu:.0f} | "
                         f"{', '.join(f'{s.cpu_us:.0f}' for s in mine)} | "
                         f"{statistics.median(s.rps for s in mine):,.0f} | "
                         f"{max(s.other_load for s in mine):.2f} |")
        a, b = (medians[n] for n in names)
        lines.append(f"| {figure} | {names[1]} vs {names[0]} | {b / a:.3f}× "
                     f"({b - a:+.0f} µs) | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="source tree A (holds handoff/ and adapters/)")
    parser.add_argument("b", type=Path, help="source tree B")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    for tree in (args.a, args.b):
        if not (tree / "handoff" / "app.py").is_file():
            parser.error(f"{tree} holds no handoff/app.py")
    os.sched_setaffinity(0, {CLIENT_CORE})
    with tempfile.TemporaryDirectory(prefix="handoff-ab-") as tmp:
        procs = Processes(Path(tmp))
        try:
            redis_info = start_redis(procs)
            started = [start_service(procs, redis_info.url, source=tree.resolve(),
                                     name=f"service-{label}")
                       for label, tree in (("A", args.a), ("B", args.b))]
            a, b = wait_ready(started)
            keys = asyncio.run(mint_keys(redis_info.url))
            brief = asyncio.run(_seed(a, keys))
            run_id = secrets.token_hex(4)
            samples = []
            for n in range(args.rounds):
                for figure in FIGURES:
                    # Alternate which goes first, so neither always follows the other's load.
                    for server in (a, b) if n % 2 == 0 else (b, a):
                        sample = _run(server, figure, keys, brief, f"{run_id}-{server.name}-{n}",
                                      args.seconds, args.connections)
                        samples.append(sample)
                        print(f"round {n + 1} {figure} {server.name}: {sample.rps:,.0f} req/s, "
                              f"{sample.cpu_us:.0f} µs/req, other load "
                              f"{sample.other_load:.2f}", file=sys.stderr, flush=True)
        finally:
            procs.stop_all()
    print(f"A = {args.a}, B = {args.b}; {args.rounds} rounds of {args.seconds:g} s at "
          f"{args.connections} connections, each server pinned to the same core\n")
    print(_table(samples, ("service-A", "service-B")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
