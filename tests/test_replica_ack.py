"""`HANDOFF_WRITE_ACK=replica`: a write is answered 2xx only once a replica holds it. Without a
replica to confirm, writes answer 503 with Retry-After (reads are served), and the retry that
follows a replica's return is idempotent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient
from redis.exceptions import ConnectionError

from handoff.api.state import DEPS
from handoff.app import create_app
from handoff.kernel.settings import Settings
from handoff.programs.doctor import Finding, examine
from handoff.services import apikeys
from handoff.store import keys as redis_keys
from handoff.store.diagnostics import server_facts
from handoff.store.multiplex import Multiplexed
from tests.conftest import CLUSTER, RedisServer, free_port

pytestmark = pytest.mark.skipif(CLUSTER, reason="runs its own primary and replica")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and its replica, in sync."""
    for name in ("p", "r"):
        (tmp_path / name).mkdir()
    primary = RedisServer(tmp_path / "p", free_port())
    replica = RedisServer(tmp_path / "r", free_port())
    try:
        primary.start()
        replica.options = ("--replicaof", "127.0.0.1", str(primary.port))
        replica.start()
        wait_in_sync(primary, replica)
        yield primary, replica
    finally:
        for server in (replica, primary):  # SIGKILL: a primary would wait for a lost replica
            if server.process is not None and server.process.poll() is None:
                server.kill()


def wait_in_sync(primary: RedisServer, replica: RedisServer) -> None:
    """Until both sides say so: the replica's link is up and the primary counts it online (only
    an online replica can confirm a WAIT, and on a busy machine the primary says so later)."""
    near, far = redis.Redis(port=primary.port), redis.Redis(port=replica.port)
    try:
        deadline = time.monotonic() + 15
        while (far.info("replication").get("master_link_status") != "up"
               or (near.info("replication").get("slave0") or {}).get("state") != "online"):
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
    finally:
        near.close()
        far.close()


def turns(*ids: str) -> dict[str, Any]:
    return {"customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
            "channel": "chat",
            "turns": [{"id": i, "role": "customer", "text": f"message {i}",
                       "ts": "2026-11-23T10:02:00Z"} for i in ids]}


async def test_a_write_is_answered_once_a_replica_has_it_and_503_while_none_can(
        aiohttp_client: Any, pair: tuple[RedisServer, RedisServer]) -> None:
    primary, replica = pair
    app = create_app(Settings(redis_url=primary.url, write_ack="replica",
                              write_ack_timeout=1.0, redis_timeout=3.0, sweep_seconds=60))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    store = app[DEPS].store
    bot = {"Authorization": "Bearer " + (await apikeys.create(
        store, tenant="acme", role="bot", now_ms=0))[0]}
    agent = {"Authorization": "Bearer " + (await apikeys.create(
        store, tenant="acme", role="agent", now_ms=0))[0]}

    r = await client.post("/v1/conversations/web-1/turns", json=turns("t1"), headers=bot)
    assert r.status == 200, await r.text()
    customer = (await r.json())["customer_id"]
    copy = redis.Redis(port=replica.port)
    try:  # answered, so already on the replica: no waiting for it here
        assert copy.xlen(redis_keys.customer("acme", customer).turns) == 1
    finally:
        copy.close()

    replica.kill()
    started = time.monotonic()
    r = await client.post("/v1/conversations/web-1/turns", json=turns("t2"), headers=bot)
    assert r.status == 503, await r.text()
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert int(r.headers["Retry-After"]) >= 1
    assert time.monotonic() - started < 2.5  # the WAIT's own timeout, not the client's
    r = await client.get(f"/v1/customers/{customer}/context", headers=agent)
    assert r.status == 200  # reads never wait for a replica

    replica.start()
    wait_in_sync(primary, replica)
    for _ in range(5):  # the first WAIT after an outage only probes: a client retries a 503
        r = await client.post("/v1/conversations/web-1/turns", json=turns("t2"), headers=bot)
        if r.status != 503:
            break
        await asyncio.sleep(0.2)
    assert r.status == 200, await r.text()
    assert (await r.json())["duplicates"] == 1  # the first try had landed on the primary
    r = await client.get(f"/v1/customers/{customer}/turns", headers=agent)
    assert [t["id"] for t in (await r.json())["items"]] == ["t2", "t1"]


async def test_a_wait_on_a_new_connection_does_not_vouch_for_writes_made_on_the_old_one(
        pair: tuple[RedisServer, RedisServer]) -> None:
    primary, _ = pair
    client = Multiplexed.from_url(primary.url, timeout=2.0)
    try:
        since = client.epoch()
        await client.set("k", "written on the first connection")
        await client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")
        await asyncio.sleep(0.1)  # the server has closed the line
        await client.ping()  # on a new one
        assert client.epoch() == since + 1
        with pytest.raises(ConnectionError, match="changed while the writes were made"):
            await client.replicated(1, 500, since=since)
        assert await client.replicated(1, 500, since=client.epoch()) == 1
    finally:
        await client.aclose()


async def test_the_doctor_fails_replica_acks_once_no_replica_is_connected(
        pair: tuple[RedisServer, RedisServer]) -> None:
    primary, replica = pair

    async def write_ack() -> Finding:
        client = Multiplexed.from_url(primary.url, timeout=2.0)
        try:
            facts = await server_facts(client, pings=1)
        finally:
            await client.aclose()
        (finding,) = [f for f in examine(facts, cluster_configured=False, write_ack="replica")
                      if f.check == "write ack"]
        return finding

    assert (await write_ack()).level == "ok"
    replica.kill()
    for _ in range(100):  # until the primary has noticed
        finding = await write_ack()
        if finding.level != "ok":
            break
        await asyncio.sleep(0.05)
    assert finding.level == "FAIL" and "every write answers 503" in finding.message
