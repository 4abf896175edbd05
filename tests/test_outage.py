"""Redis goes away mid-conversation: the service says 503 with Retry-After, never 500 or a hang,
and when Redis is back it serves again, with every acknowledged turn still there."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from handoff.api.state import DEPS
from handoff.app import create_app
from handoff.services import apikeys
from tests.conftest import CLUSTER, RedisServer, free_port

pytestmark = pytest.mark.skipif(CLUSTER, reason="kills its own single Redis server")


def turn(n: int) -> dict[str, Any]:
    return {"id": f"t{n}", "role": "customer", "text": f"message {n}",
            "ts": "2026-11-23T10:02:00Z"}


async def test_a_redis_crash_costs_no_acknowledged_turn_and_the_service_recovers_by_itself(
        aiohttp_client: Any, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", free_port())
    (tmp_path / "redis").mkdir()
    redis.start()
    try:
        from handoff.kernel.settings import Settings

        app = create_app(Settings(redis_url=redis.url, redis_timeout=0.5, sweep_seconds=60))
        client: TestClient[Any, Any] = await aiohttp_client(app)
        store = app[DEPS].store
        bot = {"Authorization": "Bearer " + (await apikeys.create(
            store, tenant="acme", role="bot", now_ms=0))[0]}
        agent = {"Authorization": "Bearer " + (await apikeys.create(
            store, tenant="acme", role="agent", now_ms=0))[0]}
        body = {"customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
                "channel": "chat", "turns": [turn(0)]}
        acknowledged = []
        r = await client.post("/v1/conversations/web-1/turns", json=body, headers=bot)
        assert r.status == 200
        customer = (await r.json())["customer_id"]
        acknowledged.append("t0")

        async def writer(start: int) -> list[int]:
            statuses = []
            for n in range(start, start + 40):
                r = await client.post("/v1/conversations/web-1/turns",
                                      json={"turns": [turn(n)]}, headers=bot)
                statuses.append(r.status)
                if r.status == 200:
                    acknowledged.append(f"t{n}")
                else:
                    problem = await r.json()
                    assert r.status == 503, problem
                    assert r.headers["Content-Type"].startswith("application/problem+json")
                    assert int(r.headers["Retry-After"]) >= 1
                await asyncio.sleep(0.005)
            return statuses

        load = asyncio.gather(*(writer(1000 * w + 1) for w in range(4)))
        await asyncio.sleep(0.1)
        redis.kill()  # SIGKILL: no chance to flush anything it had not already written
        started = time.monotonic()
        r = await client.get("/readyz")
        assert r.status == 503
        r = await client.get(f"/v1/customers/{customer}/context", headers=agent)
        assert r.status == 503 and "Retry-After" in r.headers
        assert time.monotonic() - started < 5, "requests must fail fast while Redis is away"
        statuses = [s for w in await load for s in w]
        assert 503 in statuses and 500 not in statuses

        redis.start()  # same port, same data folder: the append-only file is replayed
        for _ in range(50):
            if (await client.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.1)
        r = await client.post("/v1/conversations/web-1/turns", json={"turns": [turn(9999)]},
                              headers=bot)
        assert r.status == 200, await r.text()
        acknowledged.append("t9999")

        stored: set[str] = set()
        cursor = None
        while True:
            r = await client.get(f"/v1/customers/{customer}/turns",
                                 params={"limit": 500, **({"before": cursor} if cursor else {})},
                                 headers=agent)
            page = await r.json()
            stored |= {t["id"] for t in page["items"]}
            if not page["next"]:
                break
            cursor = page["next"]
        lost = set(acknowledged) - stored
        assert not lost, f"acknowledged but lost after the crash: {sorted(lost)}"
    finally:
        redis.stop()
