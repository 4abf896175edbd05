from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Keys


async def test_a_bot_posts_turns_and_an_agent_reads_them(client: TestClient[Any, Any],
                                                          keys: Keys) -> None:
    r = await client.post("/v1/conversations/web-1/turns", headers=keys("bot"), json={
        "customer": {"identities": [{"kind": "chat", "value": "v-1"}]}, "channel": "chat",
        "turns": [{"id": "t1", "role": "customer", "text": "hello", "ts": "2026-11-23T10:02:00Z"}]})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["appended"] == 1
    r = await client.get(f"/v1/customers/{body['customer_id']}/context", headers=keys("agent"))
    assert r.status == 200
    brief = await r.json()
    assert [t["text"] for t in brief["turns"]] == ["hello"]
