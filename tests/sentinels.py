"""A highly available Redis on loopback: a primary, one replica and three sentinels, all from
the valkey-server binary the embedded default ships (`valkey-server <conf> --sentinel`).

Servers are stopped with SIGKILL: a primary whose replica is gone would wait out its
shutdown timeout on SIGTERM, and nothing here needs a clean stop.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from handoff.runtime.embedded import server_binary
from tests.conftest import RedisServer, free_port
from tests.tcp_proxy import TcpProxy

SERVICE = "handoff"
DOWN_AFTER_MS = 1000
QUORUM = 2


def _wait(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if callable(check) and check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Sentinel:
    """One `valkey-server --sentinel` process; it rewrites its own config file as it learns."""

    directory: Path
    port: int
    primary_port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        config.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f'dir "{self.directory}"',
            "loglevel warning", 'logfile "sentinel.log"',
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} {QUORUM}",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} 10000",
            f"sentinel parallel-syncs {SERVICE} 1"]) + "\n")
        self.process = subprocess.Popen([str(server_binary()), str(config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            _wait(f"sentinel on {self.port}", client.ping, 10)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def ask(self, *command: str) -> object:
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            return client.execute_command(*command)
        finally:
            client.close()


class ReplicationLink:
    """A proxy to the primary, on a thread of its own, for the replica's link (see
    `Topology.cut_replica_off`); `cut_off` throws away what the primary sends through it from
    then on, the connection staying up."""

    def __init__(self, primary_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._proxy = TcpProxy("127.0.0.1", primary_port)
        self.port = asyncio.run_coroutine_threadsafe(self._proxy.start(), self._loop).result(10)

    def cut_off(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self._proxy, "blackhole_downstream", True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._proxy.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class Topology:
    """Primary, replica and three sentinels watching them as `SERVICE`."""

    directory: Path
    primary: RedisServer = field(init=False)
    replica: RedisServer = field(init=False)
    sentinels: list[Sentinel] = field(init=False)
    link: ReplicationLink | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        for name in ("primary", "replica"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        self.primary = RedisServer(self.directory / "primary", free_port())
        self.replica = RedisServer(self.directory / "replica", free_port())
        self.sentinels = [Sentinel(self.directory / f"sentinel{n}", free_port(),
                                   self.primary.port) for n in range(3)]

    @property
    def addresses(self) -> str:
        """The sentinels as HANDOFF_REDIS_SENTINELS takes them."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self) -> None:
        self.primary.start()
        self.replica.options = ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replica.start()
        _wait("the replica's first sync", self._replica_in_sync, 15)
        for sentinel in self.sentinels:
            sentinel.start()
        # Sentinels find the replica and each other through the primary: a failover needs both.
        _wait("the sentinels to know the replica and each other", self._sentinels_ready, 20)

    def _replica_in_sync(self, through: int | None = None) -> bool:
        client = redis.Redis(port=self.replica.port, socket_timeout=1)
        try:
            state = client.info("replication")
            return state.get("master_link_status") == "up" and (
                through is None or state.get("master_port") == through)
        finally:
            client.close()

    def cut_replica_off(self) -> None:
        """From now on the primary's stream stops reaching the replica, whose link stays up, as
        over a network that fails just before the primary dies: what the primary acknowledges
        from now on, only it holds. (On loopback a SIGKILLed primary has handed the kernel all
        it acknowledged, so the replica would get everything and a failover lose nothing.)

        The replica moves onto a proxy first, picking up where it was; the sentinels would
        point it back at the primary, but only after their failover-timeout (10 s).
        """
        self.link = ReplicationLink(self.primary.port)
        client = redis.Redis(port=self.replica.port, socket_timeout=5)
        try:
            client.execute_command("REPLICAOF", "127.0.0.1", str(self.link.port))
        finally:
            client.close()
        port = self.link.port
        _wait("the replica in sync through the proxy", lambda: self._replica_in_sync(port), 10)
        self.link.cut_off()

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            state = sentinel.ask("SENTINEL", "MASTER", SERVICE)
            assert isinstance(state, dict | list)
            fields = (state if isinstance(state, dict) else
                      {state[i]: state[i + 1] for i in range(0, len(state), 2)})
            replicas = int(fields.get(b"num-slaves", fields.get("num-slaves", 0)))
            others = int(fields.get(b"num-other-sentinels",
                                    fields.get("num-other-sentinels", 0)))
            if replicas < 1 or others < len(self.sentinels) - 1:
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port as the first sentinel names it now."""
        reply = self.sentinels[0].ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        assert isinstance(reply, list | tuple) and len(reply) == 2, reply
        return int(reply[1])

    def wait_for_failover(self, timeout: float = 30) -> float:
        """Seconds until the sentinels name the replica as primary and it accepts writes."""
        started = time.monotonic()

        def promoted() -> bool:
            if self.primary_port() != self.replica.port:
                return False
            client = redis.Redis(port=self.replica.port, socket_timeout=1)
            try:
                return client.execute_command("ROLE")[0] in (b"master", "master")
            finally:
                client.close()

        _wait("the failover", promoted, timeout)
        return time.monotonic() - started

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.kill()
        for server in (self.replica, self.primary):
            if server.process is not None and server.process.poll() is None:
                server.kill()
        if self.link is not None:
            self.link.close()
