"""Run wrk (pinned to the client core) with one of bench/wrk/*.lua and read its report."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import CLIENT_CORE, pinned

SCRIPTS = Path(__file__).resolve().parent / "wrk"
THREADS = 1
# wrk -d is a target, not a bound: allow for its start-up and for slow tails.
SLACK_SECONDS = 30.0

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LATENCY = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_STATUS = re.compile(r"^status (\d+) (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class WrkResult:
    label: str
    connections: int
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[int, float]
    statuses: dict[int, int]
    socket_errors: int
    non_2xx_3xx: int
    problems: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return self.latency_ms[50]

    @property
    def p99(self) -> float:
        return self.latency_ms[99]


def parse(label: str, connections: int, output: str, expect: set[int]) -> WrkResult:
    """The figures in wrk's --latency report, plus our per-status counts from status.lua."""
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    latency = {int(p): float(v) * _UNITS_MS[u] for p, v, u in _LATENCY.findall(output)}
    if rps is None or total is None or len(latency) != 4:
        raise RuntimeError(f"wrk ({label}) gave no report:\n{output[-2000:]}")
    sockets = _SOCKET.search(output)
    socket_errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    non2xx = _NON2XX.search(output)
    statuses = {int(c): int(n) for c, n in _STATUS.findall(output)}
    problems = []
    unexpected = {c: n for c, n in statuses.items() if c not in expect}
    if unexpected:
        problems.append(f"{label}: unexpected statuses {unexpected} (expected {sorted(expect)})")
    if socket_errors:
        problems.append(f"{label}: {socket_errors} socket errors ({sockets and sockets.group(0)})")
    if not statuses:
        problems.append(f"{label}: no responses")
    return WrkResult(label=label, connections=connections, requests=int(total.group(1)),
                     seconds=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
                     rps=float(rps.group(1)), latency_ms=latency, statuses=statuses,
                     socket_errors=socket_errors,
                     non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0, problems=problems)


def run(label: str, url: str, script: str, *, seconds: float, connections: int,
        env: dict[str, str] | None = None, expect: frozenset[int] = frozenset({200})
        ) -> WrkResult:
    argv = pinned(CLIENT_CORE, [
        "wrk", f"-t{THREADS}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
        "-s", str(SCRIPTS / script), url])
    # LUA_PATH lets every script `require("status")` from the same folder.
    full_env = {**os.environ, "LUA_PATH": f"{SCRIPTS}/?.lua;;", **(env or {})}
    done = subprocess.run(argv, env=full_env, capture_output=True, text=True,
                          timeout=seconds + SLACK_SECONDS)
    if done.returncode != 0:
        raise RuntimeError(f"wrk ({label}) exited {done.returncode}:\n{done.stderr[-2000:]}")
    return parse(label, connections, done.stdout, set(expect))


def warm_then_run(label: str, url: str, script: str, *, warmup: float, seconds: float,
                  connections: int, env: dict[str, str] | None = None,
                  expect: frozenset[int] = frozenset({200}),
                  after_warmup: Callable[[], None] | None = None) -> WrkResult:
    """A short unmeasured run first (connection pools, caches, JIT of the Lua), then the real one.

    Problems seen during the warm-up count too: an error is an error whenever it happens.
    """
    warm_env = {**(env or {}), "BENCH_RUN": f"{(env or {}).get('BENCH_RUN', 'run')}-warm"}
    warm = run(f"{label} (warm-up)", url, script, seconds=warmup, connections=connections,
               env=warm_env, expect=expect)
    if after_warmup is not None:
        after_warmup()
    result = run(label, url, script, seconds=seconds, connections=connections, env=env,
                 expect=expect)
    result.problems.extend(warm.problems)
    return result
