"""Start and stop the processes under test: valkey-server, the service, the baseline apps.

Every process is a child of this one, started with `taskset` so the core split is explicit:
the HTTP servers under test get core 0 to themselves; Redis, wrk and the Python load clients
share core 1. `Processes` stops every child it started (SIGTERM, then SIGKILL), in reverse order.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

from handoff.runtime.embedded import server_binary

SERVER_CORE = 0
CLIENT_CORE = 1
START_TIMEOUT = 20.0
# The service's durable default (see handoff/runtime/embedded.py); the bench measures that, not a
# faster setting nobody should run in production.
APPENDFSYNC = "always"


class StartError(RuntimeError):
    """A process under test did not come up; the run must fail, not measure nothing."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(core: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *argv]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                # The whole group: `--workers` leaves children of its own behind otherwise.
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Processes:
    """The children of one bench run; `stop_all` is safe to call more than once."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Child:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                       cwd=cwd or Path(__file__).resolve().parent.parent,
                                       start_new_session=True)
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        while self.children:
            self.children.pop().stop()


@dataclass(frozen=True)
class RedisInfo:
    url: str
    port: int
    version: str
    malloc: str
    appendonly: str
    appendfsync: str


def start_redis(procs: Processes, appendfsync: str = APPENDFSYNC,
                replica_of: int | None = None) -> RedisInfo:
    """valkey-server from the wheel on a free loopback port, AOF on, fsync on every write
    unless told otherwise (to show what the per-write fsync itself costs); with `replica_of`,
    a replica of the server on that port, in sync when this returns."""
    port = free_port()
    name = "valkey-replica" if replica_of else "valkey"
    data = procs.workdir / name
    data.mkdir()
    child = procs.spawn(name, pinned(CLIENT_CORE, [
        str(server_binary()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
        "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
        "--maxmemory-policy", "noeviction", "--loglevel", "warning",
        *(["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else [])]))
    client = redis.Redis(port=port, socket_timeout=5)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            try:
                client.ping()
                if replica_of and client.info("replication").get("master_link_status") != "up":
                    raise redis.ConnectionError("not in sync yet")
                break
            except redis.ConnectionError as exc:
                if child.process.poll() is not None or time.monotonic() > deadline:
                    raise StartError(f"valkey-server did not start:\n{child.tail()}") from exc
                time.sleep(0.05)
        server = client.info("server")
        # Read back what the server actually runs with, so the report cannot drift from it.
        config = client.config_get("append*")
        return RedisInfo(url=f"redis://127.0.0.1:{port}/0", port=port,
                         version=str(server.get("valkey_version") or server["redis_version"]),
                         malloc=str(client.info("memory").get("mem_allocator", "?")),
                         appendonly=str(config.get("appendonly")),
                         appendfsync=str(config.get("appendfsync")))
    finally:
        client.close()


@dataclass(frozen=True)
class HttpServer:
    name: str
    port: int
    pid: int = 0  # the server's process (its workers are its children)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _wait_http(child: Child, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise StartError(f"{child.name} did not answer {url}:\n{child.tail()}")


def start_service(procs: Processes, redis_url: str, workers: int = 1,
                  env: dict[str, str] | None = None, source: Path | None = None,
                  name: str = "service") -> tuple[HttpServer, Child]:
    """`handoff serve` exactly as an operator runs it, against the bench Redis: one process on
    core 0, or `--workers N` free to use both cores (the scale-out figure). `source`: a copy of
    the source tree to run instead of this one (`python -m` imports from its folder first)."""
    port = free_port()
    argv = [sys.executable, "-m", "handoff", "serve", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
        name = f"{name}-{workers}p"
    child = procs.spawn(name, pinned(SERVER_CORE, argv) if workers == 1 else argv,
                        env={"HANDOFF_REDIS_URL": redis_url, **(env or {})}, cwd=source)
    return HttpServer(name, port, child.process.pid), child


def start_baseline(procs: Processes, kind: str, redis_url: str) -> tuple[HttpServer, Child]:
    port = free_port()
    child = procs.spawn(f"baseline-{kind}", pinned(SERVER_CORE, [
        sys.executable, "-m", "bench.baselines", kind, "--port", str(port),
        "--redis-url", redis_url]))
    return HttpServer(kind, port, child.process.pid), child


def wait_ready(started: list[tuple[HttpServer, Child]]) -> list[HttpServer]:
    """Started together (each pays ~1 s of imports), then awaited one by one."""
    for server, child in started:
        path = "/readyz" if server.name.startswith("service") else "/healthz"
        _wait_http(child, server.base + path)
    return [server for server, _ in started]
