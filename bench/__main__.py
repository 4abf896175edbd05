"""`python -m bench [--quick] [--out bench/RESULTS.md]`: measure handoff against its baselines.

Starts its own valkey-server, service and baseline apps in a temporary folder, measures, writes
the markdown report, stops everything it started (whatever happens), and exits non-zero if a
server did not start or any request failed. Missed performance targets do not fail the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

import aiohttp
import redis

from bench import baselines, growth, roundtrips, scenarios
from bench.cpu import QUIET_CORES, CpuMeter
from bench.machine import facts
from bench.plan import FULL, QUICK, Plan
from bench.report import render, targets
from bench.results import Results
from bench.scenarios import Bench
from bench.seed import Api, member, mint_keys, session
from bench.servers import (
    CLIENT_CORE,
    Processes,
    StartError,
    start_baseline,
    start_redis,
    start_service,
    wait_ready,
)

T = TypeVar("T")
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"
# What a stage may fail with and still let the others run (and the table print).
STAGE_ERRORS = (RuntimeError, OSError, subprocess.SubprocessError, aiohttp.ClientError,
                redis.RedisError, ValueError, KeyError)


class BudgetExceeded(Exception):
    """The watchdog fired: something hung; stop everything rather than run forever."""


def stage(bench: Bench, name: str, step: Callable[[], T]) -> T | None:
    """Run one group of figures; a failure is recorded and the next group still runs."""
    try:
        return step()
    except STAGE_ERRORS as exc:
        bench.problems.append(f"{name}: {type(exc).__name__}: {str(exc)[:1500]}")
        return None


# Customer names (their chat identity and conversation derive from these, see bench/seed.py).
APPEND, BRIEF, FANOUT, HANDOFF_POOL = "append", "brief", "fanout", "ho"


@dataclass(frozen=True)
class Seeded:
    """Customer ids (cus_...) of the figures' customers, and the brief's current ETag."""

    brief: str
    brief_etag: str
    brief_bytes: int
    fanout: str
    handoff_pool: list[str]   # names, which the hand-off requests address by chat identity


async def _seed(bench: Bench) -> Seeded:
    plan = bench.plan
    async with session(plan.seed_concurrency) as http:
        api = Api(http, bench.service.base, bench.keys)
        # The append figure's customer exists before it starts: it measures appends, not
        # the creation of a customer on the first request.
        await api.history(APPEND, 10)
        brief = await api.history(BRIEF, plan.brief_history)
        etag, size = await api.brief(brief)
        fanout = await api.history(FANOUT, 10)
        await api.many(HANDOFF_POOL, plan.handoff_customers, 5, plan.seed_concurrency)
        return Seeded(brief=brief, brief_etag=etag, brief_bytes=size, fanout=fanout,
                      handoff_pool=[member(HANDOFF_POOL, i)
                                    for i in range(plan.handoff_customers)])


def _growth(bench: Bench, results: Results) -> None:
    async def seed() -> dict[int, str]:
        async with session(4) as http:
            return await growth.seed_growth(Api(http, bench.service.base, bench.keys),
                                            bench.plan.growth_points)

    customers = asyncio.run(seed())
    results.memory = [growth.memory(bench.redis_url, cus_id, n)
                      for n, cus_id in customers.items()]
    for n, cus_id in customers.items():
        results.growth.append(growth.point(bench, n, cus_id))


def _many(bench: Bench, results: Results) -> None:
    async def seed() -> tuple[list[str], float, float]:
        async with session(bench.plan.seed_concurrency) as http:
            return await growth.seed_many(bench, Api(http, bench.service.base, bench.keys))

    ids, seconds, per_customer = asyncio.run(seed())
    results.many = growth.many(bench, ids, seconds, per_customer)


def measure_all(bench: Bench, results: Results) -> None:
    results.figures += stage(bench, "baselines", lambda: scenarios.baselines(bench)) or []
    seeded = stage(bench, "seeding", lambda: asyncio.run(_seed(bench)))
    if seeded is None:
        return
    s = seeded  # a name the lambdas below can close over with its narrowed type
    # First, while the service is idle: requests one at a time, Redis's counters around each.
    results.round_trips = stage(bench, "round trips", lambda: roundtrips.measure(
        bench, append_name=APPEND, brief_id=s.brief, brief_etag=s.brief_etag,
        handoff_pool=s.handoff_pool, requests=bench.plan.round_trip_requests)) or []
    for name, step in (
        ("brief", lambda: scenarios.brief(bench, s.brief, bench.plan.brief_history,
                                          s.brief_bytes)),
        ("304", lambda: scenarios.not_modified(bench, s.brief, s.brief_etag)),
        ("append", lambda: scenarios.append(bench, APPEND)),
        ("hand-offs", lambda: scenarios.handoffs(bench, s.handoff_pool)),
        ("fan-out", lambda: scenarios.fanout(bench, FANOUT, s.fanout)),
    ):
        figure = stage(bench, name, step)
        if figure is not None:
            results.figures.append(figure)
    results.figures += stage(bench, "two processes",
                             lambda: scenarios.two_processes(bench, s.brief, APPEND)) or []
    stage(bench, "growth", lambda: _growth(bench, results))
    if bench.plan.many_customers:
        stage(bench, "many customers", lambda: _many(bench, results))


def run(plan: Plan, procs: Processes, appendfsync: str, write_ack: str = "local") -> Results:
    redis_info = start_redis(procs, appendfsync)
    ack = {"HANDOFF_WRITE_ACK": write_ack}
    if write_ack == "replica":  # a write is answered once this replica confirms it
        start_redis(procs, appendfsync, replica_of=redis_info.port)
    baselines.seed(redis_info.url)
    started = [start_service(procs, redis_info.url, env=ack),
               start_service(procs, redis_info.url, workers=2, env=ack),
               *(start_baseline(procs, kind, redis_info.url) for kind in scenarios.BASELINES)]
    service, workers, *others = wait_ready(started)
    keys = asyncio.run(mint_keys(redis_info.url))
    bench = Bench(plan=plan, service=service, baselines={s.name: s for s in others}, keys=keys,
                  redis_url=redis_info.url, workdir=procs.workdir,
                  run_id=secrets.token_hex(4), workers=workers)
    results = Results(facts=facts(plan, redis_info), problems=bench.problems)
    results.facts["write ack"] = (
        "replica: each write waits for a replica on the same core as valkey (WAIT 1)"
        if write_ack == "replica" else "local (the default)")
    measure_all(bench, results)
    return results


def _raise(exc: BaseException) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise exc
    return handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="1 s runs, fewer growth points, no 100k customers (CI smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report path")
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always",
                        help="Redis fsync policy: always (handoff's durable default) or everysec")
    parser.add_argument("--write-ack", choices=("local", "replica"), default="local",
                        help="HANDOFF_WRITE_ACK of the service; replica also starts a replica")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if (os.cpu_count() or 1) < 2:
        print("bench: needs 2 cores (server on one, load generators on the other)",
              file=sys.stderr)
        return 2
    # The orchestrator and its seeding clients stay off the server core.
    os.sched_setaffinity(0, {CLIENT_CORE})
    signal.signal(signal.SIGTERM, _raise(SystemExit(143)))
    signal.signal(signal.SIGALRM, _raise(BudgetExceeded(f"over {plan.budget_seconds} s")))
    signal.alarm(plan.budget_seconds)
    started = time.monotonic()
    meter = CpuMeter.start()
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        procs = Processes(Path(tmp))
        try:
            results = run(plan, procs, args.appendfsync, args.write_ack)
        except (StartError, BudgetExceeded) as exc:
            print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        finally:
            signal.alarm(0)
            procs.stop_all()
    foreign = meter.foreign_cores()
    results.facts["other load"] = (
        f"{foreign:.2f} cores busy with processes outside the bench, on average"
        + (" (figures are lower than on an idle machine)" if foreign > QUIET_CORES else ""))
    report = render(results)
    print(report, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"wrote {args.out} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    verdicts = [t for t in targets(results) if t.met is not None]
    missed = [t.name for t in verdicts if not t.met]
    print(f"targets: {len(verdicts) - len(missed)} of {len(verdicts)} measured met"
          + (f"; missed: {'; '.join(missed)}" if missed else ""), file=sys.stderr)
    return 1 if results.problems else 0


if __name__ == "__main__":
    sys.exit(main())
