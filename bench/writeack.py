"""`python -m bench.writeack [--rounds N] [--seconds S]`: what `HANDOFF_WRITE_ACK=replica` costs.

One primary with one replica (fsync always on both), two services on the same core against it,
one acknowledging writes locally and one only once the replica has them, and the one-GET
baseline (b). Each round measures (b), then an append run on each service, so every ratio is
against a baseline run minutes, not a run, away; the table prints each round and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import secrets
import statistics
import tempfile
from pathlib import Path

from bench import baselines, scenarios
from bench.plan import FULL, Plan
from bench.results import Figure
from bench.scenarios import Bench
from bench.seed import Api, Keys, mint_keys, session
from bench.servers import (
    CLIENT_CORE,
    HttpServer,
    Processes,
    start_baseline,
    start_redis,
    start_service,
    wait_ready,
)

MODES = ("local", "replica")


def _round(plan: Plan, services: dict[str, HttpServer], get: HttpServer, keys: Keys,
           redis_url: str, workdir: Path) -> dict[str, Figure]:
    out: dict[str, Figure] = {}
    for name, server in (("get", get), *services.items()):
        bench = Bench(plan=plan, service=server, baselines={"get": get}, keys=keys,
                      redis_url=redis_url, workdir=workdir, run_id=secrets.token_hex(4))
        out[name] = (scenarios.measure(bench, "get", "get", get.base + "/", "get.lua", server=get)
                     if name == "get" else scenarios.append(bench, "append"))
        if bench.problems:
            raise RuntimeError(f"{name}: {bench.problems[:3]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    plan = dataclasses.replace(FULL, seconds=args.seconds, seconds_c8=1, warmup=1, quiet_wait=20)
    os.sched_setaffinity(0, {CLIENT_CORE})
    with tempfile.TemporaryDirectory(prefix="bench-writeack-") as tmp:
        procs = Processes(Path(tmp))
        try:
            primary = start_redis(procs, "always")
            start_redis(procs, "always", replica_of=primary.port)
            baselines.seed(primary.url)
            started = [start_service(procs, primary.url, env={"HANDOFF_WRITE_ACK": mode},
                                     name=f"service-{mode}") for mode in MODES]
            *servers, get = wait_ready([*started, start_baseline(procs, "get", primary.url)])
            services = dict(zip(MODES, servers, strict=True))
            keys = asyncio.run(mint_keys(primary.url))

            async def seed() -> None:
                async with session(8) as http:
                    await Api(http, services["local"].base, keys).history("append", 10)

            asyncio.run(seed())
            print("| round | (b) req/s | local appends/s (× b, CPU µs) | replica appends/s "
                  "(× b, CPU µs) | replica ÷ local | other load |")
            print("|---|---|---|---|---|---|")
            ratios: list[float] = []
            for n in range(1, args.rounds + 1):
                got = _round(plan, services, get, keys, primary.url, procs.workdir)
                b, local, replica = got["get"].rate, got["local"], got["replica"]
                ratios.append(replica.rate / local.rate)
                cells = [f"{f.rate:,.0f} ({f.rate / b:.2f}×, {f.cpu_us or 0:.0f})"
                         for f in (local, replica)]
                print(f"| {n} | {b:,.0f} | {cells[0]} | {cells[1]} | {ratios[-1]:.2f} | "
                      f"{max(f.other_load for f in got.values()):.2f} |", flush=True)
            print(f"\nreplica ÷ local append rate, median of {args.rounds}: "
                  f"{statistics.median(ratios):.2f}")
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
