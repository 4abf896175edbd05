"""Real parts only: a real valkey-server (the binary the embedded default ships), a real aiohttp
server, real HTTP. Redis is started once per session and flushed before every test.

`HANDOFF_TEST_REDIS=cluster` runs the same tests against a real 3-master Redis Cluster started on
loopback from the same binary.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from aiohttp.test_utils import TestClient

from handoff.app import create_app
from handoff.kernel.settings import Settings
from handoff.runtime.embedded import server_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 40000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class RedisServer:
    """A valkey-server on loopback that tests may also stop and start again."""

    directory: Path
    port: int
    cluster: bool = False
    process: subprocess.Popen[bytes] | None = None
    # Extra server options, given last so they win over the defaults above them.
    options: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(server_binary()), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--loglevel", "warning",
             *(["--cluster-enabled", "yes", "--cluster-config-file",
                 str(self.directory / "nodes.conf")] if self.cluster else []),
             *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """SIGKILL: no goodbye, exactly like a crash."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


CLUSTER = os.environ.get("HANDOFF_TEST_REDIS") == "cluster"


@dataclass
class RedisClusterServers:
    """Three cluster-enabled masters on loopback, joined into one cluster (no replicas)."""

    directory: Path
    nodes: list[RedisServer]

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        cli = server_binary().parent / "valkey-cli"
        if not os.access(cli, os.X_OK):
            cli.chmod(0o755)
        subprocess.run([str(cli), "--cluster", "create",
                        *[f"127.0.0.1:{n.port}" for n in self.nodes],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        for node in self.nodes:
            client = redis.Redis(port=node.port)
            while client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError("the test cluster did not converge")
                time.sleep(0.1)
            client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[RedisServer | RedisClusterServers]:
    server: RedisServer | RedisClusterServers
    if CLUSTER:
        root = tmp_path_factory.mktemp("cluster")
        nodes = []
        for n in range(3):
            (root / str(n)).mkdir()
            nodes.append(RedisServer(root / str(n), free_cluster_port(), cluster=True))
        server = RedisClusterServers(root, nodes)
    else:
        server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()  # also when starting failed half-way: no server outlives the tests


@pytest.fixture
def redis_sync(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client for looking inside Redis; the database starts empty."""
    client: Any
    if CLUSTER:
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_server.port)
        client.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    else:
        client = redis.Redis(port=redis_server.port)
        client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(redis_sync: redis.Redis, redis_server: RedisServer, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_server.url, redis_cluster=CLUSTER,
                    data_dir=tmp_path / "data", sweep_seconds=0.2)


AppFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(aiohttp_client: Any, settings: Settings) -> AppFactory:
    """Start a real aiohttp server on its own port; keyword arguments override settings."""
    async def make(**overrides: Any) -> TestClient[Any, Any]:
        app = create_app(settings.model_copy(update=overrides))
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return client
    return make


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient[Any, Any]:
    return await make_client()


class Keys:
    """API keys for two tenants, `acme` and `globex`, one per role each."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], str] = {}

    def __call__(self, role: str, tenant: str = "acme") -> dict[str, str]:
        """Headers that authenticate as `role` of `tenant`."""
        return {"Authorization": f"Bearer {self.secrets[(tenant, role)]}"}


@pytest.fixture
async def keys(client: TestClient[Any, Any]) -> Keys:
    from handoff.api.state import DEPS
    from handoff.services import apikeys

    store = client.app[DEPS].store
    made = Keys()
    for tenant in ("acme", "globex"):
        for role in apikeys.ROLES:
            secret, _ = await apikeys.create(store, tenant=tenant, role=role, name="test",
                                             now_ms=int(time.time() * 1000))
            made.secrets[(tenant, role)] = secret
    return made


@pytest.fixture
async def aredis(redis_sync: redis.Redis, redis_server: RedisServer
                 ) -> AsyncIterator[redis.asyncio.Redis]:
    client: Any = (redis.asyncio.cluster.RedisCluster.from_url(redis_server.url) if CLUSTER
                   else redis.asyncio.Redis.from_url(redis_server.url))
    yield client
    await client.aclose()
