"""The headline figures: the three baselines, then the service's hot paths, same core, same wrk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import wrk_runner
from bench.cpu import CpuMeter, tree_seconds, wait_quiet
from bench.plan import Plan
from bench.results import Figure
from bench.seed import Keys, conversation, visitor
from bench.servers import CLIENT_CORE, HttpServer, pinned

BASELINES = {
    "hello": "(a) hello-world baseline (small JSON)",
    "get": "(b) one redis GET baseline (2 KB msgpack -> JSON)",
    "pipeline": "(c) 3-command pipeline baseline (50 turns, ~11 KB JSON)",
}
LOADCLIENT_SLACK = 60.0


@dataclass
class Bench:
    """Everything a scenario needs; problems are collected here, never raised mid-run."""

    plan: Plan
    service: HttpServer
    baselines: dict[str, HttpServer]
    keys: Keys
    redis_url: str
    workdir: Path
    run_id: str
    problems: list[str] = field(default_factory=list)
    workers: HttpServer | None = None  # `handoff serve --workers 2`, on both cores


def measure(bench: Bench, key: str, label: str, url: str, script: str, *,
            env: dict[str, str] | None = None, expect: frozenset[int] = frozenset({200}),
            note: str = "", server: HttpServer | None = None) -> Figure:
    """wrk at 64 connections (after a warm-up), then at 8 for the latency the targets name.

    The 8-connection run follows straight on the same endpoint, so it needs no warm-up of its own.
    """
    plan = bench.plan
    wait_quiet(plan.quiet_wait)
    meter = CpuMeter.start()
    pid = (server or bench.service).pid
    spent = [0.0]
    main = wrk_runner.warm_then_run(label, url, script, warmup=plan.warmup, seconds=plan.seconds,
                                    connections=64, env=env, expect=expect,
                                    after_warmup=lambda: spent.__setitem__(0, tree_seconds(pid)))
    cpu_us = ((tree_seconds(pid) - spent[0]) / main.requests * 1e6
              if pid and main.requests else None)
    c8_env = {**(env or {}), "BENCH_RUN": f"{(env or {}).get('BENCH_RUN', 'run')}-c8"}
    small = wrk_runner.run(f"{label} (8 connections)", url, script, seconds=plan.seconds_c8,
                           connections=8, env=c8_env, expect=expect)
    bench.problems += main.problems + small.problems
    return Figure(key=key, label=label, rate=main.rps, p50_ms=main.p50, p99_ms=main.p99,
                  p99_c8_ms=small.p99, note=note, other_load=meter.foreign_cores(),
                  cpu_us=cpu_us)


def body_size(size: int) -> str:
    return f"{size} B JSON" if size < 1024 else f"{size / 1024:.1f} KB JSON"


def _body_bytes(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return len(response.read())


def baselines(bench: Bench) -> list[Figure]:
    figures = []
    for kind, label in BASELINES.items():
        url = bench.baselines[kind].base + "/"
        figures.append(measure(bench, kind, label, url, "get.lua",
                               note=body_size(_body_bytes(url)), server=bench.baselines[kind]))
    return figures


def append_env(bench: Bench, name: str, run: str) -> dict[str, str]:
    return {"BENCH_KEY": bench.keys.bot, "BENCH_CONVERSATION": conversation(name),
            "BENCH_VISITOR": visitor(name), "BENCH_RUN": f"{bench.run_id}-{run}"}


def append(bench: Bench, name: str) -> Figure:
    return measure(bench, "append", "turn append (1 turn/request, identity in body)",
                   bench.service.base, "append.lua", env=append_env(bench, name, "append"))


def two_processes(bench: Bench, cus_id: str, name: str) -> list[Figure]:
    """Append and brief against `--workers 2` spread over both cores. wrk and Redis share those
    cores on a 2-core machine, so this shows the direction, not a clean 2x."""
    server = bench.workers
    if server is None:
        return []
    return [
        measure(bench, "append-2p", "turn append, 2 processes (--workers 2, both cores)",
                server.base, "append.lua", env=append_env(bench, name, "append-2p"),
                server=server),
        measure(bench, "brief-2p", "brief GET, 2 processes (--workers 2, both cores)",
                f"{server.base}/v1/customers/{cus_id}/context", "get.lua",
                env={"BENCH_KEY": bench.keys.agent}, server=server)]


def brief(bench: Bench, cus_id: str, history: int, size: int) -> Figure:
    return measure(bench, "brief", f"brief GET ({history} turns stored, 50 in the brief)",
                   f"{bench.service.base}/v1/customers/{cus_id}/context", "get.lua",
                   env={"BENCH_KEY": bench.keys.agent},
                   note=body_size(size))


def not_modified(bench: Bench, cus_id: str, etag: str) -> Figure:
    return measure(bench, "etag", "brief GET answered 304 (If-None-Match)",
                   f"{bench.service.base}/v1/customers/{cus_id}/context", "get.lua",
                   env={"BENCH_KEY": bench.keys.agent, "BENCH_ETAG": etag},
                   expect=frozenset({304}))


def _loadclient(bench: Bench, args: list[str], seconds: float) -> dict[str, Any]:
    """Run a load client; its JSON answer gains `other_load` (see bench/cpu.py)."""
    wait_quiet(bench.plan.quiet_wait)
    meter = CpuMeter.start()
    env = {**os.environ, "BENCH_BOT_KEY": bench.keys.bot, "BENCH_AGENT_KEY": bench.keys.agent}
    done = subprocess.run(
        pinned(CLIENT_CORE, [sys.executable, "-m", "bench.loadclients", *args,
                             "--base", bench.service.base]),
        env=env, capture_output=True, text=True, timeout=seconds + LOADCLIENT_SLACK,
        cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"load client {args[0]} exited {done.returncode}:\n"
                           f"{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["other_load"] = meter.foreign_cores()
    if result["errors"]:
        bench.problems.append(f"{args[0]}: {result['errors']} errors, e.g. "
                              f"{result['first_errors']}")
    return result


def handoffs(bench: Bench, customers: list[str]) -> Figure:
    plan = bench.plan
    r = _loadclient(bench, ["handoffs", "--seconds", str(plan.seconds), "--warmup",
                            str(plan.warmup), "--concurrency", "64", "--customers", *customers],
                    plan.warmup + plan.seconds)
    return Figure(key="handoff", label="hand-off create + accept (64 concurrent pairs)",
                  rate=r["pairs_per_s"], unit="pairs/s", p50_ms=r["p50_ms"], p99_ms=r["p99_ms"],
                  note=(f"create p50 {r['create']['p50_ms']:.1f} / p99 "
                        f"{r['create']['p99_ms']:.1f} ms, accept p50 "
                        f"{r['accept']['p50_ms']:.1f} / p99 {r['accept']['p99_ms']:.1f} ms"),
                  other_load=r["other_load"])


def fanout(bench: Bench, name: str, cus_id: str) -> Figure:
    plan = bench.plan
    r = _loadclient(bench, ["fanout", "--seconds", str(plan.fanout_seconds),
                            "--subscribers", str(plan.fanout_subscribers),
                            "--interval", str(plan.fanout_interval), "--customers", name,
                            "--customer-id", cus_id, "--run", bench.run_id],
                    plan.fanout_seconds)
    return Figure(key="fanout",
                  label=f"SSE fan-out, post -> receipt ({r['subscribers']} subscribers)",
                  rate=r["events_per_s"], unit="turns/s posted", p50_ms=r["p50_ms"],
                  p99_ms=r["p99_ms"],
                  note=f"{r['deliveries']} deliveries of {r['events']} turns, "
                       f"max {r['max_ms']:.1f} ms", other_load=r["other_load"])
